"""Kiosk number leases (offline buffer): reserve, reconcile exactly once, never a duplicate number, replayable."""

from __future__ import annotations

from datetime import timedelta

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.engine.eta import positions
from sync.contract import NumbersLeased, TicketCreated
from tests.edge.engine.conftest import AT_MIDNIGHT, T0, Engine, ctr, projection, replay, small_config, svc


def engine(**service: object) -> Engine:
    """One service `A` (prefix A) and one counter."""
    return Engine(small_config([svc("a", "A", **service)], [ctr("1", ["a"])]))


def lease(e: Engine, count: int = 5, device: str = "kiosk-1") -> NumbersLeased:
    """Take a lease and return its event."""
    (event,) = e.run(c.LeaseNumbers(device_id=device, service_id="a", count=count))
    assert isinstance(event, NumbersLeased)
    return event


def offline(e: Engine, leased: NumbersLeased, seq_no: int, minutes_ago: float = 0, **kw: object) -> TicketCreated:
    """Reconcile one offline ticket of the lease."""
    cmd = c.EnqueueLeased(
        lease_id=leased.lease_id,
        seq_no=seq_no,
        issued_at=e.now - timedelta(minutes=minutes_ago),
        device_id=leased.device_id,
        request_id=f"off-{leased.lease_id}-{seq_no}",
        **kw,  # type: ignore[arg-type]
    )
    (event,) = e.run(cmd)
    assert isinstance(event, TicketCreated)
    return event


def test_lease_comes_from_the_offline_block_and_leaves_ordinary_numbering_alone() -> None:
    e = engine()
    first = e.run(c.Enqueue(service_id="a"))[0]
    leased = lease(e, 5)
    assert (leased.first_seq, leased.last_seq) == (901, 905)
    assert leased.business_date == "2026-01-12"
    after = e.run(c.Enqueue(service_id="a"))[0]
    assert isinstance(first, TicketCreated)
    assert isinstance(after, TicketCreated)
    assert (first.ticket_number, after.ticket_number) == ("A001", "A002")  # no gap for the next walk-in
    assert (lease(e, 2).first_seq, lease(e, 1).first_seq) == (906, 908)  # later blocks follow the earlier ones


def test_ordinary_numbering_wraps_below_the_leased_block() -> None:
    e = engine(digits=1)  # ordinary numbers 1..9, the offline block from 10
    leased = lease(e, 3)
    assert (leased.first_seq, leased.last_seq) == (10, 12)
    numbers = [e.enqueue("a").ticket_number for _ in range(9)]
    assert numbers == [f"A{n}" for n in range(1, 10)]
    e.refuse(c.Enqueue(service_id="a"), "service_full")  # every ordinary number is held by a waiting ticket
    assert e.serve("1").ticket_number == "A1"
    assert e.enqueue("a").ticket_number == "A1"  # wrapped, never into the leased block
    assert lease(e, 2).first_seq == 13  # blocks follow each other
    offline(e, leased, 11)
    e.serve("1")
    e.serve("1")  # A2 and A3 are finished
    assert e.enqueue("a").ticket_number == "A2"


def test_offline_ticket_joins_with_its_leased_number_and_original_time() -> None:
    e = engine()
    leased = lease(e, 3)
    e.advance(minutes=20)
    created = offline(e, leased, 902, minutes_ago=5, phone="081234567890", lang="en")
    assert created.ticket_number == "A902"
    assert created.occurred_at == e.now - timedelta(minutes=5)
    assert created.request_id == f"off-{leased.lease_id}-902"
    ticket = e.ticket(created.ticket_id or "")
    assert ticket.status == "waiting"
    assert ticket.created_at == created.occurred_at
    assert ticket.channel == "kiosk"
    assert e.state.leases[leased.lease_id].used == (902,)
    assert e.enqueue("a").ticket_number == "A001"  # a reconciled number does not move ordinary numbering


def test_reconciled_tickets_take_their_place_by_issue_time_across_services() -> None:
    e = Engine(small_config([svc("a", "A"), svc("b", "B")], [ctr("1", ["a", "b"])]))
    leased = lease(e, 3)
    a1 = e.enqueue("a")  # t = 0
    e.advance(minutes=10)
    b1 = e.enqueue("b")  # t = 10
    e.advance(minutes=10)
    a2 = e.enqueue("a")  # t = 20
    e.advance(minutes=10)  # t = 30: the kiosk's link is back
    late = offline(e, leased, 902, minutes_ago=15)  # issued at t = 15
    early = offline(e, leased, 901, minutes_ago=25)  # issued at t = 5, synced after the other one
    last = offline(e, leased, 903, minutes_ago=1)  # issued at t = 29, after every waiting ticket
    ahead = positions(e.state, e.now, "a")
    assert [ahead[t.ticket_id or ""][0] for t in (early, late, last)] == [2, 3, 5]  # A001 A901 A902 A002 A903
    called = [e.serve("1").ticket_number for _ in range(6)]
    assert called == [a1.ticket_number, "A901", b1.ticket_number, "A902", a2.ticket_number, "A903"]
    e.assert_replays()


def test_a_leased_number_is_reconciled_at_most_once() -> None:
    e = engine()
    leased = lease(e, 3)
    offline(e, leased, 901)
    e.refuse(
        c.EnqueueLeased(lease_id=leased.lease_id, seq_no=901, issued_at=e.now, device_id="kiosk-1", request_id="x"),
        "lease_number_used",
    )


def test_numbers_outside_the_lease_another_device_or_unknown_lease_are_refused() -> None:
    e = engine()
    leased = lease(e, 3)
    base = {"issued_at": e.now, "request_id": "r1"}
    for seq_no in (1, 900, 904):
        e.refuse(
            c.EnqueueLeased(lease_id=leased.lease_id, seq_no=seq_no, device_id="kiosk-1", **base),
            "lease_number_invalid",
        )  # type: ignore[arg-type]
    e.refuse(c.EnqueueLeased(lease_id=leased.lease_id, seq_no=901, device_id="kiosk-2", **base), "lease_wrong_device")  # type: ignore[arg-type]
    e.refuse(c.EnqueueLeased(lease_id="nope", seq_no=901, device_id="kiosk-1", **base), "lease_not_found")  # type: ignore[arg-type]


def test_issued_time_is_clamped_between_the_lease_and_now() -> None:
    e = engine()
    leased = lease(e, 2)
    e.advance(minutes=10)
    early = offline(e, leased, 901, minutes_ago=60)  # kiosk clock far behind
    late = offline(e, leased, 902, minutes_ago=-60)  # kiosk clock ahead
    assert early.occurred_at == leased.occurred_at
    assert late.occurred_at == e.now


def test_lease_respects_daily_capacity_and_inactive_services() -> None:
    e = engine(daily_capacity=4)
    e.run(c.Enqueue(service_id="a"))
    leased = lease(e, 10)
    assert (leased.first_seq, leased.last_seq) == (901, 903)  # leased numbers count against the capacity
    e.refuse(c.LeaseNumbers(device_id="kiosk-1", service_id="a", count=1), "service_full")
    e.refuse(c.Enqueue(service_id="a"), "service_full")
    e.refuse(c.LeaseNumbers(device_id="kiosk-1", service_id="a", count=0), "invalid_lease_size")
    e.refuse(c.LeaseNumbers(device_id="kiosk-1", service_id="zz", count=1), "unknown_service")
    offline(e, leased, 902)  # a leased number stays usable at capacity
    other = engine(daily_capacity=3)
    lease(other, 2)
    assert other.enqueue("a").ticket_number == "A001"
    other.refuse(c.Enqueue(service_id="a"), "service_full")


def test_no_lease_for_a_closed_service_but_its_leased_numbers_stay_valid_after_closing() -> None:
    closed = engine(hours={"sun": [("08:00", "09:00")]})  # T0 is a Monday
    closed.refuse(c.LeaseNumbers(device_id="kiosk-1", service_id="a", count=3), "service_closed")
    e = engine(hours={"mon": [("08:00", "10:00")]})  # T0 is 09:00 in Jakarta
    leased = lease(e, 2)
    e.advance(hours=2)  # closed now; a ticket the kiosk issued offline before closing still joins
    assert offline(e, leased, 901, minutes_ago=90).ticket_number == "A901"


def test_a_lease_expires_with_its_business_day() -> None:
    e = engine()
    leased = lease(e, 3)
    e.now = AT_MIDNIGHT
    fresh = e.run(c.Enqueue(service_id="a"))[0]
    assert isinstance(fresh, TicketCreated)
    assert fresh.ticket_number == "A001"
    assert e.state.leases == {}
    e.refuse(
        c.EnqueueLeased(lease_id=leased.lease_id, seq_no=901, issued_at=e.now, device_id="kiosk-1", request_id="r"),
        "lease_not_found",
    )


def test_replaying_the_log_rebuilds_leases_and_numbering() -> None:
    e = engine()
    leased = lease(e, 4)
    offline(e, leased, 903)
    e.run(c.Enqueue(service_id="a"))
    rebuilt = replay(e.events)
    assert projection(rebuilt) == projection(e.state)
    assert rebuilt.leases == e.state.leases


class LeaseMachine(RuleBasedStateMachine):
    """Online tickets, leases and offline reconciliations interleaved: every number once, replay identical."""

    def __init__(self) -> None:
        super().__init__()
        self.e = engine()
        self.leases: list[NumbersLeased] = []
        self.numbers: set[tuple[str, str]] = set()

    def _record(self, events: list[object]) -> None:
        for ev in events:
            if isinstance(ev, TicketCreated):
                key = (ev.ticket_number, ev.business_date)
                assert key not in self.numbers, f"number {key} issued twice"
                self.numbers.add(key)

    @initialize()
    def start(self) -> None:
        self.e.now = T0

    @rule()
    def enqueue(self) -> None:
        self._record(self.e.run(c.Enqueue(service_id="a")))

    @rule(count=st.integers(1, 6), device=st.sampled_from(["k1", "k2"]))
    def take_lease(self, count: int, device: str) -> None:
        try:
            (event,) = self.e.run(c.LeaseNumbers(device_id=device, service_id="a", count=count))
        except DomainError as exc:
            refused = exc.code
        else:
            assert isinstance(event, NumbersLeased)
            assert event.last_seq <= 999, "a lease widened past A999"
            self.leases.append(event)
            return
        assert refused == "service_full"  # the offline block A901…A999 is used up for today
        assert max(lease.last_seq for lease in self.e.state.leases.values()) == 999

    @rule(i=st.integers(0, 50), seq=st.integers(0, 8), device=st.sampled_from(["k1", "k2"]), back=st.integers(0, 900))
    def reconcile(self, i: int, seq: int, device: str, back: int) -> None:
        if not self.leases:
            return
        leased = self.leases[i % len(self.leases)]
        cmd = c.EnqueueLeased(
            lease_id=leased.lease_id,
            seq_no=leased.first_seq + seq,
            issued_at=self.e.now - timedelta(minutes=back),
            device_id=device,
            request_id=f"off-{leased.lease_id}-{seq}",
        )
        try:
            events = self.e.decide(cmd)
        except DomainError:
            return
        self.e.apply(events)
        self._record(list(events))

    @rule()
    def serve_next(self) -> None:
        """Single service, no priority: whoever was issued first (online or offline) is called first."""
        waiting = self.e.state.active("waiting")
        if not waiting:
            return
        called = self.e.serve("1")
        assert called.created_at == min(t.created_at for t in waiting), "called out of issue-time order"

    @rule(minutes=st.integers(1, 600))
    def wait(self, minutes: int) -> None:
        self.e.advance(minutes=minutes)

    @invariant()
    def replay_matches(self) -> None:
        rebuilt = replay(self.e.events)
        assert projection(rebuilt) == projection(self.e.state)
        assert rebuilt.leases == self.e.state.leases
        for leased in self.e.state.leases.values():
            assert len(set(leased.used)) == len(leased.used)


TestLeaseMachine = LeaseMachine.TestCase
TestLeaseMachine.settings = settings(max_examples=200, stateful_step_count=25, deadline=None)
