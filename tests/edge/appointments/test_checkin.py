"""Check-in at the branch, offline: the pure decision for every code a kiosk may read (valid, forged, another
tenant's, wrong branch, wrong day, unknown, cancelled, early, late under both policies, already used), and the kiosk's
`POST /kiosk/api/checkin` through the real appliance app (ticket of channel `appointment` with its time and priority;
the same code twice or from two kiosks -> one ticket; a refusal names nobody)."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from edge.appointments import store
from edge.appointments.checkin import Admit, Refuse, decide
from sync.appointments import BookedVisit, BookingsDocument, CheckinCode, QrInvalid, sign, verify
from tests.edge.web.conftest import Api, assert_problem

JKT = ZoneInfo("Asia/Jakarta")
KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
BRANCH = "jkt-sudirman"
IDS = ["AAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCC", "DDDDDDDDDDDDDDDD"]


def _public(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def document(at: datetime, *, late_policy: str = "walk_in", service: str = "cs") -> BookingsDocument:
    """Bookings at `at`: IDS[0] booked, IDS[1] cancelled, IDS[3] booked an hour later (IDS[2] unknown here)."""
    day = at.astimezone(JKT).date().isoformat()
    visits = [
        BookedVisit(booking_id=IDS[0], service_id=service, starts_at=at, day=day, status="booked", priority=1),
        BookedVisit(booking_id=IDS[1], service_id=service, starts_at=at, day=day, status="cancelled"),
        BookedVisit(booking_id=IDS[3], service_id=service, starts_at=at + timedelta(hours=1), day=day,
                    status="booked"),
    ]  # fmt: skip
    return BookingsDocument(branch_id=BRANCH, generated_at=at, public_key=_public(KEY), late_policy=late_policy,
                            visits=visits)  # fmt: skip


def code(booking_id: str = IDS[0], branch: str = BRANCH, day: date | None = None, key: Ed25519PrivateKey = KEY,
         at: datetime | None = None) -> str:  # fmt: skip
    moment = at or datetime(2027, 3, 3, 2, 0, tzinfo=UTC)
    return sign(CheckinCode(booking_id, branch, day or moment.astimezone(JKT).date()), key)


AT = datetime(2027, 3, 3, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta


def _decide(text: str, now: datetime = AT, used: frozenset[str] = frozenset(), **doc: Any) -> Admit | Refuse:
    return decide(text, document(AT, **doc), branch_id=BRANCH, today=now.astimezone(JKT).date(), now=now, used=used)


def test_a_valid_code_inside_the_window_is_admitted() -> None:
    for offset in (-30, 0, 15):
        got = _decide(code(), AT + timedelta(minutes=offset))
        assert isinstance(got, Admit)
        assert not got.late
        assert got.visit.booking_id == IDS[0]
    assert isinstance(_decide(code().lower()), Admit)  # a scanner in lower case still reads


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("hello", AT, "invalid"),
        ("https://example.com/x", AT, "invalid"),  # any other QR
        (code(key=OTHER), AT, "invalid"),  # another tenant's (or a forger's) key
        (code()[:-4] + "AAAA", AT, "invalid"),  # tampered
        (code(branch="bdg-dago"), AT, "wrong_branch"),
        (code(day=date(2027, 3, 4)), AT, "wrong_day"),
        (code(IDS[2]), AT, "unknown"),
        (code(IDS[1]), AT, "cancelled"),
        (code(), AT - timedelta(minutes=31), "too_early"),
    ],
)
def test_each_bad_code_gets_its_own_safe_refusal(text: str, now: datetime, expected: str) -> None:
    got = _decide(text, now)
    assert isinstance(got, Refuse)
    assert got.code == expected


def test_late_arrivals_follow_the_policy_and_a_used_code_is_refused() -> None:
    late = AT + timedelta(minutes=16)
    walk_in = _decide(code(), late)
    assert isinstance(walk_in, Admit)
    assert walk_in.late
    refused = _decide(code(), late, late_policy="refuse")
    assert isinstance(refused, Refuse)
    assert refused.code == "too_late"
    used = _decide(code(), used=frozenset({IDS[0]}))
    assert isinstance(used, Refuse)
    assert used.code == "used"
    assert decide(code(), None, branch_id=BRANCH, today=AT.date(), now=AT, used=frozenset()) == Refuse("no_bookings")
    assert decide("https://example.com/x", None, branch_id=BRANCH, today=AT.date(), now=AT,
                  used=frozenset()) == Refuse("invalid")  # not ours whatever is loaded  # fmt: skip


@given(st.text(max_size=300))
def test_verify_never_crashes_on_any_text(text: str) -> None:
    with contextlib.suppress(QrInvalid):
        verify(text, bytes.fromhex(_public(KEY)))


# --- through the appliance's kiosk API -----------------------------------------------------------------------------


def _checkin(api: Api, text: str, lang: str = "id") -> Any:
    return api.client.post("/kiosk/api/checkin", json={"code": text, "lang": lang}, headers=api.h("admin"))


def test_the_kiosk_issues_the_appointment_ticket_once(api: Api, data_dir: Path) -> None:
    now = api.clock()
    starts = now + timedelta(minutes=10)
    store.save(data_dir, document(starts, service="teller"))
    r = _checkin(api, code(at=starts))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["late"] is False
    ticket = api.ticket(body["ticket"]["ticket_id"])
    assert (ticket["channel"], ticket["service_id"], ticket["priority"]) == ("appointment", "teller", 1)
    assert datetime.fromisoformat(ticket["appointment_at"]) == starts
    again = _checkin(api, code(at=starts))
    assert_problem(again, 422, "checkin_used")
    assert "Siti" not in again.text
    assert IDS[3] not in again.text
    created = [e for e in api.events("ticket.created") if e.get("customer_ref") == f"booking:{IDS[0]}"]
    assert len(created) == 1


def test_the_kiosk_refuses_clearly_and_late_is_a_walk_in(api: Api, data_dir: Path) -> None:
    now = api.clock()
    assert_problem(_checkin(api, code(at=now)), 422, "checkin_no_bookings")
    store.save(data_dir, document(now - timedelta(minutes=20)))
    late = _checkin(api, code(at=now))
    assert late.status_code == 201, late.text
    assert late.json()["late"] is True
    assert api.ticket(late.json()["ticket"]["ticket_id"])["channel"] == "kiosk"
    early = _checkin(api, code(IDS[3], at=now))
    assert assert_problem(early, 422, "checkin_too_early")["opens_at"]
    assert_problem(_checkin(api, code(key=OTHER, at=now)), 422, "checkin_invalid")


@pytest.mark.parametrize("text", ["https://example.com/x", "<script>", "WIFI:S:cafe;T:WPA;P:secret;;", "Q1 not base32!",
                                  "00020101021126570011ID.DANA.WWW" + "9" * 300, "x" * 4296,
                                  "1" * 7089])  # fmt: skip
def test_any_other_qr_a_scanner_reads_is_refused_as_unreadable_not_as_a_bad_request(api: Api, data_dir: Path,
                                                                                     text: str) -> None:  # fmt: skip
    """A web address, a Wi-Fi or payment QR: the kiosk's safe 'cannot be read here' answer, not a 400 naming the
    schema (the kiosk showed its generic error for those); with or without bookings loaded."""
    problem = assert_problem(_checkin(api, text), 422, "checkin_invalid")
    assert "pattern" not in problem["detail"]
    store.save(data_dir, document(api.clock()))
    assert_problem(_checkin(api, text), 422, "checkin_invalid")


def test_a_body_without_a_code_is_still_a_bad_request(api: Api) -> None:
    post = api.client.post
    assert_problem(post("/kiosk/api/checkin", json={"lang": "id"}, headers=api.h("admin")), 400, "invalid_body")
    assert_problem(post("/kiosk/api/checkin", json={"code": ""}, headers=api.h("admin")), 400, "invalid_body")
    # the most a QR holds is 7089 digits (version 40-L, numeric mode): anything longer no scanner read from a QR
    assert_problem(post("/kiosk/api/checkin", json={"code": "1" * 7090}, headers=api.h("admin")), 400, "invalid_body")
    assert_problem(post("/kiosk/api/checkin", json={"code": 12}, headers=api.h("admin")), 400, "invalid_body")
    not_json = post(
        "/kiosk/api/checkin", content=b"Q1AAAA", headers={**api.h("admin"), "content-type": "application/json"}
    )
    assert not_json.status_code == 400, not_json.text
