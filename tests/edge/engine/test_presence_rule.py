"""A counter is open only while someone is at it (issue 11): counters start the day closed, a call from the
counter opens it, and ETAs count only open counters."""

from __future__ import annotations

from edge.engine import commands as c
from edge.engine.decide import no_ticket_reason
from edge.engine.eta import open_counters, positions
from edge.engine.model import State
from tests.edge.engine.conftest import T0, Engine, ctr, small_config, svc


def _unstaffed() -> Engine:
    """One service `s` served by counters c1 and c2, configured but nobody signed in (no presence set)."""
    engine = Engine(now=T0)
    config = small_config([svc("s", "A", avg_service_seconds=300)], [ctr("c1", ["s"]), ctr("c2", ["s"])])
    engine.run(c.ApplyConfig(config=config, base_version=0))
    return engine


def _eta(state: State, ticket_id: str) -> int | None:
    return positions(state, T0)[ticket_id][1]


def test_configured_counters_start_closed_and_give_no_eta() -> None:
    engine = _unstaffed()
    assert {k.presence for k in engine.state.counters.values()} == {"closed"}
    t = engine.enqueue("s")
    assert open_counters(engine.state, "s") == 0
    assert _eta(engine.state, t.ticket_id) is None  # nobody at any counter: no promise


def test_eta_counts_only_open_counters() -> None:
    engine = _unstaffed()
    tickets = [engine.enqueue("s") for _ in range(3)]
    engine.set_presence("c1", "available")
    one_open = _eta(engine.state, tickets[2].ticket_id)
    engine.set_presence("c2", "available")
    two_open = _eta(engine.state, tickets[2].ticket_id)
    assert one_open == 2 * 300 + 150
    assert two_open == 300 + 150  # two agents share the queue: the ETA halves
    engine.set_presence("c2", "closed")  # its agent signed out
    assert _eta(engine.state, tickets[2].ticket_id) == one_open
    engine.set_presence("c1", "break")
    assert _eta(engine.state, tickets[2].ticket_id) is None


def test_a_call_at_a_closed_counter_opens_it_first() -> None:
    engine = _unstaffed()
    first, second = engine.enqueue("s"), engine.enqueue("s")
    events = engine.run(c.CallNext(counter_id="c1"))
    assert engine.types(events) == ["counter.presence", "ticket.called"]
    assert (events[0].status, events[0].previous) == ("available", "closed")  # type: ignore[attr-defined]
    assert events[1].ticket_id == first.ticket_id
    assert engine.counter("c1").presence == "available"
    events = engine.run(c.CallTicket(ticket_id=second.ticket_id, counter_id="c2"))
    assert engine.types(events) == ["counter.presence", "ticket.called"]
    engine.assert_replays()


def test_nothing_to_call_leaves_a_closed_counter_closed() -> None:
    engine = _unstaffed()
    assert engine.run(c.CallNext(counter_id="c1")) == []
    assert engine.counter("c1").presence == "closed"
    assert no_ticket_reason(engine.state, "c1", engine.now) == "empty"  # the honest reason, not "unavailable"


def test_a_counter_on_break_is_not_opened_by_a_call() -> None:
    engine = _unstaffed()
    t = engine.enqueue("s")
    engine.set_presence("c1", "break")
    assert engine.run(c.CallNext(counter_id="c1")) == []
    engine.refuse(c.CallTicket(ticket_id=t.ticket_id, counter_id="c1"), "counter_unavailable")
    assert no_ticket_reason(engine.state, "c1", engine.now) == "counter_unavailable"


def test_every_ticket_event_at_a_counter_is_its_last_activity() -> None:
    """A counter's `updated_at` moves with calls, starts, recalls and the end of a service (the idle sweep)."""
    engine = _unstaffed()
    engine.enqueue("s")
    t = engine.call_next("c1")
    assert t is not None
    assert engine.counter("c1").updated_at == engine.now
    for cmd in (c.Recall(ticket_id=t.ticket_id), c.Start(ticket_id=t.ticket_id), c.Complete(ticket_id=t.ticket_id)):
        at = engine.advance(60)
        engine.run(cmd)
        assert engine.counter("c1").updated_at == at, cmd
    assert engine.counter("c1").current_ticket is None
