"""The appointments pages and API through the real hub app (SQLite and PostgreSQL): the public booking page in both
languages (no sign-in, a full slot and bad fields answered beside the form, rate limited), the booking's own page
reachable only with its signed code, cancelling there; the confirmation e-mail through a real SMTP relay with the
QR as PNG that zxing-cpp decodes back to the signed text; the staff page, booking form and JSON scoped by role and
tenant; the calendar (blackout, iCal import and export)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from litestar.testing import TestClient
from PIL import Image

from cloud.appointments import booking, outbox
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.appointments import verify
from sync.rate_limit import Limit, RateLimiter
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import add_branch, mail_relay
from tests.support.cloud_hub import wait_until

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)


@pytest.fixture
def app_parts(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient[Any], Any]]:
    engine = create_store_engine(store_url)
    add_branch(engine)
    add_branch(engine, tenant="other", branch_id="x-01")
    upsert_user(engine, "root", PASSWORD, "platform_admin", ["*"])
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "ira", PASSWORD, "auditor", ["acme"])
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    app.state["appt_clock"] = lambda: NOW
    app.state["appt_mail_seconds"] = 3600  # one pass at start and one per booking change
    with TestClient(app=app) as client:
        yield client, engine
    engine.dispose()


def _book_form(client: TestClient[Any], **changes: str) -> Any:
    form = {"lang": "en", "service_id": "cs", "day": "2027-03-03", "starts_at": SLOT.isoformat(), "name": "Siti Aminah",
            "email": "siti@example.com", "phone": ""} | changes  # fmt: skip
    return client.post("/book/acme/jkt-01", data=form, follow_redirects=False)


def test_public_booking_page_books_shows_the_qr_and_cancels(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    page = client.get("/book/acme/jkt-01?lang=id&day=2027-03-10")
    assert page.status_code == 200
    assert "Hari Raya Idul Fitri" in page.text  # the holiday says why it is closed
    assert 'id="times"' not in page.text
    en = client.get("/book/acme/jkt-01?lang=en&day=2027-03-03")
    assert "Book an appointment" in en.text
    assert en.text.count('name="starts_at"') == 8
    bad = _book_form(client, name="", email="not-an-email")
    assert bad.status_code == 400
    assert "Enter your name" in bad.text
    assert "not valid" in bad.text
    done = _book_form(client)
    assert done.status_code == 303, done.text
    code = done.headers["location"].split("/v/")[1].split("?")[0]
    _book_form(client, name="B")
    full = _book_form(client, name="C")
    assert full.status_code == 409
    assert "just filled up" in full.text
    view = client.get(f"/book/acme/v/{code}")
    assert view.status_code == 200
    assert "<svg" in view.text
    assert "03/03/2027 09:00" in view.text
    assert "siti@example.com" not in view.text
    assert client.get(f"/book/acme/v/{code[:-3]}AAA").status_code == 404  # a forged or mangled code
    assert client.get(f"/book/other/v/{code}").status_code == 404  # another tenant's key does not verify it
    png = client.get(f"/book/acme/v/{code}/qr.png")
    assert png.headers["content-type"] == "image/png"
    assert client.post(f"/book/acme/v/{code}/cancel", follow_redirects=False).status_code == 303
    assert 'data-status="cancelled"' in client.get(f"/book/acme/v/{code}").text
    assert _book_form(client, name="D").status_code == 303  # the place came back


def test_the_confirmation_e_mail_carries_a_decodable_qr(app_parts: tuple[TestClient[Any], Any], tmp_path: Path) -> None:
    client, engine = app_parts
    with mail_relay(engine, tmp_path) as smtp:
        code = _book_form(client).headers["location"].split("/v/")[1].split("?")[0]
        (mail,) = smtp.wait_for(1)  # sent by the hub's own mail pass, nudged by the booking
        sign_in(client, "ana")  # the staff see the message's state (never the address), and replay only dead ones

        def recorded() -> dict[str, Any] | None:  # the relay has the mail; the sender records it a moment later
            (listed,) = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-03").json()["bookings"]
            (message,) = listed["messages"]
            return message if message["status"] == "sent" else None

        sent = wait_until(recorded, what="the confirmation recorded as sent")
        assert outbox.owe(engine, NOW) == 0  # owed once: never twice
        assert outbox.claim(engine, NOW + timedelta(hours=1)) == []  # sent: never claimed again, lease or not
        assert (sent["kind"], sent["channel"], sent["status"]) == ("confirm", "email", "sent")
        page = client.get("/appointments?tenant=acme&branch=jkt-01&day=2027-03-03&lang=en").text
        assert "Confirmation · email: sent" in page
        not_dead = client.post(f"/api/v1/appointments/acme/messages/{sent['id']}/replay")  # sent: 409, not unknown
        assert (not_dead.status_code, not_dead.json()["code"]) == (409, "not_dead")
        assert client.post(f"/api/v1/appointments/other/messages/{sent['id']}/replay").status_code == 404
    assert mail.recipients == ["siti@example.com"]
    assert "03/03/2027 09:00" in mail.text
    assert f"https://hq.example/book/acme/v/{code}" in mail.text
    (png,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/png"]
    path = tmp_path / "qr.png"
    path.write_bytes(png.get_content())
    (decoded,) = zxingcpp.read_barcodes(Image.open(path))
    assert decoded.text == code
    with engine.connect() as conn:
        public = bytes.fromhex(booking.public_key_hex(conn, "acme", NOW))
    assert verify(decoded.text, public).branch_id == "jkt-01"


def test_staff_see_their_tenant_only_and_an_auditor_cannot_book(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    assert _book_form(client).status_code == 303
    sign_in(client, "ana")
    page = client.get("/appointments?tenant=acme&branch=jkt-01&day=2027-03-03&lang=en")
    assert page.status_code == 200
    assert "Siti Aminah" in page.text
    assert "siti@example.com" not in page.text  # contacts masked
    assert "x-01" not in page.text
    assert client.get("/appointments?tenant=other&branch=x-01").status_code == 404
    assert client.get("/api/v1/appointments/other/x-01/bookings").status_code == 404
    form = {"service_id": "cs", "starts_at": SLOT.isoformat(), "name": "Budi", "lang": "id", "day": "2027-03-03"}
    made = client.post("/appointments/acme/jkt-01/book?lang=en", data=form, follow_redirects=False)
    assert made.status_code == 303
    assert "saved=1" in made.headers["location"]
    listed = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-03").json()["bookings"]
    assert sorted(b["name"] for b in listed) == ["Budi", "Siti Aminah"]
    full = client.post("/api/v1/appointments/acme/jkt-01/bookings", json=form)
    assert full.status_code == 409
    assert full.json()["code"] == "slot_full"
    assert client.post("/api/v1/appointments/acme/jkt-01/bookings", json={"name": 5}).status_code == 400
    budi = next(b["booking_id"] for b in listed if b["name"] == "Budi")
    later = (SLOT + timedelta(minutes=30)).isoformat()
    moved = client.post(f"/appointments/acme/jkt-01/bookings/{budi}/reschedule", data={"starts_at": later},
                        follow_redirects=False)  # fmt: skip
    assert "saved=1" in moved.headers["location"]
    sign_in(client, "ira")
    assert client.get("/appointments?tenant=acme&branch=jkt-01").status_code == 200
    assert client.post("/appointments/acme/jkt-01/book", data=form, follow_redirects=False).status_code == 403


def test_calendar_blackout_import_and_export(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    sign_in(client, "ana")
    added = client.post("/appointments/acme/calendar", data={"day": "2027-03-04", "scope": "branch:jkt-01",
                        "kind": "blackout", "name": "Audit"}, follow_redirects=False)  # fmt: skip
    assert added.status_code == 303
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20270101T000000Z"
           b"\r\nDTSTART;VALUE=DATE:20270305\r\nSUMMARY:Renovasi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")  # fmt: skip
    imported = client.post("/appointments/acme/calendar", data={"scope": "tenant"},
                           files={"ics": ("c.ics", ics, "text/calendar")}, follow_redirects=False)  # fmt: skip
    assert imported.status_code == 303
    assert "error" not in imported.headers["location"]
    page = client.get("/appointments/acme/calendar?year=2027&lang=id")
    assert "Audit" in page.text
    assert "Renovasi" in page.text
    assert "Hari Raya Idul Fitri" in page.text
    exported = client.get("/appointments/acme/calendar.ics")
    assert exported.headers["content-type"].startswith("text/calendar")
    assert b"Renovasi" in exported.content
    for day in ("2027-03-04", "2027-03-05", "2027-03-10"):
        slots = client.get(f"/api/v1/appointments/acme/jkt-01/slots?service_id=cs&day={day}").json()
        assert slots["slots"] == []
        assert slots["closed"]
    assert client.get("/appointments/other/calendar").status_code == 404
    bad = client.post("/appointments/acme/calendar", data={"scope": "tenant"},
                      files={"ics": ("c.ics", b"nope", "text/calendar")}, follow_redirects=False)  # fmt: skip
    assert bad.status_code == 400  # the page again, saying why (tests/cloud/appointments/test_admin_validation.py)
    assert re.search(r"Pemesanan|Hari libur", page.text)


def test_public_bookings_are_rate_limited_per_address(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    client.app.state["appt_limiter"] = RateLimiter(Limit.parse("2/minute"))
    assert _book_form(client, name="A").status_code == 303
    assert _book_form(client, name="B").status_code == 303
    refused = _book_form(client, name="C")
    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert refused.headers["content-type"].startswith("text/html")  # a phone's browser gets a page, not JSON
    assert "Terlalu banyak percobaan. Coba lagi dalam 1 menit." in refused.text
