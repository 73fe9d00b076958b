"""A customer's phone on the public booking pages, in Chromium against the hub served by uvicorn, in Indonesian and
English: a mangled link answers a page saying the booking was not found (not JSON); "Find my booking" with the number
and the phone it was booked with opens the booking; once checked in, cancelling there says so and the page shows
the state instead of the QR. Screenshots: docs/screenshots/booking-not-found-{id,en}.png, booking-find-{id,en}.png
(a wrong contact's answer), booking-checked-in-{id,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.appointments import booking
from cloud.appointments.tables import appt_bookings
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.browser.booking_page import BRANCH, TENANT
from tests.cloud.appointments.support import add_branch
from tests.support.browser import shot
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
ALL_DAY = {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
WORDS = {
    "id": {"not_found": "Janji temu tidak ditemukan", "miss": "Tidak ada janji dengan nomor dan kontak itu",
           "checked_in": "Anda sudah check-in untuk janji ini"},
    "en": {"not_found": "Booking not found", "miss": "No booking matches that number and contact",
           "checked_in": "You have already checked in"},
}  # fmt: skip


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    add_branch(engine, TENANT, BRANCH, name="KC Sudirman", hours=ALL_DAY, service=("teller", "Teller"), capacity=3)
    with served(create_app(CloudSettings(db_url=url, keys_dir=tmp_path / "keys"))) as base:
        yield base, engine
    engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_phone_gets_pages_finds_its_booking_and_sees_it_checked_in(
    browser: Browser, hub: tuple[str, sa.Engine], lang: str
) -> None:
    base, engine = hub
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(f"{base}/book/{TENANT}/v/not-a-code?lang={lang}")
        expect(phone.locator("#problem-message")).to_contain_text(WORDS[lang]["not_found"])
        shot(phone, f"booking-not-found-{lang}.png")
        phone.goto(f"{base}/book/{TENANT}/{BRANCH}?lang={lang}")
        phone.locator("#times label").first.click()
        phone.fill("#name", "Siti Aminah")
        phone.fill("#phone", "0812 3456 7890")
        phone.click("#submit")
        expect(phone.locator("#qr svg")).to_be_visible()
        code = phone.url.split("/v/")[1].split("?")[0]
        number = phone.locator("#booking-id").inner_text()
        phone.goto(f"{base}/book/{TENANT}/{BRANCH}?lang={lang}")
        phone.fill("#find-booking-id", number)
        phone.fill("#find-contact", "0812 0000 0000")
        phone.click("#find-submit")
        expect(phone.locator("#err-find")).to_contain_text(WORDS[lang]["miss"])
        phone.locator("#find").scroll_into_view_if_needed()
        shot(phone, f"booking-find-{lang}.png")
        phone.click("#lang-switch")  # the answer page's language switch leads back to the booking page
        other = "en" if lang == "id" else "id"
        expect(phone.locator("html")).to_have_attribute("lang", other)
        phone.goto(f"{base}/book/{TENANT}/{BRANCH}?lang={lang}")
        phone.fill("#find-booking-id", number.lower())
        phone.fill("#find-contact", "+62 812-3456-7890")
        phone.click("#find-submit")
        expect(phone.locator("#qr svg")).to_be_visible()
        assert code in phone.url
        with transaction(engine) as conn:
            booking.mark_checked_in(conn, TENANT, BRANCH, number, "A001", "2026-01-01T00:00:00+00:00")
        phone.click("#cancel")
        expect(phone.locator("#checked-in[role='alert']")).to_contain_text(WORDS[lang]["checked_in"])
        expect(phone.locator("#err-change")).to_have_count(0)  # said once
        expect(phone.locator("#qr")).to_have_count(0)
        assert phone.locator("html").get_attribute("lang") == lang
        shot(phone, f"booking-checked-in-{lang}.png")
        with engine.connect() as conn:
            assert conn.execute(sa.select(appt_bookings.c.status)).scalar_one() == "checked_in"
    finally:
        phone.close()
