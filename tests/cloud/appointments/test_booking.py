"""Booking at the hub on SQLite and PostgreSQL: slots only on open days, never overbooked under concurrency (threads
against the real database; a Hypothesis interleaving of book/cancel/reschedule), cancel and reschedule free places,
the signed QR verifies with the tenant's public key, and the branch's bookings document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.calendar import Entry
from cloud.appointments.tables import appt_bookings, appt_slots
from cloud.store import create_store_engine, transaction
from sync.appointments import QrInvalid, verify
from tests.cloud.appointments.support import add_branch

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)  # a Wednesday


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store with one branch and its bookable service (capacity 2)."""
    eng = create_store_engine(store_url)
    add_branch(eng)
    yield eng
    eng.dispose()


def _branch(conn: sa.Connection) -> booking.Branch:
    found = booking.load_branch(conn, "acme", "jkt-01")
    assert found is not None
    return found


def _book(engine: Engine, at: datetime = SLOT, name: str = "Siti") -> booking.Booking:
    with transaction(engine) as conn:
        return booking.book(conn, _branch(conn), "cs", at, name=name, email="siti@example.com", phone=None,
                            lang="id", actor="public", now=NOW)  # fmt: skip


def test_no_slot_on_idul_fitri_or_a_configured_blackout(engine: Engine) -> None:
    with transaction(engine) as conn:
        branch = _branch(conn)
        assert len(booking.day_slots(conn, branch, "cs", date(2027, 3, 3), NOW)) == 8
        assert booking.day_slots(conn, branch, "cs", date(2027, 3, 10), NOW) == []  # Idul Fitri 1448 H
        booking.put_entry(conn, "acme", Entry("branch:jkt-01", date(2027, 3, 4), "blackout", "Audit"))
        assert booking.day_slots(conn, branch, "cs", date(2027, 3, 4), NOW) == []
        assert booking.day_slots(conn, branch, "cs", date(2027, 3, 6), NOW) == []  # Saturday: closed
    for closed in (datetime(2027, 3, 10, 9, 0, tzinfo=JKT), datetime(2027, 3, 4, 9, 0, tzinfo=JKT)):
        with pytest.raises(booking.BookingRefused) as refused:
            _book(engine, closed)
        assert refused.value.code == "day_closed"
    with pytest.raises(booking.BookingRefused) as refused:
        _book(engine, SLOT + timedelta(minutes=10))
    assert refused.value.code == "no_slot"


def test_concurrent_bookings_never_overbook(engine: Engine) -> None:
    """Twelve threads book one slot of capacity 2 at once: exactly two succeed, the rest are told it is full."""
    barrier = threading.Barrier(12)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            _book(engine, name=f"p{i}")
            result = "ok"
        except booking.BookingRefused as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "ok"] + ["slot_full"] * 10
    with engine.connect() as conn:
        assert conn.execute(sa.select(appt_slots.c.booked)).scalar_one() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(appt_bookings)).scalar_one() == 2


def test_cancel_and_reschedule_free_places(engine: Engine) -> None:
    first, second = _book(engine), _book(engine)
    with pytest.raises(booking.BookingRefused):
        _book(engine)
    later = SLOT + timedelta(minutes=30)
    with transaction(engine) as conn:
        moved = booking.reschedule(conn, _branch(conn), first.booking_id, later, NOW)
    assert moved.starts_at == later
    third = _book(engine)  # the place `first` left
    with transaction(engine) as conn:
        booking.cancel(conn, "acme", second.booking_id, NOW)
        with pytest.raises(booking.BookingRefused):
            booking.cancel(conn, "acme", second.booking_id, NOW)
        assert booking.get(conn, "other-tenant", third.booking_id) is None
        left = {s.starts_at: s.left for s in booking.day_slots(conn, _branch(conn), "cs", SLOT.date(), NOW)}
    assert left[SLOT] == 1
    assert left[later] == 1


def test_a_full_target_slot_leaves_the_booking_where_it_was(engine: Engine) -> None:
    mine = _book(engine)
    later = SLOT + timedelta(minutes=30)
    _book(engine, later), _book(engine, later)
    with pytest.raises(booking.BookingRefused), transaction(engine) as conn:
        booking.reschedule(conn, _branch(conn), mine.booking_id, later, NOW)
    with engine.connect() as conn:
        assert booking.get(conn, "acme", mine.booking_id).starts_at == SLOT  # type: ignore[union-attr]


def test_the_qr_is_signed_with_the_tenants_key(engine: Engine) -> None:
    mine = _book(engine)
    with transaction(engine) as conn:
        text = booking.qr_text(conn, mine, NOW)
        public = bytes.fromhex(booking.public_key_hex(conn, "acme", NOW))
        other = bytes.fromhex(booking.public_key_hex(conn, "other", NOW))
    code = verify(text, public)
    assert (code.booking_id, code.branch_id, code.day) == (mine.booking_id, "jkt-01", date(2027, 3, 3))
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567Q1")
    with pytest.raises(QrInvalid):
        verify(text, other)


def test_the_branch_document_holds_today_and_tomorrow_without_contacts(engine: Engine) -> None:
    today = _book(engine, datetime(2027, 3, 1, 10, 0, tzinfo=JKT))
    tomorrow = _book(engine, datetime(2027, 3, 2, 8, 0, tzinfo=JKT))
    _book(engine, SLOT)  # the day after tomorrow: not yet
    with transaction(engine) as conn:
        doc = booking.bookings_document(conn, _branch(conn), NOW)
    assert [v.booking_id for v in doc.visits] == [today.booking_id, tomorrow.booking_id]
    assert "siti" not in repr(doc).lower()
    assert (doc.checkin_before_minutes, doc.checkin_after_minutes, doc.late_policy) == (30, 15, "walk_in")


ops = st.lists(st.tuples(st.sampled_from(["book", "cancel", "move"]), st.integers(0, 3), st.integers(0, 20)),
               max_size=25)  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_no_overbooking_under_any_sequence(engine: Engine, steps: list[tuple[str, int, int]]) -> None:
    """Any sequence of book/cancel/reschedule keeps every slot's `booked` equal to its live bookings and <= capacity."""
    with transaction(engine) as conn:
        conn.execute(appt_bookings.delete())
        conn.execute(appt_slots.delete())
    slots = [SLOT + timedelta(minutes=30 * i) for i in range(4)]
    mine: list[str] = []
    for op, slot, pick in steps:
        try:
            if op == "book":
                mine.append(_book(engine, slots[slot]).booking_id)
            elif mine:
                with transaction(engine) as conn:
                    target = mine[pick % len(mine)]
                    if op == "cancel":
                        booking.cancel(conn, "acme", target, NOW)
                    else:
                        booking.reschedule(conn, _branch(conn), target, slots[slot], NOW)
        except booking.BookingRefused:
            pass
    with engine.connect() as conn:
        live: dict[str, int] = dict(
            conn.execute(
                sa.select(appt_bookings.c.starts_at, sa.func.count())
                .where(appt_bookings.c.status == "booked")
                .group_by(appt_bookings.c.starts_at)
            ).all()
        )
        for row in conn.execute(sa.select(appt_slots)).all():
            assert row.booked <= row.capacity == 2
            assert row.booked == live.get(row.starts_at, 0)


def test_reminders_are_owed_the_day_before_once_confirmed(engine: Engine) -> None:
    """A booking is owed its confirmation once the tenant can send it, and its reminder within 24 h of its time (not
    when just booked), each once; a claimed message is leased to one sender."""
    from cloud.appointments import outbox
    from cloud.notify import policy

    _book(engine)
    assert outbox.owe(engine, NOW) == 0  # no e-mail provider yet: still owed
    with transaction(engine) as conn:
        policy.save_provider(conn, "acme", "email", "email", {"host": "127.0.0.1", "port": 9, "sender": "a@b.example"},
                             ("password",))  # fmt: skip
    assert outbox.owe(engine, NOW) == 1
    assert outbox.owe(engine, NOW) == 0  # owed once
    (first,) = outbox.claim(engine, NOW)
    assert first.message.attachments[0].content_type == "image/png"
    assert outbox.claim(engine, NOW) == []  # leased to the first claim
    day_before = SLOT - timedelta(hours=20)
    assert outbox.owe(engine, day_before) == 1
    assert outbox.owe(engine, day_before) == 0
    reminder = next(j for j in outbox.claim(engine, day_before) if j.message.key.endswith("/remind/email"))
    assert reminder.message.subject is not None
    assert reminder.message.subject.startswith("Pengingat")
    assert outbox.owe(engine, SLOT + timedelta(minutes=1)) == 0
