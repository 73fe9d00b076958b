"""The public booking pages and the booking API refuse as people and programs expect (SQLite and PostgreSQL, the
real hub app): refusals on a phone's pages are id/en pages with their status (404, 429), never JSON; control
characters in a name or contact are field errors on every path; a malformed `day` is a 400 naming it; days beyond
the booking horizon are offered as closed, as booking refuses them; API problems carry a type, a stable code and every
bad field; a checked-in booking's page says so instead of offering the QR; a booking no message can reach says so;
a cancellation (customer or staff) is e-mailed, and the e-mail's links are absolute on the hub's own address when the
tenant names none (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.appointments import booking, outbox
from cloud.appointments.tables import appt_bookings
from cloud.cli import app as cli
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from sync.rate_limit import Limit, RateLimiter
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import add_branch, mail_relay

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)
HUB = "https://book.example"  # the hub's own public address (QMS_PUBLIC_URL)


@pytest.fixture
def parts(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient[Any], Any]]:
    engine = create_store_engine(store_url)
    add_branch(engine)
    add_branch(engine, branch_id="no-online")
    with transaction(engine) as conn:  # a branch whose only service takes no bookings
        booking.save_service(conn, "acme", "no-online", "cs", name="CS", slot_minutes=30, capacity=2, active=False)
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", ["acme"])
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys", public_url=HUB))
    clock = {"now": NOW}
    app.state["appt_clock"] = lambda: clock["now"]
    app.state["appt_mail_seconds"] = 3600
    app.state["test_clock"] = clock
    with TestClient(app=app) as client:
        yield client, engine
    engine.dispose()


def _form(**changes: str) -> dict[str, str]:
    return {"lang": "en", "service_id": "cs", "day": "2027-03-03", "starts_at": SLOT.isoformat(),
            "name": "Siti Aminah", "email": "siti@example.com", "phone": ""} | changes  # fmt: skip


def _book(client: TestClient[Any], **changes: str) -> Any:
    return client.post("/book/acme/jkt-01", data=_form(**changes), follow_redirects=False)


def _code(done: Any) -> str:
    assert done.status_code == 303, done.text
    return str(done.headers["location"].split("/v/")[1].split("?")[0])


def _bookings(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(appt_bookings)))


def test_refusals_on_public_pages_are_pages_in_both_languages(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    cases = [("/book/nobody/jkt-01", "Branch not found.", "Cabang tidak ditemukan."),
             ("/book/acme/nowhere", "Branch not found.", "Cabang tidak ditemukan."),
             ("/book/acme/no-online", "This branch does not take bookings online.",
              "Cabang ini tidak menerima janji temu secara online."),
             ("/book/acme/v/garbage", "Booking not found.", "Janji temu tidak ditemukan."),
             ("/book/acme/v/garbage/qr.png", "Booking not found.", "Janji temu tidak ditemukan.")]  # fmt: skip
    for path, en, id_ in cases:
        for lang, words in (("en", en), ("id", id_)):
            page = client.get(f"{path}?lang={lang}")
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert words in page.text, path
            assert f'<html lang="{lang}">' in page.text
    moved = client.post("/book/acme/v/garbage/reschedule?lang=en", data={"starts_at": "zzz"})
    assert (moved.status_code, moved.headers["content-type"][:9]) == (404, "text/html")
    # the JSON API keeps answering problem+json
    api = client.get("/api/v1/appointments/nobody/jkt-01/slots?service_id=cs")
    assert (api.status_code, api.headers["content-type"]) == (404, "application/problem+json")


def test_control_characters_are_field_errors_on_every_booking_path(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    for field, value in (("name", "a\x00b"), ("name", "Siti\nBcc: x@evil.example"), ("email", "a\x00b@example.com"),
                         ("email", "siti@example.com\u2028x"), ("phone", "0812\x0034567")):  # fmt: skip
        page = _book(client, **{field: value})
        assert page.status_code == 400, (field, value)
        assert {"name": "Enter your name", "email": "e-mail address is not valid",
                "phone": "phone number is not valid"}[field] in page.text  # fmt: skip
    sign_in(client, "ana")
    body = {"service_id": "cs", "starts_at": SLOT.isoformat(), "name": "a\u0000b", "email": "b\u0000@example.com",
            "phone": "0812\u00003456"}  # fmt: skip
    refused = client.post("/api/v1/appointments/acme/jkt-01/bookings", json=body)
    assert refused.status_code == 400
    assert refused.json()["fields"] == ["email", "name", "phone"]
    staff = client.post("/appointments/acme/jkt-01/book?lang=en", data={**body, "day": "2027-03-03"},
                        follow_redirects=False)  # fmt: skip
    assert staff.status_code in (303, 400)  # the staff form answers beside its fields (its own page's way)
    assert staff.status_code == 400 or "error=" in staff.headers["location"]
    assert _bookings(engine) == []  # nothing was stored
    assert _book(client, name="Siti Aminah").status_code == 303  # a clean one still books


def test_a_malformed_day_is_a_400_naming_it(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    for day in ("2026-02-30", "2026-99-99", "x" * 10_000, "2027-3-3", "\uff12\uff10\uff12\uff17-03-03", "20270303"):
        slots = client.get("/api/v1/appointments/acme/jkt-01/slots", params={"service_id": "cs", "day": day})
        assert slots.status_code == 400, day
        problem = slots.json()
        assert (problem["code"], problem["fields"]) == ("invalid_fields", ["day"])
        assert slots.headers["content-type"] == "application/problem+json"
    sign_in(client, "ana")
    listed = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2026-99-99")
    assert (listed.status_code, listed.json()["fields"]) == (400, ["day"])
    assert client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-03").status_code == 200
    assert client.get("/api/v1/appointments/acme/jkt-01/slots?service_id=cs").json()["day"] == "2027-03-01"
    assert client.get("/book/acme/jkt-01?day=2026-02-30").status_code == 200  # a person's page falls back


def test_days_beyond_the_horizon_are_offered_as_closed_as_booking_refuses_them(
    parts: tuple[TestClient[Any], Any],
) -> None:
    client, _engine = parts
    last = datetime(2027, 4, 30, tzinfo=JKT).date()  # NOW's day + 60: a Friday, still taken
    for day, open_ in (("9999-12-31", False), ("2027-05-03", False), ("2027-03-17", True), (last.isoformat(), True)):
        slots = client.get(f"/api/v1/appointments/acme/jkt-01/slots?service_id=cs&day={day}").json()
        assert bool(slots["slots"]) is open_, day
        assert slots["closed"] == (None if open_ else "beyond_horizon"), day
    sign_in(client, "ana")
    far = datetime(2027, 5, 3, 9, 0, tzinfo=JKT).isoformat()
    refused = client.post("/api/v1/appointments/acme/jkt-01/bookings",
                          json={"service_id": "cs", "starts_at": far, "name": "Budi"})  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (409, "no_slot")
    at_edge = datetime.combine(last, datetime.min.time(), JKT).replace(hour=9).isoformat()
    made = client.post("/api/v1/appointments/acme/jkt-01/bookings",
                       json={"service_id": "cs", "starts_at": at_edge, "name": "Budi"})  # fmt: skip
    assert made.status_code == 201
    for lang, words in (("en", "not open for booking yet"), ("id", "belum dibuka untuk pemesanan")):
        page = client.get(f"/book/acme/jkt-01?lang={lang}&day=2027-05-03")
        assert words in page.text
        assert 'name="starts_at"' not in page.text


def test_api_problems_have_a_type_a_stable_code_and_every_bad_field(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    sign_in(client, "ana")
    url = "/api/v1/appointments/acme/jkt-01/bookings"
    empty = client.post(url, json={})
    assert empty.status_code == 400
    problem = empty.json()
    assert problem["fields"] == ["name", "service_id", "starts_at"]
    assert (problem["type"], problem["title"], problem["code"]) == (
        "urn:qms:problem:invalid_fields", "Bad Request", "invalid_fields")  # fmt: skip
    bad_time = client.post(url, json={"service_id": "cs", "starts_at": "zzz", "name": "B", "email": "nope"})
    assert bad_time.json()["fields"] == ["email", "starts_at"]
    unknown = client.post(url, json={"service_id": "nope", "starts_at": SLOT.isoformat(), "name": "B"})
    assert unknown.status_code == 422
    assert (unknown.json()["code"], unknown.json()["type"]) == ("unknown_service", "urn:qms:problem:unknown_service")
    for name in ("A", "B"):
        made = client.post(url, json={"service_id": "cs", "starts_at": SLOT.isoformat(), "name": name})
        assert made.status_code == 201
    full = client.post(url, json={"service_id": "cs", "starts_at": SLOT.isoformat(), "name": "C"})
    assert full.status_code == 409
    assert (full.json()["title"], full.json()["type"], full.json()["code"]) == (
        "Conflict", "urn:qms:problem:slot_full", "slot_full")  # fmt: skip
    missing = client.post(f"{url}/AAAAAAAAAAAAAAAA/cancel")
    assert (missing.status_code, missing.json()["code"], missing.json()["title"]) == (404, "not_found", "Not Found")
    moved = client.post(f"{url}/AAAAAAAAAAAAAAAA/reschedule", json={"starts_at": 5})
    assert (moved.status_code, moved.json()["fields"]) == (400, ["starts_at"])
    unknown_slots = client.get("/api/v1/appointments/acme/jkt-01/slots?service_id=nope")
    assert (unknown_slots.status_code, unknown_slots.json()["code"]) == (404, "unknown_service")


def test_a_checked_in_booking_cannot_be_cancelled_and_its_page_says_so(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    code = _code(_book(client))
    (row,) = _bookings(engine)
    with transaction(engine) as conn:
        booking.mark_checked_in(conn, "acme", "jkt-01", row.booking_id, "A001", SLOT.isoformat())
    for lang, words in (("en", "You have already checked in"), ("id", "Anda sudah check-in untuk janji ini")):
        refused = client.post(f"/book/acme/v/{code}/cancel?lang={lang}", follow_redirects=False)
        assert refused.status_code == 409
        assert words in refused.text
        assert 'data-state="checked_in"' in refused.text
        assert 'id="qr"' not in refused.text  # no "show this QR at the kiosk"
        assert 'id="cancel"' not in refused.text
    assert _bookings(engine)[0].status == "checked_in"
    view = client.get(f"/book/acme/v/{code}?lang=en")
    assert "You have already checked in for this appointment" in view.text
    assert 'id="qr"' not in view.text
    other = _code(_book(client, name="Budi", starts_at=(SLOT + timedelta(minutes=30)).isoformat()))
    client.app.state["test_clock"]["now"] = SLOT + timedelta(minutes=46)  # its check-in window (15 min) passed
    late = client.get(f"/book/acme/v/{other}?lang=en")
    assert 'data-state="no_show"' in late.text
    assert "The check-in time of this appointment has passed." in late.text
    assert 'id="qr"' not in late.text


def test_a_booking_no_message_can_reach_says_so(parts: tuple[TestClient[Any], Any], tmp_path: Path) -> None:
    client, _engine = parts
    assert _book(client, email="", phone="0812 3456 789").status_code == 303  # no SMS or WhatsApp provider
    sign_in(client, "ana")
    (listed,) = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-03").json()["bookings"]
    (message,) = listed["messages"]
    assert (message["status"], message["reason"], message["channel"]) == ("skipped", "no_channel", "none")
    page = client.get("/appointments?tenant=acme&branch=jkt-01&day=2027-03-03&lang=en").text
    assert 'data-message-status="skipped"' in page
    with mail_relay(client.app.state["engine"], tmp_path) as smtp:  # an e-mail booking with a provider: no such note
        assert _book(client, name="Budi").status_code == 303
        smtp.wait_for(1)
        listed = client.get("/api/v1/appointments/acme/jkt-01/bookings?day=2027-03-03").json()["bookings"]
        budi = next(b for b in listed if b["name"] == "Budi")
        assert all(m["status"] != "skipped" for m in budi["messages"])


def test_cancellations_are_e_mailed_with_absolute_links_on_the_hubs_address(
    parts: tuple[TestClient[Any], Any], tmp_path: Path
) -> None:
    client, engine = parts
    with mail_relay(engine, tmp_path) as smtp:
        with transaction(engine) as conn:  # the tenant names no public address: the hub's own is used
            policy.save(conn, "acme", policy.TenantPolicy(public_url=""))
        code = _code(_book(client))
        (confirmation,) = smtp.wait_for(1)
        assert f"{HUB}/book/acme/v/{code}" in confirmation.text
        assert "/book/" not in confirmation.text.replace(f"{HUB}/book/", "")  # no relative link anywhere
        assert client.post(f"/book/acme/v/{code}/cancel?lang=en", follow_redirects=False).status_code == 303
        _confirmation, cancelled = smtp.wait_for(2)
        sign_in(client, "ana")
        later = (SLOT + timedelta(minutes=30)).isoformat()
        made = client.post("/api/v1/appointments/acme/jkt-01/bookings",
                           json={"service_id": "cs", "starts_at": later, "name": "Budi", "email": "budi@example.com",
                                 "lang": "id"})  # fmt: skip
        smtp.wait_for(3)
        assert client.post(f"/api/v1/appointments/acme/jkt-01/bookings/{made.json()['booking_id']}/cancel")\
            .status_code == 200  # fmt: skip
        by_staff = smtp.wait_for(4)[3]
    assert cancelled.recipients == ["siti@example.com"]
    assert cancelled.message["Subject"] == "Appointment at KCP Kuningan on 03/03/2027 09:00 cancelled"
    assert f"{HUB}/book/acme/v/{code}" in cancelled.text
    types = [p.get_content_type() for p in cancelled.message.iter_attachments()]
    assert types == ["text/calendar"]  # no QR for a cancelled visit; the calendar event says CANCELLED
    (ics,) = list(cancelled.message.iter_attachments())
    assert b"STATUS:CANCELLED" in ics.get_content() if isinstance(ics.get_content(), bytes) else \
        "STATUS:CANCELLED" in ics.get_content()  # fmt: skip
    assert by_staff.recipients == ["budi@example.com"]
    assert "dibatalkan" in by_staff.message["Subject"]
    assert by_staff.text.count(f"{HUB}/book/acme/v/") == 1


def test_serve_refuses_a_public_url_that_is_not_an_address() -> None:
    result = CliRunner().invoke(cli, ["serve", "--public-url", "hq.example/book"])
    assert result.exit_code == 2
    assert "QMS_PUBLIC_URL" in result.output


def test_find_my_booking_by_number_and_contact_without_probing(parts: tuple[TestClient[Any], Any]) -> None:
    client, engine = parts
    client.app.state["appt_limiter"] = RateLimiter(Limit.parse("100/minute"))
    code = _code(_book(client, phone="0812-3456-7890"))
    (row,) = _bookings(engine)
    number = row.booking_id
    spaced = f"{number[:4].lower()} {number[4:8]}-{number[8:]}"  # typed as read aloud
    for contact in ("siti@EXAMPLE.com", "+62 812 3456 7890", "6281234567890"):
        found = client.post("/book/acme/jkt-01/find?lang=en", data={"booking_id": spaced, "contact": contact},
                            follow_redirects=False)  # fmt: skip
        assert found.status_code == 303, contact
        assert found.headers["location"] == f"/book/acme/v/{code}?lang=en"
    other = "A" * 16 if number != "A" * 16 else "B" * 16
    answers = []
    wrong = [(number, "budi@example.com"), (other, "siti@example.com"), (number, "0812 0000 0000"),
             ("nonsense", "siti@example.com"), (number, ""), (number, "siti@example.com\x00")]  # fmt: skip
    for number_, contact in wrong:
        missed = client.post("/book/acme/jkt-01/find?lang=en", data={"booking_id": number_, "contact": contact},
                             follow_redirects=False)  # fmt: skip
        assert missed.status_code == 404
        assert "No booking matches that number and contact." in missed.text
        answers.append(missed.text.split('id="err-find"')[1][:120])
    assert len(set(answers)) == 1  # the same answer whichever half was wrong
    in_id = client.post("/book/acme/jkt-01/find?lang=id", data={"booking_id": other, "contact": "x@example.com"})
    assert in_id.text.count("Tidak ada janji dengan nomor dan kontak itu.") == 1
    client.app.state["appt_limiter"] = RateLimiter(Limit.parse("2/minute"))  # searches spend the bookings' budget
    for _ in range(2):
        client.post("/book/acme/jkt-01/find", data={"booking_id": other, "contact": "x@example.com"})
    limited = client.post("/book/acme/jkt-01/find?lang=en", data={"booking_id": number, "contact": "siti@example.com"},
                          follow_redirects=False)  # fmt: skip
    assert limited.status_code == 429
    assert "Too many attempts" in limited.text
    assert limited.headers["retry-after"]


def test_the_search_answer_page_reopened_leads_to_the_booking_page(parts: tuple[TestClient[Any], Any]) -> None:
    client, _engine = parts
    again = client.get("/book/acme/jkt-01/find?lang=en&service=cs&day=2027-03-03&x=<y>", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/book/acme/jkt-01?lang=en&service=cs&day=2027-03-03"
    assert "Find my booking" in client.get("/book/acme/jkt-01/find?lang=en").text


def test_links_are_the_tenants_address_else_the_hubs_else_unknown(engine: Any) -> None:
    with transaction(engine) as conn:
        assert outbox.link_base(conn, "acme", HUB) == "https://hq.example"  # the tenant's own wins
        policy.save(conn, "acme", policy.TenantPolicy(public_url=""))
        assert outbox.link_base(conn, "acme", HUB + "/") == HUB
        assert outbox.link_base(conn, "acme", "") == ""  # unknown: the staff page has to say so
