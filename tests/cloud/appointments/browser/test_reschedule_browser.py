"""The customer moves their own booking on a phone, in Chromium against the hub served by uvicorn: book, then on the
booking's page pick another day and time, move, and see the new time with its new QR; once in Indonesian and once in
English. Screenshots: docs/screenshots/booking-reschedule-{id,en}.png (the page after the move)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect

from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.browser.booking_page import BRANCH, TENANT, book_first_free_time
from tests.cloud.appointments.support import add_branch
from tests.support.browser import shot
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
ALL_DAY = {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
MOVED = {"id": "Jadwal Anda telah diganti", "en": "Your appointment has moved"}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    add_branch(engine, TENANT, BRANCH, name="KC Sudirman", address="Jl. Jend. Sudirman Kav. 1, Jakarta", hours=ALL_DAY,
               service=("teller", "Teller"), capacity=3)  # fmt: skip
    engine.dispose()
    with served(create_app(CloudSettings(db_url=url, keys_dir=tmp_path / "keys"))) as base:
        yield base


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_customer_moves_the_booking_on_a_phone(browser: Browser, hub: str, lang: str) -> None:
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        code = book_first_free_time(phone, hub, lang, "Siti Aminah" if lang == "id" else "John Smith")
        before = phone.locator("#when").inner_text()
        # another day (the day after tomorrow, Jakarta time: always within the days shown), then its second time
        target = (datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date() + timedelta(days=2)).isoformat()
        phone.click(f"#move-days a[data-day='{target}']")
        expect(phone.locator(f"#move-days a[data-day='{target}'][aria-current='true']")).to_be_visible()
        phone.locator("#move-times label").nth(1).click()
        phone.click("#move-submit")
        expect(phone.locator("#moved")).to_contain_text(MOVED[lang])
        expect(phone.locator("#qr svg")).to_be_visible()
        after = phone.locator("#when").inner_text()
        assert after != before
        assert after.startswith(f"{target[8:10]}/{target[5:7]}/{target[:4]} 08:30")
        assert phone.url.split("/v/")[1].split("?")[0] != code  # another day: a new code in the address
        assert phone.locator("html").get_attribute("lang") == lang
        shot(phone, f"booking-reschedule-{lang}.png")
        ics = phone.locator("#ics").get_attribute("href")
        assert ics is not None
        calendar = phone.request.get(f"{hub}{ics}")
        assert calendar.headers["content-type"].startswith("text/calendar")
        assert b"BEGIN:VEVENT" in calendar.body()
    finally:
        phone.close()


def test_time_choice_on_the_phone_is_kept_to_free_times(browser: Browser, hub: str) -> None:
    """The booking's own time is shown but cannot be chosen again; the move button is the page's own."""
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        book_first_free_time(phone, hub, "en", "Ana")
        own = phone.locator("#move-times input[disabled]")
        expect(own.first).to_be_attached()
        expect(phone.locator("#move-times")).to_contain_text("your time")
    finally:
        phone.close()
