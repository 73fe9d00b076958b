"""Ticket numbering: prefix + zero-padded daily sequence, reset at the branch's local midnight, never duplicated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from edge.engine import commands as c
from edge.engine.numbering import business_date, format_number
from tests.edge.engine.conftest import AT_MIDNIGHT, BEFORE_MIDNIGHT, Engine, svc, with_service


def test_prefix_and_padded_sequence(engine: Engine) -> None:
    assert [engine.enqueue("teller").ticket_number for _ in range(3)] == ["A001", "A002", "A003"]
    assert engine.enqueue("cs").ticket_number == "B001"  # sequences are per service
    assert engine.state.sequences == {"teller": 3, "cs": 1}


@pytest.mark.parametrize(("digits", "expected"), [(1, "A1"), (2, "A01"), (4, "A0001"), (6, "A000001")])
def test_digits_respected(digits: int, expected: str) -> None:
    assert format_number(svc("s", "A", digits=digits), 1) == expected


def test_number_widens_past_the_digits_instead_of_wrapping() -> None:
    s = svc("s", "A", digits=2)
    assert format_number(s, 99) == "A99"
    assert format_number(s, 100) == "A100"


def test_business_date_is_local_jakarta() -> None:
    assert business_date(BEFORE_MIDNIGHT, "Asia/Jakarta") == "2026-01-12"
    assert business_date(AT_MIDNIGHT, "Asia/Jakarta") == "2026-01-13"
    assert business_date(AT_MIDNIGHT, "UTC") == "2026-01-12"


def test_reset_at_local_midnight(demo) -> None:
    engine = Engine(demo, now=BEFORE_MIDNIGHT.replace(hour=16, minute=0))
    engine.enqueue("teller")
    engine.now = BEFORE_MIDNIGHT
    last = engine.enqueue("teller")
    assert (last.ticket_number, last.business_date) == ("A002", "2026-01-12")
    engine.now = AT_MIDNIGHT
    first = engine.enqueue("teller")
    assert (first.ticket_number, first.business_date) == ("A001", "2026-01-13")
    assert engine.state.business_date == "2026-01-13"
    engine.assert_replays()


def test_other_timezone_resets_at_its_own_midnight(demo) -> None:
    engine = Engine(replace(demo, timezone="Asia/Makassar"), now=BEFORE_MIDNIGHT)
    # 16:59:59Z is already 00:59:59 on the 13th in Makassar (UTC+8).
    assert engine.enqueue("teller").business_date == "2026-01-13"


def test_no_duplicate_numbers_in_a_day_even_after_cancels_and_transfers(engine: Engine) -> None:
    numbers = []
    for i in range(30):
        t = engine.enqueue("teller" if i % 2 else "cs")
        numbers.append((t.ticket_number, t.business_date))
        if i % 3 == 0:
            engine.run(c.Cancel(ticket_id=t.ticket_id))
        elif i % 5 == 0 and t.service_id == "cs":
            engine.run(c.Transfer(ticket_id=t.ticket_id, to_service_id="loan"))
    numbers.append((engine.enqueue("loan").ticket_number, engine.state.business_date))
    assert len(numbers) == len(set(numbers))


def test_clock_going_back_does_not_reuse_yesterdays_numbers(demo) -> None:
    engine = Engine(demo, now=AT_MIDNIGHT)
    a = engine.enqueue("teller")
    engine.now = BEFORE_MIDNIGHT  # e.g. an NTP step backwards
    b = engine.enqueue("teller")
    assert (a.ticket_number, b.ticket_number) == ("A001", "A002")
    assert a.business_date == b.business_date == "2026-01-13"


def test_new_day_forgets_finished_tickets_but_keeps_active_ones(demo) -> None:
    engine = Engine(demo, now=datetime(2026, 1, 12, 10, 0, tzinfo=UTC))
    done = engine.enqueue("teller")
    engine.serve("1")
    waiting = engine.enqueue("teller")
    engine.now = AT_MIDNIGHT
    fresh = engine.enqueue("teller")
    assert done.ticket_id not in engine.state.tickets
    assert engine.ticket(waiting.ticket_id).status == "waiting"
    # Yesterday's A002 and today's A001 coexist; yesterday's is still first in line.
    assert fresh.ticket_number == "A001"
    assert engine.call_next("1").ticket_id == waiting.ticket_id
    engine.assert_replays()


def test_capacity_counts_the_daily_sequence(demo) -> None:
    engine = Engine(with_service(demo, "teller", daily_capacity=1), now=BEFORE_MIDNIGHT)
    engine.enqueue("teller")
    engine.refuse(c.Enqueue(service_id="teller"), "service_full")
    engine.now = AT_MIDNIGHT
    assert engine.enqueue("teller").ticket_number == "A001"


def test_day_close_cancels_yesterdays_waiting_and_held_tickets_once(demo) -> None:
    engine = Engine(demo, now=BEFORE_MIDNIGHT.replace(hour=15))
    first = engine.enqueue("teller")
    held = engine.enqueue("teller")
    engine.run(c.Hold(ticket_id=held.ticket_id))
    waiting = engine.enqueue("teller")
    serving = engine.call_next("1")
    assert serving is not None
    assert serving.ticket_id == first.ticket_id
    engine.run(c.Start(ticket_id=serving.ticket_id, counter_id="1"))
    assert engine.tick_all() == []  # before midnight nothing closes
    engine.now = AT_MIDNIGHT
    closed = engine.tick_all()
    assert engine.types(closed) == ["ticket.cancelled", "ticket.cancelled"]
    assert {e.ticket_id for e in closed} == {waiting.ticket_id, held.ticket_id}
    assert all(e.reason == "end_of_day" and e.actor == "system" for e in closed)  # type: ignore[attr-defined]
    assert engine.ticket(serving.ticket_id).status == "serving"  # the counter finishes what it started
    assert engine.tick_all() == []  # exactly once
    fresh = engine.enqueue("teller")
    assert fresh.ticket_number == "A001"
    assert engine.call_next("2") is not None
    assert engine.state.active("waiting") == []
    engine.assert_replays()


def test_day_close_keep_carries_tickets_over_and_a_clock_step_back_closes_nothing(demo) -> None:
    engine = Engine(replace(demo, day_close="keep"), now=BEFORE_MIDNIGHT)
    kept = engine.enqueue("teller")
    engine.now = AT_MIDNIGHT
    assert engine.tick_all() == []
    assert engine.ticket(kept.ticket_id).status == "waiting"
    closing = Engine(demo, now=AT_MIDNIGHT)
    today = closing.enqueue("teller")
    closing.now = BEFORE_MIDNIGHT  # NTP steps back: today's ticket is not "yesterday's"
    assert closing.tick_all() == []
    assert closing.ticket(today.ticket_id).status == "waiting"
