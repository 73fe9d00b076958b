"""Positions and ETAs follow appointment blending (US-QUEUE-014, issue 15): the order `positions` promises is the
order call-next takes.

Properties over random queues of walk-ins and appointments (priority classes, quotas, windows, boosts, a history
of calls in the window):
* `position_of` equals `positions` for every waiting ticket (one is arithmetic on the ordered queues, the other
  sorts the whole queue);
* the ticket at position 1 is the one call-next calls now;
* when the calls come at the times the ETA assumes (one counter, each visit taking the mean service time), call-next
  takes the tickets exactly in the promised order, and each is called when its ETA said (less the half visit).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.engine import commands as c
from edge.engine.eta import mean_service_seconds, position_of, positions
from edge.engine.model import Ticket
from edge.engine.routing import pick_next
from tests.edge.engine.conftest import Engine, ctr, small_config, svc

SERVICE_SECONDS = 120


def _engine(quota: int | None, window: int, boost: int, priority: bool, n: int, counters: int = 1) -> Engine:
    service = svc("s", "A", appointment_quota_pct=quota, appointment_window_minutes=window,
                  appointment_boost_minutes=boost, priority_enabled=priority, anti_starvation_n=n,
                  avg_service_seconds=SERVICE_SECONDS, grace_seconds=None, digits=4)  # fmt: skip
    return Engine(small_config([service], [ctr(f"c{i}", ["s"]) for i in range(1, counters + 1)]))


def _serve(engine: Engine, counter: str = "c1") -> Ticket:
    """Call next, start at once, complete after exactly the service's mean (so the mean stays what it was)."""
    called = engine.call_next(counter)
    assert called is not None
    engine.run(c.Start(ticket_id=called.ticket_id, counter_id=counter))
    engine.advance(seconds=SERVICE_SECONDS)
    engine.run(c.Complete(ticket_id=called.ticket_id, counter_id=counter))
    return called


ticket_specs = st.lists(
    st.tuples(
        st.booleans(),  # an appointment
        st.integers(0, 2),  # priority class (when the service has them)
        st.integers(-20, 180),  # appointment time, minutes from when it checks in
        st.integers(0, 300),  # seconds before the next ticket arrives
    ),
    min_size=1,
    max_size=24,
)


@st.composite
def queues(draw: st.DrawFn) -> tuple[Engine, int]:
    """An engine with a random blended queue, some of it already served; returns it and how many still wait."""
    priority = draw(st.booleans())
    engine = _engine(
        quota=draw(st.none() | st.integers(0, 100)),
        window=draw(st.integers(5, 90)),
        boost=draw(st.integers(0, 30)),
        priority=priority,
        n=draw(st.integers(1, 3)),
    )
    specs = draw(ticket_specs)
    served_before = draw(st.integers(0, len(specs) // 2))
    for appointment, klass, minutes, gap in specs:
        engine.enqueue(
            "s",
            channel="appointment" if appointment else "walk_in",
            appointment_at=engine.now + timedelta(minutes=minutes) if appointment else None,
            priority=klass if priority else 0,
        )
        engine.advance(seconds=gap)
    for _ in range(served_before):
        _serve(engine)
    engine.advance(seconds=draw(st.integers(0, 600)))
    return engine, len(specs) - served_before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queues())
def test_position_of_equals_positions_and_position_1_is_called_next(scenario: tuple[Engine, int]) -> None:
    engine, waiting = scenario
    pos = positions(engine.state, engine.now)
    assert len(pos) == waiting
    for ticket in engine.state.tickets.values():
        assert position_of(engine.state, ticket, engine.now) == pos.get(ticket.ticket_id), ticket
    first = next(tid for tid, (p, _) in pos.items() if p == 1)
    picked = pick_next(engine.state, "c1", engine.now)
    assert isinstance(picked, Ticket)
    assert picked.ticket_id == first


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queues())
def test_calls_at_the_promised_times_take_the_promised_order(scenario: tuple[Engine, int]) -> None:
    engine, _ = scenario
    assert mean_service_seconds(engine.state, "s") == SERVICE_SECONDS
    promised = sorted(positions(engine.state, engine.now).items(), key=lambda item: item[1][0])
    start = engine.now
    for ticket_id, (_, eta) in promised:
        assert eta is not None
        assert engine.now - start == timedelta(seconds=eta - SERVICE_SECONDS / 2)  # called when the ETA said
        assert _serve(engine).ticket_id == ticket_id
    assert not positions(engine.state, engine.now)


def test_a_walk_in_is_told_the_appointments_that_will_go_ahead_of_it() -> None:
    """Quota 50 %: two appointments checked in after three walk-ins go 1st and 4th (the order before said 4th, 5th)."""
    engine = _engine(quota=50, window=60, boost=0, priority=False, n=3)
    walk = [engine.enqueue("s") for _ in range(3)]
    later = engine.now + timedelta(hours=3)  # not due: the quota alone places them
    appt = [engine.enqueue("s", channel="appointment", appointment_at=later) for _ in range(2)]
    pos = positions(engine.state, engine.now)
    order = [tid for tid, _ in sorted(pos.items(), key=lambda item: item[1][0])]
    assert order == [appt[0].ticket_id, walk[0].ticket_id, walk[1].ticket_id, appt[1].ticket_id, walk[2].ticket_id]
    assert pos[walk[2].ticket_id] == (5, 4 * SERVICE_SECONDS + SERVICE_SECONDS // 2)
    assert [_serve(engine).ticket_id for _ in order] == order


def test_an_appointment_becoming_due_later_is_placed_when_it_will_be_due() -> None:
    """Quota 0 %: appointments go only when due. One booked 5 minutes from now (boost 0) comes after the walk-ins
    called before then: with 2-minute visits, calls at 0, 2, 4 min are walk-ins and the one at 6 min is it."""
    engine = _engine(quota=0, window=60, boost=0, priority=False, n=3)
    walk = [engine.enqueue("s") for _ in range(5)]
    appt = engine.enqueue("s", channel="appointment", appointment_at=engine.now + timedelta(minutes=5))
    pos = positions(engine.state, engine.now)
    assert pos[appt.ticket_id][0] == 4
    assert position_of(engine.state, appt, engine.now) == pos[appt.ticket_id]
    assert pos[walk[3].ticket_id][0] == 5
    assert [_serve(engine).ticket_id for _ in range(4)][-1] == appt.ticket_id


@pytest.mark.parametrize("counters", [1, 3])
def test_the_blended_position_of_a_walk_in_reads_no_walk_in(counters: int) -> None:
    """`position_of` counts walk-ins: its cost is the same at 20 and at 5,000 waiting."""

    class Counting(dict[str, Ticket]):
        reads = 0

        def __getitem__(self, key: str) -> Ticket:
            self.reads += 1
            return super().__getitem__(key)

    reads = []
    for waiting in (20, 5000):
        engine = _engine(quota=30, window=60, boost=10, priority=True, n=2, counters=counters)
        for i in range(waiting):
            engine.enqueue("s", priority=1 if i % 4 == 0 else 0)
        for minutes in (30, 60, 90):
            engine.enqueue("s", channel="appointment", appointment_at=engine.now + timedelta(minutes=minutes))
        last = engine.enqueue("s")
        tickets = Counting(engine.state.tickets)
        engine.state.tickets = tickets
        assert position_of(engine.state, last, engine.now) is not None
        reads.append(tickets.reads)
    assert reads[0] == reads[1] <= 10
