"""decide(state, command, now, ids) -> events: every rule of the queue, with no I/O and no clock of its own."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from msgspec.structs import replace

from edge.engine import commands as c
from edge.engine.config_rules import check_config
from edge.engine.errors import DomainError, Invalid, InvalidTransition, NotFound
from edge.engine.model import CounterState, State, Ticket, queue_key
from edge.engine.numbering import (
    business_date,
    format_number,
    issued_count,
    next_lease_block,
    next_number,
    within_hours,
)
from edge.engine.routing import counter_open, eligible, pick_next
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
from sync.contract_config import BranchConfig, Service, config_hash

MAX_PRIORITY = 9
MAX_LEASE = 100  # numbers one kiosk may hold back per lease


class Ids(Protocol):
    """Source of new unique ids (UUIDv7 in production, a counter in tests)."""

    def __call__(self) -> str:
        """A new id."""
        ...


def decide(state: State, command: c.Command, now: datetime, ids: Ids) -> list[Event]:
    """The events a command produces against the state; raises DomainError (and changes nothing) if refused."""
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise Invalid(f"unknown command {type(command).__name__}", code="unknown_command")
    if state.config is None and not isinstance(command, c.ApplyConfig | c.Tick | c.RejectConfig):
        raise DomainError("the branch has no configuration yet", code="not_configured", status=503)
    return handler(state, command, now, ids)


def _base(cmd: c.Command, now: datetime, ids: Ids, ticket_id: str | None = None) -> dict[str, object]:
    """Envelope fields of an event caused by a command."""
    return {
        "event_id": ids(),
        "occurred_at": now,
        "actor": cmd.actor,
        "request_id": cmd.request_id,
        "ticket_id": ticket_id,
    }


def _config(state: State) -> BranchConfig:
    assert state.config is not None
    return state.config


def _service(state: State, service_id: str) -> Service:
    service = _config(state).service(service_id)
    if service is None:
        raise Invalid(f"unknown service {service_id!r}", code="unknown_service", service_id=service_id)
    return service


def _ticket(state: State, ticket_id: str) -> Ticket:
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id!r}", code="ticket_not_found", ticket_id=ticket_id)
    return ticket


def _counter(state: State, counter_id: str) -> CounterState:
    counter = state.counters.get(counter_id)
    if counter is None or _config(state).counter(counter_id) is None:
        raise NotFound(f"no counter {counter_id!r}", code="counter_not_found", counter_id=counter_id)
    return counter


def _expect(ticket: Ticket, action: str, *statuses: str) -> None:
    if ticket.status not in statuses:
        raise InvalidTransition(
            f"cannot {action} ticket {ticket.ticket_number}: it is {ticket.status}",
            ticket_id=ticket.ticket_id,
            ticket_status=ticket.status,
        )


def _at_counter(ticket: Ticket, counter_id: str | None) -> None:
    """Only the counter holding the ticket may act on it (a call without counter is a supervisor's)."""
    if counter_id is not None and ticket.counter_id != counter_id:
        raise DomainError(
            f"ticket {ticket.ticket_number} is at counter {ticket.counter_id}, not {counter_id}",
            code="wrong_counter",
            status=409,
        )


def _deadline(service: Service, now: datetime) -> datetime | None:
    return None if service.grace_seconds is None else now + timedelta(seconds=service.grace_seconds)


def _enqueue(state: State, cmd: c.Enqueue, now: datetime, ids: Ids) -> list[Event]:
    config = _config(state)
    service = _service(state, cmd.service_id)
    if not service.active:
        raise DomainError(f"service {service.id!r} is not active", code="service_inactive")
    if not within_hours(service, now, config.timezone):
        raise DomainError(f"service {service.id!r} is closed now", code="service_closed")
    priority = service.default_priority if cmd.priority is None else cmd.priority
    if not 0 <= priority <= MAX_PRIORITY:  # 0 is regular; 1..9 are priority classes, higher first
        raise Invalid(f"priority must be 0..{MAX_PRIORITY}, not {priority}", code="invalid_priority")
    if priority and not service.priority_enabled:
        raise Invalid(f"service {service.id!r} takes no priority tickets", code="priority_not_allowed")
    if cmd.channel == "appointment" and cmd.appointment_at is None:
        raise Invalid("an appointment ticket needs appointment_at", code="appointment_time_missing")
    day = max(business_date(now, config.timezone), state.business_date)
    last, leased = state.numbering(service.id, day)
    if service.daily_capacity is not None and issued_count(last, leased) >= service.daily_capacity:
        raise DomainError(f"service {service.id!r} reached today's capacity", code="service_full")
    cancels = config.day_close == "cancel"
    seq_no = next_number(service, last, leased, lambda number: state.number_in_use(number, day, cancels))
    if seq_no is None:
        raise DomainError(f"every number of service {service.id!r} is held by an active ticket", code="service_full")
    ticket_id = ids()
    return [
        TicketCreated(
            **_base(cmd, now, ids, ticket_id),  # type: ignore[arg-type]
            service_id=service.id,
            ticket_number=format_number(service, seq_no),
            seq_no=seq_no,
            business_date=day,
            order=state.order_seq + 1,
            priority=priority,
            channel=cmd.channel,
            phone=cmd.phone,
            email=cmd.email,
            customer_ref=cmd.customer_ref,
            lang=cmd.lang,
            appointment_at=cmd.appointment_at,
            notify_opt_in=cmd.notify_opt_in,
        )
    ]


def _ready_counter(state: State, counter_id: str) -> None:
    """The counter exists, is open and holds no ticket."""
    counter = _counter(state, counter_id)
    if not counter_open(state, counter_id):
        raise DomainError(f"counter {counter_id!r} is {counter.presence}", code="counter_unavailable")
    if counter.current_ticket is not None:
        current = state.tickets.get(counter.current_ticket)
        number = current.ticket_number if current else counter.current_ticket
        raise DomainError(
            f"counter {counter_id!r} still has ticket {number}; finish it first",
            code="counter_busy",
            ticket_id=counter.current_ticket,
        )


def _call(
    state: State,
    cmd: c.Command,
    ticket: Ticket,
    counter_id: str,
    now: datetime,
    ids: Ids,
    *,
    auto: bool = False,
    specific: bool = False,
) -> TicketCalled:
    service = _service(state, ticket.service_id)
    return TicketCalled(
        **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
        service_id=ticket.service_id,
        counter_id=counter_id,
        no_show_deadline=_deadline(service, now),
        auto=auto,
        specific=specific,
    )


def _opening(state: State, counter_id: str) -> State:
    """The state as if a `closed` counter were open: someone calling a ticket there is at the counter.

    Counters start the day `closed` (nobody signed in); a call from the counter (desk, API, call button) opens it
    with a `counter.presence` event before the call. A counter on `break` stays refused: its agent chose that.
    """
    counter = state.counters.get(counter_id)
    if counter is None or counter.presence != "closed":
        return state
    opened = copy.copy(state)
    opened.counters = {**state.counters, counter_id: replace(counter, presence="available")}
    return opened


def _open_event(state: State, cmd: c.Command, counter_id: str, now: datetime, ids: Ids) -> list[Event]:
    """The `closed -> available` presence event that goes before a call at a closed counter (else nothing)."""
    counter = state.counters.get(counter_id)
    if counter is None or counter.presence != "closed":
        return []
    base = _base(cmd, now, ids) | {"request_id": None}  # the request_id names the call (one event per request)
    return [CounterPresence(**base, counter_id=counter_id, status="available", previous="closed")]  # type: ignore[arg-type]


def _call_next(state: State, cmd: c.CallNext, now: datetime, ids: Ids) -> list[Event]:
    """Returns [] when nothing is eligible (also on break); the reason is `no_ticket_reason`."""
    _counter(state, cmd.counter_id)
    view = _opening(state, cmd.counter_id)
    if not counter_open(view, cmd.counter_id):
        return []
    _ready_counter(view, cmd.counter_id)
    picked = pick_next(view, cmd.counter_id, now)
    if isinstance(picked, str):
        return []
    opened = _open_event(state, cmd, cmd.counter_id, now, ids)
    return [*opened, _call(view, cmd, picked, cmd.counter_id, now, ids)]


def no_ticket_reason(state: State, counter_id: str, now: datetime) -> str:
    """Why call-next found nothing for the counter (`empty`, `no_compatible`, `counter_unavailable`)."""
    picked = pick_next(_opening(state, counter_id), counter_id, now)
    return picked if isinstance(picked, str) else "empty"


def _call_ticket(state: State, cmd: c.CallTicket, now: datetime, ids: Ids) -> list[Event]:
    closed_state, state = state, _opening(state, cmd.counter_id)
    _ready_counter(state, cmd.counter_id)
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "call", "waiting")
    if not eligible(state, cmd.counter_id, ticket):
        raise DomainError(
            f"counter {cmd.counter_id!r} cannot serve ticket {ticket.ticket_number}",
            code="counter_not_compatible",
        )
    opened = _open_event(closed_state, cmd, cmd.counter_id, now, ids)
    return [*opened, _call(state, cmd, ticket, cmd.counter_id, now, ids, specific=True)]


def _recall(state: State, cmd: c.Recall, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "recall", "called")
    _at_counter(ticket, cmd.counter_id)
    assert ticket.counter_id is not None
    return [
        TicketRecalled(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            counter_id=ticket.counter_id,
            recall_count=ticket.recall_count + 1,
            no_show_deadline=_deadline(_service(state, ticket.service_id), now),
        )
    ]


def _start(state: State, cmd: c.Start, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "start", "called")
    _at_counter(ticket, cmd.counter_id)
    assert ticket.counter_id is not None
    return [
        TicketServing(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            counter_id=ticket.counter_id,
        )
    ]


def _complete(state: State, cmd: c.Complete, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "complete", "serving")
    _at_counter(ticket, cmd.counter_id)
    service = _service(state, ticket.service_id)
    if cmd.outcome is not None and service.outcome_codes and cmd.outcome not in service.outcome_codes:
        raise Invalid(f"outcome {cmd.outcome!r} is not one of {service.outcome_codes}", code="unknown_outcome")
    assert ticket.counter_id is not None
    assert ticket.served_at is not None
    waited_until = ticket.called_at or ticket.served_at
    return [
        TicketDone(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            counter_id=ticket.counter_id,
            outcome=cmd.outcome,
            service_seconds=max(0.0, (now - ticket.served_at).total_seconds()),
            wait_seconds=max(0.0, (waited_until - ticket.created_at).total_seconds()),
        )
    ]


def _cancel(state: State, cmd: c.Cancel, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    service = _service(state, ticket.service_id)
    allowed = (
        ("waiting", "held", "called", "serving") if service.allow_cancel_serving else ("waiting", "held", "called")
    )
    if ticket.status == "serving" and not service.allow_cancel_serving:
        raise InvalidTransition(
            f"ticket {ticket.ticket_number} is being served; the service does not allow cancelling it",
            code="cancel_not_allowed",
        )
    _expect(ticket, "cancel", *allowed)
    if ticket.status in ("called", "serving"):
        _at_counter(ticket, cmd.counter_id)
    return [
        TicketCancelled(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            from_status=ticket.status,
            counter_id=ticket.counter_id,
            reason=cmd.reason,
        )
    ]


def _hold(state: State, cmd: c.Hold, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "hold", "waiting", "called", "serving")
    if ticket.status != "waiting":
        _at_counter(ticket, cmd.counter_id)
    return [
        TicketHeld(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            from_status=ticket.status,
            counter_id=ticket.counter_id,
        )
    ]


def _unhold(state: State, cmd: c.Unhold, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "unhold", "held")
    service = _service(state, ticket.service_id)
    order = ticket.order if service.unhold_position == "original" else state.order_seq + 1
    return [
        TicketUnheld(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            order=order,
        )
    ]


def _transfer(state: State, cmd: c.Transfer, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "transfer", "waiting", "called", "serving", "held")
    if cmd.to_service_id is None and cmd.to_counter_id is None:
        raise Invalid("a transfer needs to_service_id or to_counter_id", code="transfer_target_missing")
    if ticket.status in ("called", "serving"):
        _at_counter(ticket, cmd.counter_id)
    to_service = _service(state, cmd.to_service_id or ticket.service_id)
    if not to_service.active:
        raise DomainError(f"service {to_service.id!r} is not active", code="service_inactive")
    if cmd.to_counter_id is not None:
        _counter(state, cmd.to_counter_id)
        target = _config(state).counter(cmd.to_counter_id)
        if target is None or to_service.id not in target.services:
            raise DomainError(
                f"counter {cmd.to_counter_id!r} does not serve {to_service.id!r}", code="counter_not_compatible"
            )
    if to_service.id == ticket.service_id and cmd.to_counter_id in (None, ticket.target_counter):
        raise Invalid("the ticket is already there", code="transfer_to_same")
    return [
        TicketTransferred(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            from_service=ticket.service_id,
            to_service=to_service.id,
            service_id=to_service.id,
            order=state.order_seq + 1,
            from_status=ticket.status,
            from_counter=ticket.counter_id,
            to_counter=cmd.to_counter_id,
            reason=cmd.reason,
        )
    ]


def _no_show_events(
    state: State, cmd: c.Command, ticket: Ticket, now: datetime, ids: Ids, *, automatic: bool, order: int | None = None
) -> list[Event]:
    service = _service(state, ticket.service_id)
    returns = service.no_show_policy == "return" and ticket.returns < service.max_returns
    events: list[Event] = [
        TicketNoShow(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            counter_id=ticket.counter_id,
            automatic=automatic,
            returned=returns,
        )
    ]
    if returns:
        events.append(
            TicketReturned(
                **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
                service_id=ticket.service_id,
                order=order or state.order_seq + 1,
                returns=ticket.returns + 1,
            )
        )
    return events


def _no_show(state: State, cmd: c.NoShow, now: datetime, ids: Ids) -> list[Event]:
    ticket = _ticket(state, cmd.ticket_id)
    _expect(ticket, "mark no-show", "called")
    _at_counter(ticket, cmd.counter_id)
    return _no_show_events(state, cmd, ticket, now, ids, automatic=False)


def _presence(state: State, cmd: c.SetPresence, now: datetime, ids: Ids) -> list[Event]:
    counter = _counter(state, cmd.counter_id)
    if counter.presence == cmd.status:
        return []
    return [
        CounterPresence(
            **_base(cmd, now, ids),  # type: ignore[arg-type]
            counter_id=cmd.counter_id,
            status=cmd.status,
            previous=counter.presence,
        )
    ]


def _apply_config(state: State, cmd: c.ApplyConfig, now: datetime, ids: Ids) -> list[Event]:
    current = state.config.version if state.config else 0
    if cmd.base_version is not None and cmd.base_version != current:
        raise DomainError(
            f"configuration changed meanwhile: based on version {cmd.base_version}, current is {current}",
            code="version_conflict",
            status=412,
            current_version=current,
        )
    version = cmd.version if cmd.version is not None else current + 1
    if version <= current and state.config is not None:
        raise DomainError(f"version {version} is not newer than {current}", code="version_conflict", status=412)
    errors = check_config(state, cmd.config, now)
    if errors:
        raise Invalid("the configuration is not valid", code="invalid_config", errors=errors)
    config = replace(cmd.config, version=version)
    return [
        ConfigApplied(
            **_base(cmd, now, ids),  # type: ignore[arg-type]
            version=version,
            config=config,
            source=cmd.source,
            config_hash=config_hash(config),
        )
    ]


def _reject_config(_state: State, cmd: c.RejectConfig, now: datetime, ids: Ids) -> list[Event]:
    """A refused configuration version becomes an event, so the cloud learns why the branch did not apply it."""
    return [ConfigRejected(**_base(cmd, now, ids), version=cmd.version, errors=cmd.errors, source=cmd.source,  # type: ignore[arg-type]
                           config_hash=cmd.config_hash)]  # fmt: skip


def _tick(state: State, cmd: c.Tick, now: datetime, ids: Ids) -> list[Event]:
    """The day close, else due auto no-shows (each exactly once: the event ends `called`), else one auto-call."""
    if state.config is None:
        return []
    events = _day_close(state, cmd, now, ids)
    if events:
        return events
    due = [t for t in state.active("called") if t.no_show_deadline is not None and t.no_show_deadline <= now]
    for index, ticket in enumerate(sorted(due, key=queue_key)):
        order = state.order_seq + 1 + index
        events += _no_show_events(state, cmd, ticket, now, ids, automatic=True, order=order)
    if events:
        return events
    for counter in state.config.counters:
        live = state.counters.get(counter.id)
        if counter.auto_call and live is not None and live.presence == "available" and live.current_ticket is None:
            picked = pick_next(state, counter.id, now)
            if not isinstance(picked, str):
                return [_call(state, cmd, picked, counter.id, now, ids, auto=True)]
    return []


DAY_CLOSE_REASON = "end_of_day"


def _day_close(state: State, cmd: c.Tick, now: datetime, ids: Ids) -> list[Event]:
    """After local midnight (`day_close: cancel`): cancel every waiting or held ticket of an earlier business day.

    Exactly once (a cancelled ticket is finished); a clock stepping back never closes today's tickets.
    """
    config = _config(state)
    if config.day_close != "cancel":
        return []
    today = business_date(now, config.timezone)
    if not state.has_open_before(today):
        return []  # the usual case, answered from a per-day count instead of a scan of the queue
    stale = [t for t in state.active() if t.business_date < today and t.status in ("waiting", "held")]
    return [
        TicketCancelled(
            **_base(cmd, now, ids, ticket.ticket_id),  # type: ignore[arg-type]
            service_id=ticket.service_id,
            from_status=ticket.status,
            reason=DAY_CLOSE_REASON,
        )
        for ticket in sorted(stale, key=queue_key)
    ]


def next_deadline(state: State) -> datetime | None:
    """The earliest pending auto no-show deadline, for the writer's timer."""
    deadlines = [t.no_show_deadline for t in state.active("called") if t.no_show_deadline is not None]
    return min(deadlines, default=None)


def _lease_numbers(state: State, cmd: c.LeaseNumbers, now: datetime, ids: Ids) -> list[Event]:
    """Reserve `count` numbers of today's offline block (within the daily capacity) for a kiosk's offline buffer."""
    config = _config(state)
    service = _service(state, cmd.service_id)
    if not service.active:
        raise DomainError(f"service {service.id!r} is not active", code="service_inactive")
    if not within_hours(service, now, config.timezone):  # numbers for later would be tickets outside the hours
        raise DomainError(f"service {service.id!r} is closed now", code="service_closed")
    if not 1 <= cmd.count <= MAX_LEASE:
        raise Invalid(f"a lease holds 1..{MAX_LEASE} numbers, not {cmd.count}", code="invalid_lease_size")
    day = max(business_date(now, config.timezone), state.business_date)
    last, leased = state.numbering(service.id, day)
    count = cmd.count
    if service.daily_capacity is not None:
        count = min(count, service.daily_capacity - issued_count(last, leased))
    if count < 1:
        raise DomainError(f"service {service.id!r} reached today's capacity", code="service_full")
    cancels = config.day_close == "cancel"
    block = next_lease_block(service, leased, count, lambda number: state.number_in_use(number, day, cancels))
    if block is None:
        raise DomainError(f"service {service.id!r} has leased its whole offline block today", code="service_full")
    first, count = block[0], block[1] - block[0] + 1
    return [
        NumbersLeased(
            **_base(cmd, now, ids),  # type: ignore[arg-type]
            lease_id=ids(),
            device_id=cmd.device_id,
            service_id=service.id,
            business_date=day,
            first_seq=first,
            last_seq=first + count - 1,
        )
    ]


def _enqueue_leased(state: State, cmd: c.EnqueueLeased, now: datetime, ids: Ids) -> list[Event]:
    """A ticket issued offline joins the queue with its leased number, dated when it was issued (clamped)."""
    lease = state.leases.get(cmd.lease_id)
    if lease is None or lease.business_date != state.business_date:
        raise DomainError(f"no lease {cmd.lease_id!r} for today", code="lease_not_found", status=410)
    if lease.device_id != cmd.device_id:
        raise DomainError(f"lease {cmd.lease_id!r} belongs to another device", code="lease_wrong_device", status=403)
    if not lease.first_seq <= cmd.seq_no <= lease.last_seq:
        raise Invalid(f"number {cmd.seq_no} is not in lease {cmd.lease_id!r}", code="lease_number_invalid")
    if cmd.seq_no in lease.used:
        raise DomainError(f"number {cmd.seq_no} of lease {cmd.lease_id!r} is already used", code="lease_number_used")
    if not cmd.request_id:
        raise Invalid("an offline ticket needs its temporary id as request_id", code="request_id_required")
    service = _service(state, lease.service_id)
    issued = min(max(cmd.issued_at, lease.granted_at), now)  # a kiosk clock is not trusted beyond its lease
    # Its place is its issue time: before every waiting ticket issued after it (it shares the first one's order and
    # goes first on the earlier time, see `queue_key`), after the rest; at the end when none came after it.
    later = [t.order for t in state.active("waiting") if t.created_at > issued]
    order = min(later, default=state.order_seq + 1)
    ticket_id = ids()
    base = _base(cmd, now, ids, ticket_id)
    base["occurred_at"] = issued
    return [
        TicketCreated(
            **base,  # type: ignore[arg-type]
            service_id=service.id,
            ticket_number=format_number(service, cmd.seq_no),
            seq_no=cmd.seq_no,
            business_date=lease.business_date,
            order=order,
            priority=service.default_priority,
            channel=cmd.channel,
            phone=cmd.phone,
            customer_ref=cmd.customer_ref,
            lang=cmd.lang,
            notify_opt_in=cmd.notify_opt_in,
        )
    ]


_HANDLERS: dict[type, Callable[..., list[Event]]] = {
    c.Enqueue: _enqueue,
    c.CallNext: _call_next,
    c.CallTicket: _call_ticket,
    c.Recall: _recall,
    c.Start: _start,
    c.Complete: _complete,
    c.Cancel: _cancel,
    c.Hold: _hold,
    c.Unhold: _unhold,
    c.Transfer: _transfer,
    c.NoShow: _no_show,
    c.SetPresence: _presence,
    c.ApplyConfig: _apply_config,
    c.RejectConfig: _reject_config,
    c.Tick: _tick,
    c.LeaseNumbers: _lease_numbers,
    c.EnqueueLeased: _enqueue_leased,
}
