"""Routing: FIFO, priority with anti-starvation, skills, appointment blending, presence, ETA
(US-QUEUE-011..014, US-AGENT-009)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edge.engine import commands as c
from edge.engine.decide import next_deadline, no_ticket_reason
from edge.engine.eta import positions, sample_floor
from tests.edge.engine.conftest import Engine, ctr, small_config, svc, with_counter, with_service

# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-011 FIFO per service
# --------------------------------------------------------------------------------------------------------------


def test_fifo_three_tickets(fifo: Engine) -> None:
    ids = [fifo.enqueue("s").ticket_id for _ in range(3)]
    called = [fifo.serve("c1").ticket_id for _ in range(3)]
    assert called == ids


def test_fifo_across_a_multi_service_counter(engine: Engine) -> None:
    # Counter 4 serves cs and loan: the earliest ticket of either goes first.
    a = engine.enqueue("loan")
    engine.advance(1)
    b = engine.enqueue("cs")
    engine.advance(1)
    d = engine.enqueue("loan")
    assert [engine.serve("4").ticket_id for _ in range(3)] == [a.ticket_id, b.ticket_id, d.ticket_id]


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-012 Priority with anti-starvation
# --------------------------------------------------------------------------------------------------------------


def test_priority_goes_first(engine: Engine) -> None:
    regular = engine.enqueue("teller")
    prio = engine.enqueue("teller", priority=1)
    assert engine.serve("1").ticket_id == prio.ticket_id
    assert engine.serve("1").ticket_id == regular.ticket_id


def test_higher_priority_class_first_then_fifo_within_class(engine: Engine) -> None:
    p1a = engine.enqueue("teller", priority=1)
    p2 = engine.enqueue("teller", priority=2)
    p1b = engine.enqueue("teller", priority=1)
    assert [engine.serve("1").ticket_id for _ in range(3)] == [p2.ticket_id, p1a.ticket_id, p1b.ticket_id]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_anti_starvation_after_n_priority_calls_a_regular_is_served(demo, n: int) -> None:
    engine = Engine(with_service(demo, "teller", anti_starvation_n=n))
    regular = [engine.enqueue("teller").ticket_id for _ in range(2)]
    prio = [engine.enqueue("teller", priority=1).ticket_id for _ in range(2 * n + 2)]
    called = [engine.serve("1").ticket_id for _ in range(2 * n + 2)]
    assert called[:n] == prio[:n]
    assert called[n] == regular[0]
    assert called[n + 1 : 2 * n + 1] == prio[n : 2 * n]
    assert called[2 * n + 1] == regular[1]


def test_anti_starvation_streak_spans_counters(engine: Engine) -> None:
    regular = engine.enqueue("teller")
    for _ in range(4):
        engine.enqueue("teller", priority=1)
    # Three priority calls on three different counters, then the regular ticket (N=3) whichever counter calls.
    for counter in ("1", "2", "3"):
        assert engine.call_next(counter).priority == 1
    engine.run(c.Start(ticket_id=engine.counter("1").current_ticket, counter_id="1"))
    engine.run(c.Complete(ticket_id=engine.counter("1").current_ticket, counter_id="1"))
    assert engine.call_next("1").ticket_id == regular.ticket_id
    assert engine.state.priority_streak["teller"] == 0


def test_priority_ignored_when_service_has_it_disabled(engine: Engine) -> None:
    # default_priority applies only to priority-enabled services; cs is FIFO.
    a = engine.enqueue("cs")
    b = engine.enqueue("cs")
    assert [engine.serve("5").ticket_id for _ in range(2)] == [a.ticket_id, b.ticket_id]


def test_default_priority_applies(demo) -> None:
    engine = Engine(with_service(demo, "teller", default_priority=2))
    assert engine.enqueue("teller").priority == 2
    assert engine.enqueue("teller", priority=0).priority == 0


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-013 Skill-based routing
# --------------------------------------------------------------------------------------------------------------


def test_only_compatible_tickets_are_called(engine: Engine) -> None:
    teller = engine.enqueue("teller")
    loan = engine.enqueue("loan")
    cs = engine.enqueue("cs")
    assert engine.call_next("6").ticket_id == loan.ticket_id  # loan only
    assert engine.call_next("5").ticket_id == cs.ticket_id  # cs only
    assert engine.call_next("1").ticket_id == teller.ticket_id  # teller only


def test_no_compatible_vs_empty_reason(engine: Engine) -> None:
    assert engine.run(c.CallNext(counter_id="6")) == []
    assert no_ticket_reason(engine.state, "6", engine.now) == "empty"
    engine.enqueue("teller")
    assert engine.run(c.CallNext(counter_id="6")) == []
    assert no_ticket_reason(engine.state, "6", engine.now) == "no_compatible"


def test_skills_change_takes_effect_on_next_call(engine: Engine) -> None:
    t = engine.enqueue("teller")
    assert engine.run(c.CallNext(counter_id="6")) == []
    engine.reconfigure(with_counter(engine.config, "6", services=["loan", "teller"]))
    assert engine.call_next("6").ticket_id == t.ticket_id


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-014 Appointment vs walk-in blending
# --------------------------------------------------------------------------------------------------------------


def _blend_engine(quota: int, boost: int = 10, window: int = 60) -> Engine:
    cfg = small_config(
        [
            svc(
                "s", "A", appointment_quota_pct=quota, appointment_window_minutes=window,
                appointment_boost_minutes=boost, grace_seconds=None,
            )
        ],
        [ctr("c1", ["s"])],
    )  # fmt: skip
    return Engine(cfg)


def test_quota_keeps_the_appointment_share_in_the_window() -> None:
    engine = _blend_engine(60)
    far = engine.now + timedelta(days=1)  # never boosted
    for _ in range(30):
        engine.enqueue("s", channel="appointment", appointment_at=far)
        engine.enqueue("s", channel="walk_in")
    channels = []
    for _ in range(20):
        engine.advance(60)
        channels.append(engine.serve("c1").channel)
    share = channels.count("appointment") / len(channels)
    assert abs(share - 0.6) <= 0.05, channels
    # Every prefix of the sequence stays close to the quota (it never runs one channel dry).
    for k in range(5, 21):
        prefix_share = channels[:k].count("appointment") / k
        assert abs(prefix_share - 0.6) <= 0.2, (k, channels)


def test_quota_zero_prefers_walk_ins_and_100_prefers_appointments() -> None:
    for quota, expected in ((0, "walk_in"), (100, "appointment")):
        engine = _blend_engine(quota)
        far = engine.now + timedelta(days=1)
        for _ in range(3):
            engine.enqueue("s", channel="appointment", appointment_at=far)
            engine.enqueue("s")
        assert [engine.serve("c1").channel for _ in range(3)] == [expected] * 3


def test_appointment_near_its_slot_is_boosted() -> None:
    engine = _blend_engine(0, boost=10)  # quota 0: without the boost walk-ins always win
    walk = engine.enqueue("s")
    appt = engine.enqueue("s", channel="appointment", appointment_at=engine.now + timedelta(minutes=30))
    assert engine.serve("c1").ticket_id == walk.ticket_id
    engine.enqueue("s")
    engine.advance(minutes=20)  # the slot is 10 minutes away: boosted
    assert engine.serve("c1").ticket_id == appt.ticket_id


def test_earliest_slot_is_boosted_first() -> None:
    engine = _blend_engine(0, boost=15)
    engine.enqueue("s")
    late = engine.enqueue("s", channel="appointment", appointment_at=engine.now + timedelta(minutes=10))
    early = engine.enqueue("s", channel="appointment", appointment_at=engine.now + timedelta(minutes=5))
    assert [engine.serve("c1").ticket_id for _ in range(2)] == [early.ticket_id, late.ticket_id]


def test_blending_window_forgets_old_calls() -> None:
    engine = _blend_engine(50, window=10)
    far = engine.now + timedelta(days=1)
    for _ in range(4):
        engine.enqueue("s", channel="appointment", appointment_at=far)
        engine.enqueue("s")
    assert engine.serve("c1").channel == "appointment"
    engine.advance(minutes=11)  # the appointment call left the window: share is 0 again
    assert engine.serve("c1").channel == "appointment"
    engine.assert_replays()


# --------------------------------------------------------------------------------------------------------------
# US-AGENT-009 Presence
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["break"])  # a call at a `closed` counter opens it: test_presence_rule.py
def test_break_gets_no_tickets(engine: Engine, status: str) -> None:
    t = engine.enqueue("teller")
    (e,) = engine.set_presence("1", status)
    assert (e.counter_id, e.status, e.previous) == ("1", status, "available")
    assert engine.decide(c.CallNext(counter_id="1")) == []
    engine.refuse(c.CallTicket(ticket_id=t.ticket_id, counter_id="1"), "counter_unavailable")
    assert no_ticket_reason(engine.state, "1", engine.now) == "counter_unavailable"
    engine.set_presence("1", "available")
    assert engine.call_next("1").ticket_id == t.ticket_id


def test_busy_counter_may_still_call(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.set_presence("1", "busy")
    assert engine.call_next("1").ticket_id == t.ticket_id


def test_same_presence_twice_emits_nothing(engine: Engine) -> None:
    assert engine.set_presence("1", "available") == []
    engine.refuse(c.SetPresence(counter_id="99", status="break"), "counter_not_found")


def test_auto_call_counter_gets_next_ticket_when_available(demo) -> None:
    engine = Engine(with_counter(demo, "5", auto_call=True))
    engine.set_presence("5", "break")
    t = engine.enqueue("cs")
    assert engine.tick_all() == []
    engine.set_presence("5", "available")
    events = engine.tick_all()
    assert engine.types(events) == ["ticket.called"]
    assert events[0].auto
    assert events[0].counter_id == "5"
    assert events[0].ticket_id == t.ticket_id
    # Busy with it: Tick does not call another one to the same counter.
    engine.enqueue("cs")
    assert engine.tick_all() == []


def test_auto_call_only_when_available_not_busy(demo) -> None:
    engine = Engine(with_counter(demo, "5", auto_call=True))
    engine.set_presence("5", "busy")
    engine.enqueue("cs")
    assert engine.tick_all() == []


def test_non_auto_counter_never_called_by_tick(engine: Engine) -> None:
    engine.enqueue("cs")
    assert engine.tick_all() == []


def test_tick_prefers_no_shows_over_auto_calls(demo) -> None:
    engine = Engine(with_counter(demo, "5", auto_call=True))
    a = engine.enqueue("teller")
    engine.call_next("1")
    engine.advance(121)
    engine.enqueue("cs")
    first = engine.run(c.Tick())
    assert engine.types(first) == ["ticket.no_show"]
    assert first[0].ticket_id == a.ticket_id
    assert engine.types(engine.run(c.Tick())) == ["ticket.called"]
    assert engine.run(c.Tick()) == []


def test_next_deadline(engine: Engine) -> None:
    assert next_deadline(engine.state) is None
    engine.enqueue("teller")
    engine.enqueue("cs")
    engine.call_next("5")  # grace 180
    engine.advance(10)
    engine.call_next("1")  # grace 120
    assert next_deadline(engine.state) == engine.now + timedelta(seconds=120)


# --------------------------------------------------------------------------------------------------------------
# Positions and ETA
# --------------------------------------------------------------------------------------------------------------


def test_positions_follow_call_order(engine: Engine) -> None:
    r1 = engine.enqueue("teller")
    r2 = engine.enqueue("teller")
    p = engine.enqueue("teller", priority=1)
    cs = engine.enqueue("cs")
    pos = positions(engine.state, engine.now)
    assert pos[p.ticket_id][0] == 1
    assert pos[r1.ticket_id][0] == 2
    assert pos[r2.ticket_id][0] == 3
    assert pos[cs.ticket_id][0] == 1
    called = engine.call_next("1")
    assert called.ticket_id == p.ticket_id
    assert positions(engine.state, engine.now)[r1.ticket_id][0] == 1
    assert called.ticket_id not in positions(engine.state, engine.now)


def test_eta_grows_with_position_and_shrinks_with_open_counters(engine: Engine) -> None:
    ids = [engine.enqueue("teller").ticket_id for _ in range(4)]
    etas = [positions(engine.state, engine.now)[i][1] for i in ids]
    assert etas == sorted(etas)
    assert etas[0] == 120
    assert etas[1] == round(1 / 3 * 240 + 120)
    engine.set_presence("2", "break")
    engine.set_presence("3", "break")
    assert positions(engine.state, engine.now)[ids[1]][1] == 240 + 120


def test_eta_unknown_when_no_counter_open(engine: Engine) -> None:
    t = engine.enqueue("loan")
    for k in ("4", "6"):
        engine.set_presence(k, "break")
    assert positions(engine.state, engine.now)[t.ticket_id] == (1, None)


def _serve(engine: Engine, seconds: float) -> None:
    """Serve one ticket of `s` at c1 for `seconds`."""
    engine.enqueue("s")
    t = engine.call_next("c1")
    assert t is not None
    engine.run(c.Start(ticket_id=t.ticket_id))
    engine.advance(seconds)
    engine.run(c.Complete(ticket_id=t.ticket_id))


def test_eta_uses_recent_service_times(fifo: Engine) -> None:
    for _ in range(3):
        _serve(fifo, 100)
    w = fifo.enqueue("s")
    assert positions(fifo.state, fifo.now)[w.ticket_id] == (1, 50)


def test_eta_keeps_the_configured_average_until_three_services(fifo: Engine) -> None:
    """One or two service times say little: the configured average (300 s) stands until the third."""
    _serve(fifo, 100)
    _serve(fifo, 100)
    w = fifo.enqueue("s")
    assert positions(fifo.state, fifo.now)[w.ticket_id] == (1, 150)


def test_eta_counts_an_accidental_instant_service_as_the_floor(fifo: Engine) -> None:
    """A start→complete of a fraction of a second counts as 20 % of the configured average (60 s), not ~0."""
    for _ in range(3):
        _serve(fifo, 0.2)
    ahead = [fifo.enqueue("s").ticket_id for _ in range(6)]
    assert positions(fifo.state, fifo.now)[ahead[5]] == (6, round(5 / 2 * 60 + 30))  # two counters open


def test_the_sample_floor_is_30_s_or_a_fifth_of_the_average_but_never_above_it() -> None:
    assert sample_floor(300) == 60
    assert sample_floor(100) == 30
    assert sample_floor(20) == 20


def test_positions_follow_the_anti_starvation_call_order(engine: Engine) -> None:
    """Positions are the order call-next will really take (teller: N=3), not a plain priority sort."""
    plan = [0, 1, 1, 1, 1, 1, 0, 1, 1]  # R1 P1..P5 R2 P6 P7
    tickets = [engine.enqueue("teller", priority=p) for p in plan]
    by_position = sorted(tickets, key=lambda t: positions(engine.state, engine.now)[t.ticket_id][0])
    called = []
    for _ in tickets:
        counter = next(k for k in ("1", "2", "3") if engine.counter(k).current_ticket is None)
        ticket = engine.call_next(counter)
        assert ticket is not None
        called.append(ticket.ticket_id)
        engine.run(c.Start(ticket_id=ticket.ticket_id, counter_id=counter))
        engine.run(c.Complete(ticket_id=ticket.ticket_id, counter_id=counter))
    assert called == [t.ticket_id for t in by_position]
    numbers = [engine.ticket(tid).ticket_number for tid in called]
    assert numbers == ["A002", "A003", "A004", "A001", "A005", "A006", "A008", "A007", "A009"]


def test_positions_start_from_the_current_streak(engine: Engine) -> None:
    for _ in range(3):
        engine.enqueue("teller", priority=1)
    for _ in range(3):
        ticket = engine.call_next("1")
        assert ticket is not None
        engine.run(c.Start(ticket_id=ticket.ticket_id, counter_id="1"))
        engine.run(c.Complete(ticket_id=ticket.ticket_id, counter_id="1"))
    p4, r1 = engine.enqueue("teller", priority=1), engine.enqueue("teller")
    assert positions(engine.state, engine.now)[r1.ticket_id][0] == 1  # the streak is at N: the regular goes next
    assert positions(engine.state, engine.now)[p4.ticket_id][0] == 2
    called = engine.call_next("1")
    assert called is not None
    assert called.ticket_id == r1.ticket_id
