"""Ticket lifecycle (US-QUEUE-001..005) and the event stream / replay contract (US-QUEUE-016, -017)."""

from __future__ import annotations

import pytest

from edge.engine import commands as c
from edge.engine.decide import no_ticket_reason
from edge.engine.errors import InvalidTransition
from sync.contract import (
    EVENT_TYPES,
    TicketCalled,
    TicketCancelled,
    TicketCreated,
    TicketDone,
    TicketServing,
    event_decoder,
    event_encoder,
    event_type,
)
from tests.edge.engine.conftest import T0, Engine, replay, with_service

# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-001 Enqueue
# --------------------------------------------------------------------------------------------------------------


def test_enqueue_returns_id_number_waiting_and_created_at(engine: Engine) -> None:
    events = engine.run(c.Enqueue(service_id="teller"))
    (e,) = events
    assert isinstance(e, TicketCreated)
    assert e.ticket_id
    assert e.ticket_number == "A001"
    assert e.service_id == "teller"
    t = engine.ticket(e.ticket_id)
    assert t.status == "waiting"
    assert t.created_at == T0
    assert t.ticket_number == "A001"
    assert t.business_date == "2026-01-12"
    assert t.counter_id is None


def test_enqueue_number_follows_configured_prefix_and_digits(demo) -> None:
    engine = Engine(with_service(demo, "cs", prefix="CS", digits=5))
    assert engine.enqueue("cs").ticket_number == "CS00001"
    assert engine.enqueue("cs").ticket_number == "CS00002"
    assert engine.enqueue("teller").ticket_number == "A001"


def test_enqueue_keeps_the_optional_fields(engine: Engine) -> None:
    t = engine.enqueue("cs", channel="kiosk", phone="+62811", email="a@b.id", customer_ref="C1", lang="en")
    assert (t.channel, t.phone, t.email, t.customer_ref, t.lang) == ("kiosk", "+62811", "a@b.id", "C1", "en")


def test_enqueue_unknown_service_is_a_structured_4xx(engine: Engine) -> None:
    err = engine.refuse(c.Enqueue(service_id="nope"), "unknown_service")
    assert 400 <= err.status < 500
    assert err.extra["service_id"] == "nope"


def test_enqueue_inactive_service_refused(demo) -> None:
    engine = Engine(with_service(demo, "cs", active=False))
    err = engine.refuse(c.Enqueue(service_id="cs"), "service_inactive")
    assert 400 <= err.status < 500


def test_enqueue_outside_opening_hours_refused(demo) -> None:
    # Monday 09:00 local is T0; the service opens only 13:00-15:00 on Mondays.
    engine = Engine(with_service(demo, "cs", hours={"mon": [("13:00", "15:00")]}))
    engine.refuse(c.Enqueue(service_id="cs"), "service_closed")
    engine.advance(hours=4)  # 13:00 local
    assert engine.enqueue("cs").status == "waiting"
    engine.advance(hours=2)  # 15:00 local: closed again ([open, close))
    engine.refuse(c.Enqueue(service_id="cs"), "service_closed")


def test_enqueue_daily_capacity(demo) -> None:
    engine = Engine(with_service(demo, "cs", daily_capacity=2))
    engine.enqueue("cs")
    engine.enqueue("cs")
    engine.refuse(c.Enqueue(service_id="cs"), "service_full")
    # Capacity is per business day.
    engine.advance(days=1)
    assert engine.enqueue("cs").ticket_number == "B001"


def test_enqueue_priority_on_non_priority_service_refused(engine: Engine) -> None:
    err = engine.refuse(c.Enqueue(service_id="cs", priority=1), "priority_not_allowed")
    assert err.status == 422
    assert engine.enqueue("teller", priority=1).priority == 1


def test_enqueue_negative_priority_refused(engine: Engine) -> None:
    # Regression: a priority of -1 was accepted and then crashed call-next (max() of an empty pool).
    engine.refuse(c.Enqueue(service_id="teller", priority=-1), "invalid_priority")
    engine.enqueue("teller", priority=0)
    assert engine.call_next("1") is not None


def test_enqueue_appointment_without_time_refused(engine: Engine) -> None:
    engine.refuse(c.Enqueue(service_id="cs", channel="appointment"), "appointment_time_missing")


def test_commands_before_any_config_refused() -> None:
    engine = Engine()
    engine.refuse(c.Enqueue(service_id="teller"), "not_configured")
    assert engine.run(c.Tick()) == []


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-002 Call next
# --------------------------------------------------------------------------------------------------------------


def test_call_next_assigns_counter_and_emits_called(engine: Engine) -> None:
    t = engine.enqueue("teller")
    (e,) = engine.run(c.CallNext(counter_id="1"))
    assert isinstance(e, TicketCalled)
    assert (e.ticket_id, e.counter_id, e.service_id) == (t.ticket_id, "1", "teller")
    live = engine.ticket(t.ticket_id)
    assert live.status == "called"
    assert live.counter_id == "1"
    assert live.called_at == T0
    assert engine.counter("1").current_ticket == t.ticket_id


def test_two_counters_calling_at_once_get_different_tickets(engine: Engine) -> None:
    a = engine.enqueue("teller")
    b = engine.enqueue("teller")
    first = engine.call_next("1")
    second = engine.call_next("2")
    assert first is not None
    assert second is not None
    assert {first.ticket_id, second.ticket_id} == {a.ticket_id, b.ticket_id}
    # The third caller finds the queue empty (no error, no event).
    assert engine.run(c.CallNext(counter_id="3")) == []


def test_call_next_on_empty_queue_emits_nothing(engine: Engine) -> None:
    assert engine.run(c.CallNext(counter_id="1")) == []


def test_call_next_while_holding_a_ticket_is_counter_busy(engine: Engine) -> None:
    engine.enqueue("teller")
    engine.enqueue("teller")
    engine.call_next("1")
    err = engine.refuse(c.CallNext(counter_id="1"), "counter_busy")
    assert err.status == 409


def test_call_next_unknown_counter(engine: Engine) -> None:
    err = engine.refuse(c.CallNext(counter_id="99"), "counter_not_found")
    assert err.status == 404


def test_call_next_inactive_counter_unavailable(demo) -> None:
    from tests.edge.engine.conftest import with_counter

    engine = Engine(with_counter(demo, "1", active=False))
    t = engine.enqueue("teller")
    assert engine.decide(c.CallNext(counter_id="1")) == []  # 200 {"ticket": null, "reason": "counter_unavailable"}
    assert no_ticket_reason(engine.state, "1", engine.now) == "counter_unavailable"
    engine.refuse(c.CallTicket(ticket_id=t.ticket_id, counter_id="1"), "counter_unavailable")


def test_call_specific_ticket(engine: Engine) -> None:
    a = engine.enqueue("teller")
    b = engine.enqueue("teller")
    (e,) = engine.run(c.CallTicket(ticket_id=b.ticket_id, counter_id="2"))
    assert isinstance(e, TicketCalled)
    assert e.specific
    assert engine.ticket(b.ticket_id).status == "called"
    assert engine.ticket(a.ticket_id).status == "waiting"
    engine.refuse(c.CallTicket(ticket_id=b.ticket_id, counter_id="3"), "invalid_state")
    engine.refuse(c.CallTicket(ticket_id="missing", counter_id="3"), "ticket_not_found")
    # Counter 5 serves only cs.
    engine.refuse(c.CallTicket(ticket_id=a.ticket_id, counter_id="5"), "counter_not_compatible")


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-003 Start serving
# --------------------------------------------------------------------------------------------------------------


def test_start_at_the_calling_counter_sets_serving_and_served_at(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.call_next("1")
    engine.advance(30)
    (e,) = engine.run(c.Start(ticket_id=t.ticket_id, counter_id="1"))
    assert isinstance(e, TicketServing)
    assert e.counter_id == "1"
    live = engine.ticket(t.ticket_id)
    assert live.status == "serving"
    assert live.served_at == engine.now
    assert live.no_show_deadline is None


def test_start_at_another_counter_refused(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.call_next("1")
    err = engine.refuse(c.Start(ticket_id=t.ticket_id, counter_id="2"), "wrong_counter")
    assert err.status in (403, 409)


def test_start_of_a_waiting_ticket_is_invalid_state(engine: Engine) -> None:
    t = engine.enqueue("teller")
    err = engine.refuse(c.Start(ticket_id=t.ticket_id, counter_id="1"), "invalid_state")
    assert isinstance(err, InvalidTransition)
    assert err.status == 409


def test_start_unknown_ticket(engine: Engine) -> None:
    err = engine.refuse(c.Start(ticket_id="nope", counter_id="1"), "ticket_not_found")
    assert err.status == 404


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-004 Complete
# --------------------------------------------------------------------------------------------------------------


def test_complete_sets_done_completed_at_and_service_time(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.advance(60)
    engine.call_next("1")
    engine.advance(20)
    engine.run(c.Start(ticket_id=t.ticket_id, counter_id="1"))
    engine.advance(125)
    (e,) = engine.run(c.Complete(ticket_id=t.ticket_id, counter_id="1", outcome="deposit"))
    assert isinstance(e, TicketDone)
    assert e.service_seconds == 125.0
    assert e.wait_seconds == 60.0
    assert e.outcome == "deposit"
    live = engine.ticket(t.ticket_id)
    assert live.status == "done"
    assert live.completed_at == engine.now
    assert live.outcome == "deposit"
    assert engine.counter("1").current_ticket is None
    assert engine.state.service_times["teller"] == [125.0]


def test_complete_unknown_outcome_refused(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.call_next("1")
    engine.run(c.Start(ticket_id=t.ticket_id, counter_id="1"))
    engine.refuse(c.Complete(ticket_id=t.ticket_id, counter_id="1", outcome="mortgage"), "unknown_outcome")


def test_complete_needs_serving(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.refuse(c.Complete(ticket_id=t.ticket_id), "invalid_state")
    engine.call_next("1")
    engine.refuse(c.Complete(ticket_id=t.ticket_id, counter_id="1"), "invalid_state")
    engine.run(c.Start(ticket_id=t.ticket_id, counter_id="1"))
    engine.refuse(c.Complete(ticket_id=t.ticket_id, counter_id="2"), "wrong_counter")
    engine.run(c.Complete(ticket_id=t.ticket_id, counter_id="1"))
    engine.refuse(c.Complete(ticket_id=t.ticket_id, counter_id="1"), "invalid_state")


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-005 Cancel
# --------------------------------------------------------------------------------------------------------------


def test_cancel_waiting_ticket(engine: Engine) -> None:
    t = engine.enqueue("teller")
    (e,) = engine.run(c.Cancel(ticket_id=t.ticket_id, reason="left"))
    assert isinstance(e, TicketCancelled)
    assert e.from_status == "waiting"
    assert e.reason == "left"
    assert engine.ticket(t.ticket_id).status == "cancelled"
    assert engine.call_next("1") is None


def test_cancel_serving_refused_unless_policy_allows(engine: Engine) -> None:
    t = engine.enqueue("teller")
    engine.call_next("1")
    engine.run(c.Start(ticket_id=t.ticket_id, counter_id="1"))
    err = engine.refuse(c.Cancel(ticket_id=t.ticket_id, counter_id="1"), "cancel_not_allowed")
    assert err.status == 409
    # The loan service allows it (allow_cancel_serving=True); only the serving counter may do it.
    loan = engine.enqueue("loan")
    engine.call_next("6")
    engine.run(c.Start(ticket_id=loan.ticket_id, counter_id="6"))
    engine.refuse(c.Cancel(ticket_id=loan.ticket_id, counter_id="4"), "wrong_counter")
    (e,) = engine.run(c.Cancel(ticket_id=loan.ticket_id, counter_id="6"))
    assert isinstance(e, TicketCancelled)
    assert e.from_status == "serving"
    assert engine.ticket(loan.ticket_id).status == "cancelled"
    assert engine.counter("6").current_ticket is None


def test_cancel_called_and_held_tickets(engine: Engine) -> None:
    a = engine.enqueue("teller")
    b = engine.enqueue("teller")
    engine.call_next("1")
    engine.run(c.Cancel(ticket_id=a.ticket_id, counter_id="1"))
    assert engine.counter("1").current_ticket is None
    engine.run(c.Hold(ticket_id=b.ticket_id))
    engine.run(c.Cancel(ticket_id=b.ticket_id))
    assert engine.ticket(b.ticket_id).status == "cancelled"


@pytest.mark.parametrize("final", ["done", "cancelled", "no_show"])
def test_cancel_finished_ticket_is_invalid_state(engine: Engine, final: str) -> None:
    t = engine.enqueue("teller")
    if final == "cancelled":
        engine.run(c.Cancel(ticket_id=t.ticket_id))
    else:
        engine.call_next("1")
        if final == "done":
            engine.run(c.Start(ticket_id=t.ticket_id))
            engine.run(c.Complete(ticket_id=t.ticket_id))
        else:
            engine.run(c.NoShow(ticket_id=t.ticket_id))
    assert engine.ticket(t.ticket_id).status == final
    engine.refuse(c.Cancel(ticket_id=t.ticket_id), "invalid_state")


def test_cancel_unknown_ticket(engine: Engine) -> None:
    engine.refuse(c.Cancel(ticket_id="x"), "ticket_not_found")


# --------------------------------------------------------------------------------------------------------------
# US-QUEUE-016 / -017 every action emits its event; replay reproduces the state
# --------------------------------------------------------------------------------------------------------------


def _every_action(engine: Engine) -> list[tuple[str, list]]:
    """Drive every kind of action once; (expected type, events) pairs."""
    out: list[tuple[str, list]] = []
    a = engine.enqueue("cs").ticket_id
    b = engine.enqueue("cs").ticket_id
    d = engine.enqueue("teller").ticket_id
    out.append(("ticket.created", engine.events[-1:]))
    out.append(("ticket.called", engine.run(c.CallNext(counter_id="5"))))
    out.append(("ticket.recalled", engine.run(c.Recall(ticket_id=a, counter_id="5"))))
    out.append(("ticket.serving", engine.run(c.Start(ticket_id=a, counter_id="5"))))
    engine.advance(90)
    out.append(("ticket.done", engine.run(c.Complete(ticket_id=a, counter_id="5"))))
    out.append(("ticket.held", engine.run(c.Hold(ticket_id=b))))
    out.append(("ticket.unheld", engine.run(c.Unhold(ticket_id=b))))
    out.append(("ticket.transferred", engine.run(c.Transfer(ticket_id=b, to_service_id="loan", reason="x"))))
    out.append(("ticket.cancelled", engine.run(c.Cancel(ticket_id=d))))
    e = engine.enqueue("cs").ticket_id
    engine.run(c.CallNext(counter_id="5"))
    no_show = engine.run(c.NoShow(ticket_id=e, counter_id="5"))  # cs returns to queue
    out.append(("ticket.no_show", no_show[:1]))
    out.append(("ticket.returned", no_show[1:]))
    out.append(("counter.presence", engine.set_presence("5", "break")))
    out.append(("config.rejected", engine.run(c.RejectConfig(version=9, errors=["unknown service x"]))))
    out.append(("numbers.leased", engine.run(c.LeaseNumbers(device_id="kiosk-1", service_id="cs", count=3))))
    return out


def test_every_action_emits_its_event_type_with_ids(engine: Engine) -> None:
    for expected, events in _every_action(engine):
        assert [event_type(e) for e in events] == [expected]
        (e,) = events
        if expected.startswith("ticket."):
            assert e.ticket_id is not None
            assert e.ticket_id in engine.state.tickets
            assert e.service_id in {s.id for s in engine.config.services}
    assert set(engine.types()) == set(EVENT_TYPES)


def test_events_are_wire_encodable_and_roundtrip(engine: Engine) -> None:
    _every_action(engine)
    decoded = [event_decoder.decode(event_encoder.encode(e)) for e in engine.events]
    assert decoded == engine.events


def test_replay_from_empty_state_reproduces_state(engine: Engine) -> None:
    _every_action(engine)
    engine.advance(hours=20)  # next business day: numbering reset and pruning must replay too
    engine.enqueue("cs")
    engine.assert_replays()
    rebuilt = replay(engine.events)
    for field in ("tickets", "counters", "sequences", "priority_streak", "order_seq"):
        assert getattr(rebuilt, field) == getattr(engine.state, field), field


def test_replay_after_json_roundtrip_of_the_log(engine: Engine) -> None:
    _every_action(engine)
    wire = [event_decoder.decode(event_encoder.encode(e)) for e in engine.events]
    assert replay(wire).tickets == engine.state.tickets


def test_decide_never_mutates_on_error(engine: Engine) -> None:
    t = engine.enqueue("teller")
    for cmd in (
        c.Start(ticket_id=t.ticket_id),
        c.Complete(ticket_id=t.ticket_id),
        c.Recall(ticket_id=t.ticket_id),
        c.NoShow(ticket_id=t.ticket_id),
        c.Unhold(ticket_id=t.ticket_id),
        c.Transfer(ticket_id=t.ticket_id),
    ):
        engine.refuse(cmd)
