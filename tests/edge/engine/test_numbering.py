"""Ticket numbering: prefix + zero-padded daily sequence, reset at the branch's local midnight, never duplicated."""

from __future__ import annotations

from datetime import UTC, datetime

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from msgspec.structs import replace

from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.engine.numbering import business_date, format_number
from sync.contract import Event, NumbersLeased, TicketCreated
from tests.edge.engine.conftest import AT_MIDNIGHT, BEFORE_MIDNIGHT, Engine, ctr, small_config, svc, with_service


def test_prefix_and_padded_sequence(engine: Engine) -> None:
    assert [engine.enqueue("teller").ticket_number for _ in range(3)] == ["A001", "A002", "A003"]
    assert engine.enqueue("cs").ticket_number == "B001"  # sequences are per service
    assert engine.state.sequences == {"teller": 3, "cs": 1}


@pytest.mark.parametrize(("digits", "expected"), [(1, "A1"), (2, "A01"), (4, "A0001"), (6, "A000001")])
def test_digits_respected(digits: int, expected: str) -> None:
    assert format_number(svc("s", "A", digits=digits), 1) == expected


def test_numbering_wraps_after_the_ordinary_range_instead_of_widening() -> None:
    """Issue 11: A1000 with 3 digits. Walk-in numbers run A001…A900 (A901… is the offline block), then wrap."""
    engine = Engine(small_config([svc("a", "A")], [ctr("1", ["a"])]))
    numbers = [engine.enqueue("a").ticket_number for _ in range(900)]
    assert numbers[0] == "A001"
    assert numbers[-1] == "A900"
    engine.refuse(c.Enqueue(service_id="a"), "service_full")  # all 900 still waiting: no number is free
    served = [engine.serve("1").ticket_number for _ in range(3)]
    assert served == ["A001", "A002", "A003"]
    assert [engine.enqueue("a").ticket_number for _ in range(3)] == ["A001", "A002", "A003"]
    assert engine.state.sequences["a"] == 903  # the position keeps counting: capacity and replay use it
    engine.assert_replays()


def test_the_wrap_skips_numbers_still_active() -> None:
    engine = Engine(small_config([svc("a", "A", digits=2)], [ctr("1", ["a"])]))  # walk-ins A01…A90
    tickets = [engine.enqueue("a") for _ in range(90)]
    for t in tickets[:10]:  # A01…A10 end: their numbers are free again
        engine.run(c.Cancel(ticket_id=t.ticket_id))
    held = engine.enqueue("a")
    assert held.ticket_number == "A01"
    engine.run(c.Cancel(ticket_id=tickets[10].ticket_id))  # A11 frees, A02…A10 are free too
    assert [engine.enqueue("a").ticket_number for _ in range(10)] == [f"A{n:02d}" for n in range(2, 12)]
    engine.refuse(c.Enqueue(service_id="a"), "service_full")
    engine.assert_replays()


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
    assert fresh.ticket_number == "A002"  # yesterday's A001 is still being served: its number is skipped
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


# --------------------------------------------------------------------------------------------------------------
# Properties: whatever happens, no two active tickets share a number and the offline block stays separate
# --------------------------------------------------------------------------------------------------------------


class NumberingMachine(RuleBasedStateMachine):
    """Walk-ins, calls, finishes, cancels, kiosk leases and offline tickets, and new days on a 2-digit service.

    With 2 digits walk-ins are A01…A90 and the offline block A91…A99, so the wrap is reached within a few steps.
    """

    def __init__(self) -> None:
        super().__init__()
        self.e = Engine(small_config([svc("a", "A", digits=2)], [ctr("1", ["a"]), ctr("2", ["a"])]))
        self.leases: list[NumbersLeased] = []

    @initialize(keep=st.booleans())
    def day_close(self, keep: bool) -> None:
        if keep:
            config = self.e.state.config
            assert config is not None
            self.e.reconfigure(replace(config, day_close="keep"))

    def _try(self, cmd: c.Command) -> list[Event]:
        try:
            return self.e.run(cmd)
        except DomainError:
            return []

    @rule(n=st.integers(1, 40))
    def walk_ins(self, n: int) -> None:
        for _ in range(n):
            try:
                (event,) = self.e.run(c.Enqueue(service_id="a"))
            except DomainError as exc:
                refused = exc.code
            else:
                refused = None
            if refused is not None:
                assert refused == "service_full"
                assert self._held_ordinary() >= 90 - self._stale(), "refused although a walk-in number was free"
                return
            assert isinstance(event, TicketCreated)
            assert 1 <= event.seq_no <= 90, f"walk-in number {event.ticket_number} outside A01…A90"

    @rule(counter=st.sampled_from(["1", "2"]), finish=st.booleans())
    def call(self, counter: str, finish: bool) -> None:
        current = self.e.state.counters[counter].current_ticket
        if current is not None:
            self._try(c.Start(ticket_id=current, counter_id=counter))
            self._try(c.Complete(ticket_id=current, counter_id=counter))
        events = self._try(c.CallNext(counter_id=counter))
        if finish and events and events[-1].ticket_id:
            self._try(c.Start(ticket_id=events[-1].ticket_id, counter_id=counter))
            self._try(c.Complete(ticket_id=events[-1].ticket_id, counter_id=counter))

    @rule(i=st.integers(0, 200))
    def cancel(self, i: int) -> None:
        waiting = sorted(self.e.state.active("waiting"), key=lambda t: t.ticket_id)
        if waiting:
            self._try(c.Cancel(ticket_id=waiting[i % len(waiting)].ticket_id))

    @rule(count=st.integers(1, 4))
    def lease(self, count: int) -> None:
        for event in self._try(c.LeaseNumbers(device_id="k1", service_id="a", count=count)):
            assert isinstance(event, NumbersLeased)
            assert 91 <= event.first_seq <= event.last_seq <= 99, "a lease left the offline block A91…A99"
            self.leases.append(event)

    @rule(i=st.integers(0, 50), offset=st.integers(0, 3))
    def offline(self, i: int, offset: int) -> None:
        if not self.leases:
            return
        leased = self.leases[i % len(self.leases)]
        seq_no = leased.first_seq + offset
        cmd = c.EnqueueLeased(lease_id=leased.lease_id, seq_no=seq_no, issued_at=self.e.now, device_id="k1",
                              request_id=f"off-{leased.lease_id}-{seq_no}")  # fmt: skip
        for event in self._try(cmd):
            assert isinstance(event, TicketCreated)
            assert 91 <= event.seq_no <= 99

    @rule()
    def next_day(self) -> None:
        self.e.advance(days=1)
        self.e.tick_all()
        self.leases = []

    def _held_ordinary(self) -> int:
        return len({t.ticket_number for t in self.e.state.active() if int(t.ticket_number[1:]) <= 90})

    def _stale(self) -> int:
        config = self.e.state.config
        if config is None or config.day_close != "cancel":
            return 0
        today = self.e.state.business_date
        return sum(1 for t in self.e.state.active() if t.business_date < today and t.status in ("waiting", "held"))

    @invariant()
    def no_two_active_tickets_share_a_number(self) -> None:
        numbers = [t.ticket_number for t in self.e.state.active()]
        assert len(numbers) == len(set(numbers)), f"duplicate active numbers: {sorted(numbers)}"

    @invariant()
    def numbers_keep_their_digits(self) -> None:
        assert all(len(t.ticket_number) == 3 for t in self.e.state.tickets.values()), "a number widened"

    @invariant()
    def replays(self) -> None:
        self.e.assert_replays()


TestNumberingMachine = NumberingMachine.TestCase
TestNumberingMachine.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
