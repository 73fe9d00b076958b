"""evolve(state, event) -> state: the one projector; replaying the log through it rebuilds the state."""

from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from edge.engine.model import SERVICE_TIME_WINDOW, TERMINAL_STATUSES, CounterState, Lease, RecentCall, State, Ticket
from edge.engine.numbering import advance
from sync.contract import (
    ConfigApplied,
    ConfigRejected,
    CounterPresence,
    Event,
    NumbersLeased,
    TicketCalled,
    TicketCancelled,
    TicketCreated,
    TicketDone,
    TicketHeld,
    TicketNoShow,
    TicketRecalled,
    TicketReturned,
    TicketServing,
    TicketTransferred,
    TicketUnheld,
)


def evolve(state: State, event: Event) -> State:
    """Apply one committed event to the state (in place) and return it."""
    match event:
        case TicketCreated():
            _created(state, event)
        case TicketCalled():
            _called(state, event)
        case TicketRecalled():
            _touch(state, event)
            _update(state, event, recall_count=event.recall_count, no_show_deadline=event.no_show_deadline)
        case TicketServing():
            _touch(state, event)
            _update(state, event, status="serving", served_at=event.occurred_at, no_show_deadline=None)
        case TicketDone():
            _done(state, event)
        case TicketCancelled():
            _release(state, event)
            _update(state, event, status="cancelled", counter_id=None, target_counter=None, no_show_deadline=None)
        case TicketHeld():
            _release(state, event)
            _update(state, event, status="held", counter_id=None, no_show_deadline=None)
        case TicketUnheld():
            _update(state, event, status="waiting", order=event.order)
        case TicketTransferred():
            _transferred(state, event)
        case TicketNoShow():
            _release(state, event)
            _update(state, event, status="no_show", no_show_deadline=None)
        case TicketReturned():
            _update(
                state,
                event,
                status="waiting",
                order=event.order,
                returned=True,
                returns=event.returns,
                counter_id=None,
                called_at=None,
            )
        case CounterPresence():
            counter = state.counters.get(event.counter_id) or CounterState(counter_id=event.counter_id)
            state.counters[event.counter_id] = replace(counter, presence=event.status, updated_at=event.occurred_at)
        case ConfigApplied():
            _config(state, event)
        case ConfigRejected():
            pass  # the refused version never took effect
        case NumbersLeased():
            _leased(state, event)
        case _:
            raise TypeError(f"unknown event {type(event).__name__}")
    order = getattr(event, "order", None)
    if isinstance(order, int):
        state.order_seq = max(state.order_seq, order)
    state.seq = event.seq or state.seq + 1
    if event.hash:
        state.last_hash = event.hash
    return state


def _update(state: State, event: Event, **changes: object) -> None:
    """Replace the event's ticket with changed fields."""
    assert event.ticket_id is not None
    ticket = state.tickets[event.ticket_id]
    state.put(replace(ticket, updated_at=event.occurred_at, **changes))


def _release(state: State, event: Event) -> None:
    """Free the counter that holds the event's ticket, if any (its `updated_at`: the counter's last activity)."""
    for cid, counter in state.counters.items():
        if counter.current_ticket == event.ticket_id:
            state.counters[cid] = replace(counter, current_ticket=None, updated_at=event.occurred_at)


def _touch(state: State, event: Event) -> None:
    """A ticket event at a counter is activity there: the presence sweep closes only counters idle for long."""
    for cid, counter in state.counters.items():
        if counter.current_ticket == event.ticket_id:
            state.counters[cid] = replace(counter, updated_at=event.occurred_at)


def _created(state: State, e: TicketCreated) -> None:
    """A new ticket; a new business day resets numbering and forgets finished tickets of earlier days."""
    _roll_day(state, e.business_date)
    if e.business_date == state.business_date and not _use_leased(state, e):
        service = state.config.service(e.service_id) if state.config else None
        state.sequences[e.service_id] = advance(service, state.sequences.get(e.service_id, 0), e.seq_no)
    assert e.ticket_id is not None
    state.put(
        Ticket(
            ticket_id=e.ticket_id,
            ticket_number=e.ticket_number,
            service_id=e.service_id,
            status="waiting",
            business_date=e.business_date,
            order=e.order,
            created_at=e.occurred_at,
            updated_at=e.occurred_at,
            priority=e.priority,
            channel=e.channel,
            phone=e.phone,
            email=e.email,
            customer_ref=e.customer_ref,
            lang=e.lang,
            appointment_at=e.appointment_at,
        )
    )


def _roll_day(state: State, day: str) -> None:
    """Entering a new business day resets numbering, drops leases and forgets finished tickets of earlier days."""
    if day <= state.business_date:
        return
    state.business_date = day
    state.sequences = {}
    state.leases = {}
    state.tickets = {
        tid: t for tid, t in state.tickets.items() if t.status not in TERMINAL_STATUSES or t.business_date >= day
    }


def _leased(state: State, e: NumbersLeased) -> None:
    """Reserve the block: ordinary numbering skips every leased range, so no number is ever handed out twice."""
    _roll_day(state, e.business_date)
    if e.business_date != state.business_date:
        return  # a lease of an earlier day can no longer be used
    state.leases[e.lease_id] = Lease(
        lease_id=e.lease_id,
        device_id=e.device_id,
        service_id=e.service_id,
        business_date=e.business_date,
        first_seq=e.first_seq,
        last_seq=e.last_seq,
        granted_at=e.occurred_at,
    )


def _use_leased(state: State, e: TicketCreated) -> bool:
    """A created ticket whose number lies in a lease of its service consumes that number of the lease (True)."""
    for lease in state.leases.values():
        if lease.service_id == e.service_id and lease.first_seq <= e.seq_no <= lease.last_seq:
            state.leases[lease.lease_id] = replace(lease, used=(*lease.used, e.seq_no))
            return True
    return False


def _called(state: State, e: TicketCalled) -> None:
    """Assign the ticket to the counter and remember the call for the fairness rules."""
    assert e.ticket_id is not None
    ticket = state.tickets[e.ticket_id]
    _update(
        state,
        e,
        status="called",
        counter_id=e.counter_id,
        called_at=e.occurred_at,
        no_show_deadline=e.no_show_deadline,
        target_counter=None,
    )
    counter = state.counters.get(e.counter_id) or CounterState(counter_id=e.counter_id)
    state.counters[e.counter_id] = replace(counter, current_ticket=e.ticket_id, updated_at=e.occurred_at)
    service = state.config.service(e.service_id) if state.config else None
    if service is not None and service.priority_enabled:
        streak = state.priority_streak.get(e.service_id, 0)
        state.priority_streak[e.service_id] = streak + 1 if ticket.priority > 0 else 0
    if service is not None and service.appointment_quota_pct is not None:
        horizon = e.occurred_at - timedelta(minutes=service.appointment_window_minutes)
        calls = [c for c in state.recent_calls.get(e.service_id, []) if c.at >= horizon]
        calls.append(RecentCall(e.occurred_at, ticket.channel == "appointment"))
        state.recent_calls[e.service_id] = calls


def _done(state: State, e: TicketDone) -> None:
    """Finish the ticket and feed its service time to the ETA window."""
    _release(state, e)
    _update(state, e, status="done", completed_at=e.occurred_at, outcome=e.outcome, no_show_deadline=None)
    times = [*state.service_times.get(e.service_id, []), e.service_seconds]
    state.service_times[e.service_id] = times[-SERVICE_TIME_WINDOW:]


def _transferred(state: State, e: TicketTransferred) -> None:
    """The ticket waits again, in its new service and/or for its target counter."""
    _release(state, e)
    assert e.ticket_id is not None
    ticket = state.tickets[e.ticket_id]
    _update(
        state,
        e,
        status="waiting",
        service_id=e.to_service,
        order=e.order,
        counter_id=None,
        target_counter=e.to_counter,
        called_at=None,
        no_show_deadline=None,
        transferred_from=e.from_service,
        transfer_reason=e.reason,
        transfer_count=ticket.transfer_count + 1,
    )


def _config(state: State, e: ConfigApplied) -> None:
    """Adopt the new configuration; new counters start `closed` (nobody signed in yet), removed ones disappear."""
    state.config = e.config
    state.branch_id = e.config.branch_id
    wanted = {c.id for c in e.config.counters}
    for cid in wanted - state.counters.keys():
        state.counters[cid] = CounterState(counter_id=cid, presence="closed", updated_at=e.occurred_at)
    for cid in set(state.counters) - wanted:
        del state.counters[cid]
