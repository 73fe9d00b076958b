"""Staff page and booking API follow-ups (SQLite and PostgreSQL, the real hub app): the staff page warns when the
customers' links cannot be made absolute (no tenant or hub public address) and names what to set; a staff form with a
malformed time comes back to the page with the reason (never JSON); a booking no channel can reach says why in
words; the staff booking form's language field is in words; the booking's .ics names its charset once; the booking
API's bad fields carry English reasons and a body that is not a JSON object is `invalid_body`; replaying a booking
message that is not dead is 409 `not_dead`, an unknown one 404."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.appointments.tables import appt_bookings, appt_messages
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import add_branch

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)
PAGE = "/appointments?tenant=acme&branch=jkt-01&day=2027-03-03&lang={lang}"
API = "/api/v1/appointments/acme/jkt-01/bookings"


@pytest.fixture
def parts(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient[Any], Any]]:
    """The hub with no public address of its own (no QMS_PUBLIC_URL) and acme naming none either."""
    engine = create_store_engine(store_url)
    add_branch(engine)
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "root", PASSWORD, "platform_admin", ["*"])
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys", public_url=""))
    app.state["appt_clock"] = lambda: NOW
    app.state["appt_mail_seconds"] = 3600
    with TestClient(app=app) as client:
        yield client, engine
    engine.dispose()


def _book(client: TestClient[Any], **changes: str) -> str:
    form = {"lang": "en", "service_id": "cs", "day": "2027-03-03", "starts_at": SLOT.isoformat(),
            "name": "Siti Aminah", "email": "siti@example.com", "phone": ""} | changes  # fmt: skip
    done = client.post("/book/acme/jkt-01", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    return str(done.headers["location"].split("/v/")[1].split("?")[0])


def _booking_ids(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return [r.booking_id for r in conn.execute(sa.select(appt_bookings).order_by(appt_bookings.c.name))]


def test_the_staff_page_warns_when_customers_links_cannot_be_made(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    sign_in(client, "ana")
    for lang, words in (("id", "alamat publik belum diatur"), ("en", "no public address is set")):
        page = client.get(PAGE.format(lang=lang)).text
        assert 'id="links-unknown"' in page
        assert words in page
        assert "QMS_PUBLIC_URL (--public-url)" in page
        assert 'href="/notify/settings?tenant=acme&amp;lang=' + lang in page
    with transaction(engine) as conn:
        policy.save(conn, "acme", policy.TenantPolicy(public_url="https://acme.example"))
    assert 'id="links-unknown"' not in client.get(PAGE.format(lang="en")).text
    with transaction(engine) as conn:
        policy.save(conn, "acme", policy.TenantPolicy(public_url=""))
    client.app.state["public_url"] = "https://book.example"  # the hub's own address (QMS_PUBLIC_URL)
    assert 'id="links-unknown"' not in client.get(PAGE.format(lang="en")).text


def test_staff_forms_with_a_malformed_time_come_back_with_the_reason(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    _book(client)
    (booking_id,) = _booking_ids(engine)
    sign_in(client, "ana")
    base = "/appointments/acme/jkt-01"
    for url, form in ((f"{base}/bookings/{booking_id}/reschedule?lang=en", {"starts_at": "zzz", "day": "2027-03-03"}),
                      (f"{base}/book?lang=en", {"starts_at": "zzz", "day": "2027-03-03", "service_id": "cs",
                                                "name": "Budi", "lang": "id"})):  # fmt: skip
        refused = client.post(url, data=form, follow_redirects=False)
        assert refused.status_code == 303, refused.text
        assert "error=err_starts_at" in refused.headers["location"]
        page = client.get(refused.headers["location"]).text
        assert 'id="error"' in page
        assert "That time is not valid" in page
    assert _booking_ids(engine) == [booking_id]  # nothing booked, nothing moved
    with engine.connect() as conn:
        assert conn.execute(sa.select(appt_bookings.c.starts_at)).scalar_one() == SLOT.astimezone(UTC).isoformat()


def test_a_booking_no_channel_reaches_says_why_in_words(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    _book(client, email="", phone="0812 3456 789")  # no provider for SMS or WhatsApp
    sign_in(client, "ana")
    for lang, words in (("en", "Confirmation · skipped (no channel for this contact)"),
                        ("id", "Konfirmasi · dilewati (tidak ada saluran untuk kontak ini)")):  # fmt: skip
        page = client.get(PAGE.format(lang=lang)).text
        assert 'data-reason="no_channel"' in page
        assert words in " ".join(page.replace('<span data-reason="no_channel">', "").replace("</span>", "").split())
        assert "none:" not in page


def test_the_staff_booking_forms_language_is_in_words(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    sign_in(client, "ana")
    for lang, label in (("id", "Bahasa"), ("en", "Language")):
        page = client.get(PAGE.format(lang=lang)).text
        assert f'<label>{label} <select name="lang" id="sb-lang">' in page
        assert '<option value="id">Bahasa Indonesia</option><option value="en">English</option>' in page
        assert "Lang <select" not in page


def test_the_bookings_calendar_file_names_its_charset_once(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    code = _book(client)
    got = client.get(f"/book/acme/v/{code}/booking.ics")
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/calendar; charset=utf-8"
    assert got.text.startswith("BEGIN:VCALENDAR")


def test_the_booking_api_says_why_a_field_is_bad_and_refuses_a_body_that_is_not_an_object(
    parts: tuple[TestClient[Any], Any],
) -> None:
    client, engine = parts
    _book(client)
    (booking_id,) = _booking_ids(engine)
    sign_in(client, "ana")
    move = f"{API}/{booking_id}/reschedule"
    for body, reason in (({"starts_at": "2026-12-07T10:30:00"}, "an RFC 3339 time with offset is required"),
                         ({}, "required: an RFC 3339 time with offset"),
                         ({"starts_at": 123}, "must be a string: an RFC 3339 time with offset"),
                         ({"starts_at": "zzz"}, "an RFC 3339 time with offset is required"),
                         ({"starts_at": "1999-12-07T10:30:00+07:00"}, "out of range")):  # fmt: skip
        refused = client.post(move, json=body)
        assert refused.status_code == 400, refused.text
        problem = refused.json()
        assert (problem["code"], problem["fields"]) == ("invalid_fields", ["starts_at"])
        assert problem["errors"]["starts_at"].startswith(reason), problem
        assert "err_" not in refused.text
    booked = client.post(API, json={"service_id": "", "starts_at": "zzz", "name": "", "email": "nope",
                                    "phone": "x"})  # fmt: skip
    errors = booked.json()["errors"]
    assert sorted(errors) == ["email", "name", "phone", "service_id", "starts_at"]
    assert not any(v.startswith("err_") for v in errors.values()), errors
    assert errors["name"].startswith("a name of 1-120 characters")
    day = client.get(f"{API}?day=2027-02-30").json()
    assert day["errors"] == {"day": "a real date as YYYY-MM-DD is required"}
    for url in (move, API):
        for raw in (b"{not json", b"[1, 2]", b'"text"'):
            refused = client.post(url, content=raw, headers={"content-type": "application/json"})
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            problem = refused.json()
            assert (problem["type"], problem["code"], problem["title"]) == (
                "urn:qms:problem:invalid_body", "invalid_body", "Bad Request")  # fmt: skip
    other = client.post(f"/api/v1/appointments/acme/nowhere/bookings/{booking_id}/reschedule",
                        json={"starts_at": SLOT.isoformat()})  # fmt: skip
    assert other.status_code == 404  # the route's other refusals stay the hub's own
    assert other.headers["content-type"].startswith("application/problem+json")


def test_replaying_a_message_that_is_not_dead_is_a_conflict(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    _book(client)
    (booking_id,) = _booking_ids(engine)
    with transaction(engine) as conn:  # the confirmation, sent
        conn.execute(appt_messages.insert().values(
            tenant_id="acme", branch_id="jkt-01", booking_id=booking_id, kind="confirm", round=0, channel="email",
            status="sent", attempts=1, created_at=NOW.isoformat(), updated_at=NOW.isoformat(),
            sent_at=NOW.isoformat()))  # fmt: skip
        message_id = conn.execute(sa.select(sa.func.max(appt_messages.c.id))).scalar_one()
    sign_in(client, "ana")
    refused = client.post(f"/api/v1/appointments/acme/messages/{message_id}/replay")
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (refused.json()["code"], refused.json()["type"]) == ("not_dead", "urn:qms:problem:not_dead")
    assert client.post(f"/api/v1/appointments/acme/messages/{message_id + 1000}/replay").status_code == 404
    with transaction(engine) as conn:
        conn.execute(appt_messages.update().where(appt_messages.c.id == message_id).values(status="dead"))
    sign_in(client, "root")  # another tenant's path does not find acme's message, even for the platform
    assert client.post(f"/api/v1/appointments/beta/messages/{message_id}/replay").status_code == 404
    replayed = client.post(f"/api/v1/appointments/acme/messages/{message_id}/replay")
    assert replayed.json() == {"id": message_id, "status": "pending"}
