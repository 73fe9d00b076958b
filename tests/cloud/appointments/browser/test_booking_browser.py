"""Appointments end to end in Chromium, every part real: the hub served by uvicorn with its NATS consumer and bookings
push, a nats-server, an SMTP relay (aiosmtpd), the appliance (`qms-edge serve`) linked to the hub.

Book on the public page -> the confirmation e-mail with the QR PNG -> zxing-cpp decodes it -> the bookings reach the
appliance -> NATS is cut off -> the code is typed into the kiosk as a USB scanner does (characters then Enter) ->
the appointment ticket is issued and called before walk-ins who came earlier (blending: the appointment is due) ->
every invalid code gets its own safe message -> NATS back: the check-in reaches the hub, whose staff page shows it.
Screenshots: docs/screenshots/booking-{id,en}.png, kiosk-checkin-{id,en}.png, staff-bookings-{id,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from cloud.appointments import booking
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.notify.providers import email as email_provider
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from edge.appointments import store
from edge.demo import DEMO_USERS, demo_config
from tests.cloud.admin.conftest import PASSWORD
from tests.cloud.appointments.browser.booking_page import BRANCH, TENANT, book_first_free_time
from tests.cloud.appointments.support import add_branch
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.appliance import RunningAppliance, mint_token, seed_demo
from tests.support.browser import shot, sign_in_to_console
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
USERS = [*DEMO_USERS, ("kiosk-1", "device", [])]
ALL_DAY = {d: [["00:00", "23:30"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _config() -> Any:
    """The demo branch with appointment blending on the teller service (half the calls, due ones first)."""
    config = demo_config()
    services = [msgspec.structs.replace(s, appointment_quota_pct=50, appointment_boost_minutes=30)
                if s.id == "teller" else s for s in config.services]  # fmt: skip
    return msgspec.structs.replace(config, services=services)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    nats = NatsServer(tmp_path / "nats").start()
    smtp = SmtpServer(tmp_path / "smtp").start()
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    add_branch(engine, TENANT, BRANCH, name="KC Sudirman", hours=ALL_DAY, service=("teller", "Teller"), capacity=3)
    with transaction(engine) as conn:
        policy.save_provider(conn, TENANT, "email", "email", smtp.settings, email_provider.SECRETS)
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    data = tmp_path / "edge"
    seed_demo(data, _config(), USERS)
    monkeypatch.setenv("QMS_NATS_URL", nats.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_BRANCH", BRANCH)
    app = create_app(CloudSettings(db_url=url, nats_servers=(nats.url,), keys_dir=tmp_path / "keys"))
    app.state["appt_mail_seconds"] = 3600  # one pass at start, then one per booking change
    try:
        with served(app) as hub, RunningAppliance(data) as appliance:
            yield {"hub": hub, "appliance": appliance, "data": data, "nats": nats, "smtp": smtp, "engine": engine}
    finally:
        smtp.stop()
        nats.stop()
        engine.dispose()


def _api(appliance: RunningAppliance, data: Path, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {mint_token(data, 'admin', users=USERS)}"}
    r = httpx.post(f"{appliance.api}{path}", json=body or {}, headers=headers, timeout=10)
    assert r.status_code < 300, r.text
    return r.json()


def _decoded_mails(smtp: SmtpServer, folder: Path) -> dict[str, str]:
    """Recipient -> the text zxing-cpp reads from the QR PNG attached to their confirmation e-mail."""
    decoded = {}
    for mail in smtp.wait_for(2):
        (png,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/png"]
        path = folder / f"{mail.recipients[0]}.png"
        path.write_bytes(png.get_content())
        (found,) = zxingcpp.read_barcodes(Image.open(path))
        decoded[mail.recipients[0]] = found.text
    return decoded


def _staff_view(browser: Browser, hub: str) -> None:
    """The branch manager's page shows both visits checked in, in both languages."""
    staff = sign_in_to_console(browser.new_page(viewport={"width": 1440, "height": 900}), hub, "ana", PASSWORD)
    for lang in ("id", "en"):
        staff.goto(f"{hub}/appointments?tenant={TENANT}&branch={BRANCH}&lang={lang}")
        expect(staff.locator("#bookings [data-status='checked_in']")).to_have_count(2)
        # neither the tenant nor this hub names a public address: the page says customers' links cannot be made
        expect(staff.locator("#links-unknown")).to_contain_text("QMS_PUBLIC_URL")
        expect(staff.locator("#sb-lang option")).to_have_text(["Bahasa Indonesia", "English"])
        shot(staff, f"staff-bookings-{lang}.png")


def _kiosk_scan(page: Page, code: str) -> None:
    """What a USB scanner does: type the characters fast, then Enter, on the kiosk's home screen."""
    page.keyboard.type(code, delay=2)
    page.keyboard.press("Enter")


def _invalid_codes_get_safe_words(kiosk: Page, used: str) -> None:
    """Each invalid code (forged, already used, malformed, not a booking at all) gets its own safe message on the
    kiosk, naming nobody; `used` is Siti's code, checked in already."""
    forged = used[:-6] + ("A" * 6 if not used.endswith("AAAAAA") else "B" * 6)
    for text, words in ((forged, "tidak dapat dibaca"), (used, "sudah dipakai"), ("Q1" + "A" * 60, "tidak")):
        _kiosk_scan(kiosk, text)
        expect(kiosk.locator("#screen-message")).to_be_visible()
        expect(kiosk.locator("#message")).to_contain_text(words)
        assert "Siti" not in kiosk.locator("#message").inner_text()
        if text == used:
            shot(kiosk, "kiosk-checkin-refused.png")  # already used
        kiosk.click("#screen-message [data-go='lang']")
    # a QR that is not a booking (a web address) typed into the check-in field: the same safe words, not an error
    kiosk.click("#btn-checkin")
    kiosk.fill("#checkin-code", "https://example.com/x")
    kiosk.press("#checkin-code", "Enter")
    expect(kiosk.locator("#message")).to_contain_text("tidak dapat dibaca")
    kiosk.click("#screen-message [data-go='lang']")


def test_book_email_scan_offline_and_call_in_blend_order(browser: Browser, world: dict[str, Any]) -> None:
    hub, appliance, data = world["hub"], world["appliance"], world["data"]
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    codes = {lang: book_first_free_time(phone, hub, lang, name, email=f"{name.split()[0].lower()}@example.com",
                                        photo=f"booking-{lang}.png")
             for lang, name in (("id", "Siti Aminah"), ("en", "John Smith"))}  # fmt: skip
    shot(phone, "booking-confirmed-en.png")
    decoded = _decoded_mails(world["smtp"], data)
    assert decoded == {"siti@example.com": codes["id"], "john@example.com": codes["en"]}

    # the bookings reach the appliance, then the link goes down
    wait_until(lambda: (doc := store.load(data)) is not None and len(doc.visits) == 2, what="bookings pushed")
    walk_ins = [_api(appliance, data, "/tickets", {"service_id": "teller"})["ticket_number"] for _ in range(2)]
    world["nats"].stop()

    kiosk = browser.new_page(viewport={"width": 1920, "height": 1080})
    kiosk.goto(f"{appliance.base_url}/kiosk#token={mint_token(data, 'kiosk-1', users=USERS)}")
    kiosk.click("#btn-checkin")  # Indonesian: the check-in screen's field takes the scanner's typing
    expect(kiosk.locator("#screen-checkin")).to_be_visible()
    _kiosk_scan(kiosk, decoded["siti@example.com"])
    expect(kiosk.locator("#screen-ticket")).to_be_visible()
    shot(kiosk, "kiosk-checkin-id.png")
    kiosk.click("#btn-done")
    kiosk.click("#lang-en")  # English chosen, then scanned straight away: the scanner works on any screen
    _kiosk_scan(kiosk, decoded["john@example.com"])
    expect(kiosk.locator("#screen-ticket")).to_be_visible()
    expect(kiosk.locator("#t-number")).not_to_be_empty()
    shot(kiosk, "kiosk-checkin-en.png")
    kiosk.click("#btn-done")
    tickets = {t["customer_ref"]: t for t in httpx.get(
        f"{appliance.api}/tickets", timeout=10,
        headers={"Authorization": f"Bearer {mint_token(data, 'admin', users=USERS)}"}).json()["tickets"]
        if t.get("customer_ref")}  # fmt: skip
    assert {t["channel"] for t in tickets.values()} == {"appointment"}

    _invalid_codes_get_safe_words(kiosk, codes["id"])

    # blending: both appointments are due, so they are called before the two walk-ins who came earlier
    answers = [_api(appliance, data, f"/counters/{c}/call-next") for c in ("1", "2", "3")]
    called = [a.get("ticket", a)["ticket_number"] for a in answers]
    numbers = {t["ticket_number"] for t in tickets.values()}
    assert set(called[:2]) == numbers
    assert called[2] == walk_ins[0]

    # the link comes back: the check-ins reach the hub
    world["nats"].start()
    engine = world["engine"]
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date().isoformat()

    def checked_in() -> bool:
        with engine.connect() as conn:
            rows = booking.day_bookings(conn, TENANT, BRANCH, [today])
        return len(rows) == 2 and all(r.status == "checked_in" for r in rows)

    wait_until(checked_in, timeout=90, what="check-ins at the hub")
    _staff_view(browser, hub)
