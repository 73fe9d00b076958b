"""The customer managing their own booking (issue 15) through the real hub app (SQLite and PostgreSQL): moving it to
another free time on its own page (the booking's rules: calendar, capacity, not in the past, not cancelled or
checked in), the old code leading to the new one and refused by the kiosk's check once the day changed, the pushed
bookings document following the move; "add to calendar" (.ics, also attached to the confirmation e-mail); and the
integrators' JSON cancel and reschedule with problem+json codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.tables import branch_profiles
from cloud.appointments import booking
from cloud.appointments.tables import appt_slots
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from edge.appointments.checkin import Admit, Refuse, decide
from sync.appointments import verify
from sync.rate_limit import Limit, RateLimiter
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import add_branch, mail_relay

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)  # Wednesday
THURSDAY = datetime(2027, 3, 4, 10, 0, tzinfo=JKT)
IDUL_FITRI = datetime(2027, 3, 10, 9, 0, tzinfo=JKT)
ADDRESS = "Jl. H.R. Rasuna Said Kav. 1, Jakarta"


@pytest.fixture
def app_parts(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient[Any], Any]]:
    engine = create_store_engine(store_url)
    add_branch(engine)
    add_branch(engine, tenant="other", branch_id="x-01")
    with transaction(engine) as conn:
        conn.execute(branch_profiles.update().where(branch_profiles.c.branch_id == "jkt-01").values(address=ADDRESS))
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "ira", PASSWORD, "auditor", ["acme"])
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    app.state["appt_clock"] = lambda: NOW
    app.state["appt_mail_seconds"] = 3600
    app.state["appt_limiter"] = RateLimiter(Limit.parse("1000/minute"))  # this test is not about the limit
    with TestClient(app=app) as client:
        yield client, engine
    engine.dispose()


def _book(client: TestClient[Any], at: datetime = SLOT, name: str = "Siti Aminah", tenant: str = "acme",
          branch: str = "jkt-01", lang: str = "en", email: str = "") -> str:  # fmt: skip
    form = {"lang": lang, "service_id": "cs", "day": at.date().isoformat(), "starts_at": at.isoformat(), "name": name,
            "email": email, "phone": ""}  # fmt: skip
    made = client.post(f"/book/{tenant}/{branch}", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    return str(made.headers["location"].split("/v/")[1].split("?")[0])


def _move(client: TestClient[Any], code: str, at: datetime | str, lang: str = "en") -> Any:
    text = at if isinstance(at, str) else at.isoformat()
    return client.post(f"/book/acme/v/{code}/reschedule?lang={lang}", data={"starts_at": text, "day": ""},
                       follow_redirects=False)  # fmt: skip


def _booked(engine: Any, at: datetime) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(appt_slots.c.booked).where(appt_slots.c.starts_at == at.astimezone(UTC).isoformat())
        ).scalar_one_or_none()
    return int(found or 0)


def _code_of(location: str) -> str:
    return location.split("/v/")[1].split("?", maxsplit=1)[0]


def test_the_customer_moves_the_booking_and_the_old_code_stops_checking_in(
    app_parts: tuple[TestClient[Any], Any],
) -> None:
    client, engine = app_parts
    code = _book(client)
    page = client.get(f"/book/acme/v/{code}?lang=id")
    assert "Ganti jadwal" in page.text
    assert page.text.count('name="starts_at"') == 8  # the booking's own day: its time marked, not choosable
    assert "jadwal Anda" in page.text
    thursday = client.get(f"/book/acme/v/{code}?lang=en&day=2027-03-04")
    assert "Change the time" in thursday.text
    assert THURSDAY.isoformat() in thursday.text

    moved = _move(client, code, THURSDAY)
    assert moved.status_code == 303, moved.text
    assert "moved=1" in moved.headers["location"]
    new = _code_of(moved.headers["location"])
    assert new != code  # another day: a new signed code
    with engine.connect() as conn:
        key = bytes.fromhex(booking.public_key_hex(conn, "acme", NOW))
    assert verify(new, key).day == date(2027, 3, 4)
    assert verify(new, key).booking_id == verify(code, key).booking_id  # the same booking
    shown = client.get(moved.headers["location"])
    assert "04/03/2027 10:00" in shown.text
    assert "has moved" in shown.text
    assert (_booked(engine, SLOT), _booked(engine, THURSDAY)) == (0, 1)  # the old place freed, the new one taken
    stale = client.get(f"/book/acme/v/{code}?lang=en", follow_redirects=False)  # the link in an earlier e-mail
    assert stale.status_code == 303
    assert _code_of(stale.headers["location"]) == new

    # the pushed document follows the move; the kiosk refuses the old code and admits the new one
    wednesday_morning = datetime(2027, 3, 3, 1, 0, tzinfo=UTC)
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        document = booking.bookings_document(conn, branch, wednesday_morning)
    (visit,) = document.visits
    assert (visit.day, visit.starts_at) == ("2027-03-04", THURSDAY)
    for today, now in ((date(2027, 3, 3), SLOT), (date(2027, 3, 4), THURSDAY)):
        old = decide(code, document, branch_id="jkt-01", today=today, now=now, used=frozenset())
        assert isinstance(old, Refuse)
        assert old.code == "wrong_day"
    admitted = decide(new, document, branch_id="jkt-01", today=date(2027, 3, 4), now=THURSDAY, used=frozenset())
    assert isinstance(admitted, Admit)

    # within the same day: the code stays, the time moves
    later = THURSDAY + timedelta(minutes=30)
    same_day = _move(client, new, later)
    assert _code_of(same_day.headers["location"]) == new
    assert (_booked(engine, THURSDAY), _booked(engine, later)) == (0, 1)
    assert _move(client, new, later).status_code == 303  # to the time it already has: nothing changes
    assert _booked(engine, later) == 1


def test_a_move_that_cannot_be_made_says_why_and_changes_nothing(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = app_parts
    code = _book(client)
    full = SLOT + timedelta(hours=1)
    _book(client, full, "A")
    _book(client, full, "B")
    for at, status, words in ((full, 409, "just filled up"), (IDUL_FITRI, 409, "no appointments on that date"),
                              (datetime(2027, 3, 1, 7, 30, tzinfo=JKT), 409, "already passed"),
                              (SLOT + timedelta(minutes=10), 409, "not available"),
                              ("tomorrow at nine", 400, "not available"),
                              ("2027-03-04T10:00:00", 400, "not available")):  # fmt: skip
        refused = _move(client, code, at)
        assert refused.status_code == status, (at, refused.text)
        assert words in refused.text
        assert "03/03/2027 09:00" in refused.text  # still where it was
    assert (_booked(engine, SLOT), _booked(engine, full)) == (1, 2)
    id_words = _move(client, code, full, lang="id")
    assert "baru saja penuh" in id_words.text
    assert _move(client, "A" * 60, THURSDAY).status_code == 404  # not a signed code
    other = _book(client, tenant="other", branch="x-01")
    assert client.post(f"/book/acme/v/{other}/reschedule", data={"starts_at": THURSDAY.isoformat()},
                       follow_redirects=False).status_code == 404  # fmt: skip
    assert client.get(f"/book/acme/v/{other}/booking.ics").status_code == 404
    client.post(f"/book/acme/v/{code}/cancel", follow_redirects=False)
    cancelled = _move(client, code, THURSDAY)
    assert cancelled.status_code == 409
    assert "was cancelled" in cancelled.text
    assert 'id="move"' not in client.get(f"/book/acme/v/{code}").text


def test_add_to_calendar_gives_one_event_in_utc(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    code = _book(client)
    page = client.get(f"/book/acme/v/{code}?lang=id")
    assert f"/book/acme/v/{code}/booking.ics" in page.text
    assert "Tambahkan ke kalender" in page.text
    got = client.get(f"/book/acme/v/{code}/booking.ics?lang=en")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(got.content)
    (event,) = cal.walk("VEVENT")
    assert event.decoded("dtstart") == SLOT.astimezone(UTC)
    assert event.decoded("dtstart").utcoffset() == timedelta(0)
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=30)
    assert str(event["summary"]) == "Appointment: Customer service · KCP Kuningan"
    assert str(event["location"]) == f"KCP Kuningan, {ADDRESS}"
    booking_id = client.get(f"/book/acme/v/{code}").text.split('id="booking-id">')[1].split("<")[0]
    assert booking_id in str(event["description"])
    assert "03/03/2027 09:00 (Asia/Jakarta)" in str(event["description"])
    assert str(cal["x-wr-timezone"]) == "Asia/Jakarta"
    assert client.get(f"/book/acme/v/{code[:-3]}AAA/booking.ics").status_code == 404


def test_the_confirmation_e_mail_carries_the_calendar_file(
    app_parts: tuple[TestClient[Any], Any], tmp_path: Path
) -> None:
    client, engine = app_parts
    with mail_relay(engine, tmp_path) as smtp:
        code = _book(client, email="siti@example.com", lang="id")
        (mail,) = smtp.wait_for(1)
        (ics,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "text/calendar"]
        raw = ics.get_payload(decode=True)  # UTF-8 (RFC 5545)
        assert isinstance(raw, bytes)
        (event,) = icalendar.Calendar.from_ical(raw).walk("VEVENT")
        assert event.decoded("dtstart") == SLOT.astimezone(UTC)
        assert str(event["summary"]) == "Janji temu Customer service · KCP Kuningan"
        assert str(event["url"]) == f"https://hq.example/book/acme/v/{code}"


def test_integrators_cancel_and_reschedule_with_problem_codes(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = app_parts
    sign_in(client, "ana")
    api = "/api/v1/appointments/acme/jkt-01/bookings"
    made = client.post(api, json={"service_id": "cs", "starts_at": SLOT.isoformat(), "name": "Budi"}).json()
    bid = made["booking_id"]
    moved = client.post(f"{api}/{bid}/reschedule", json={"starts_at": THURSDAY.isoformat()})
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["day"], body["status"]) == ("2027-03-04", "booked")
    assert datetime.fromisoformat(body["starts_at"]) == THURSDAY
    assert body["qr_text"] != made["qr_text"]
    full = SLOT + timedelta(hours=1)
    for name in ("A", "B"):
        client.post(api, json={"service_id": "cs", "starts_at": full.isoformat(), "name": name})
    for at, code in ((full, "slot_full"), (IDUL_FITRI, "day_closed"),
                     (datetime(2027, 3, 1, 7, 30, tzinfo=JKT), "past"),
                     (SLOT + timedelta(minutes=10), "no_slot")):  # fmt: skip
        refused = client.post(f"{api}/{bid}/reschedule", json={"starts_at": at.isoformat()})
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == code
    for bad in ({"starts_at": "tomorrow"}, {"starts_at": "2027-03-04T10:00:00"}, {}, {"starts_at": 5},
                {"starts_at": "9999-12-31T23:30:00-12:00"}, [1]):  # fmt: skip
        malformed = client.post(f"{api}/{bid}/reschedule", json=bad)
        assert malformed.status_code == 400, (bad, malformed.text)
        assert malformed.headers["content-type"].startswith("application/problem+json")
    assert _booked(engine, THURSDAY) == 1  # refusals changed nothing

    # another tenant's booking, an unknown id and a malformed id are all simply not found here
    other = client.post("/book/other/x-01", data={"lang": "en", "service_id": "cs", "starts_at": SLOT.isoformat(),
                        "name": "X", "email": "", "phone": ""}, follow_redirects=False)  # fmt: skip
    with engine.connect() as conn:
        key = bytes.fromhex(booking.public_key_hex(conn, "other", NOW))
    other_id = verify(_code_of(other.headers["location"]), key).booking_id
    for missing in (other_id, "A" * 16, "not-an-id"):
        for action, body_ in (("cancel", None), ("reschedule", {"starts_at": THURSDAY.isoformat()})):
            answer = client.post(f"{api}/{missing}/{action}", json=body_)
            assert answer.status_code == 404, (missing, action, answer.text)
            assert answer.json()["code"] == "not_found"
    assert client.post(f"/api/v1/appointments/other/x-01/bookings/{other_id}/cancel").status_code == 404

    cancelled = client.post(f"{api}/{bid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert _booked(engine, THURSDAY) == 0
    assert client.post(f"{api}/{bid}/cancel").json()["code"] == "cancelled"
    again = client.post(f"{api}/{bid}/reschedule", json={"starts_at": THURSDAY.isoformat()})
    assert (again.status_code, again.json()["code"]) == (409, "cancelled")

    visited = client.post(api, json={"service_id": "cs", "starts_at": THURSDAY.isoformat(), "name": "C"}).json()
    with transaction(engine) as conn:
        booking.mark_checked_in(conn, "acme", "jkt-01", visited["booking_id"], "T1", NOW.isoformat())
    for action, body_ in (("cancel", None), ("reschedule", {"starts_at": full.isoformat()})):
        answer = client.post(f"{api}/{visited['booking_id']}/{action}", json=body_)
        assert (answer.status_code, answer.json()["code"]) == (409, "checked_in")

    sign_in(client, "ira")  # an auditor reads, never changes
    assert client.post(f"{api}/{visited['booking_id']}/cancel").status_code == 403


def test_the_api_documents_cancel_and_reschedule(app_parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = app_parts
    paths = client.get("/schema/openapi.json").json()["paths"]
    base = "/api/v1/appointments/{tenant}/{branch_id}/bookings/{booking_id}"
    assert "post" in paths[f"{base}/cancel"]
    assert "post" in paths[f"{base}/reschedule"]
