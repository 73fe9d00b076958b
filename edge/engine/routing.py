"""Routing: which waiting ticket a counter gets next (FIFO, priority with anti-starvation, skills, blending).

The rules, in order, for one call-next at counter C:
1. C must be active and `available` or `busy`; on `break`/`closed` nothing is assigned (`counter_unavailable`).
2. Eligible tickets: `waiting`, in a service mapped to C, and not targeted at another counter.
   None eligible: `empty` if the branch has no waiting ticket at all, else `no_compatible`.
3. Per service, its head ticket:
   a. Appointment blending (when the service sets `appointment_quota_pct`): an appointment due within
      `appointment_boost_minutes` goes first; otherwise appointments are taken while their share of the calls in
      the last `appointment_window_minutes` is below the quota, walk-ins otherwise.
   b. Priority (when `priority_enabled`): the highest priority class goes first, FIFO within a class — except
      that once `anti_starvation_n` priority tickets were called in a row in the service, the oldest waiting
      regular ticket is called next. So a waiting regular ticket sees at most N priority calls before its turn.
   c. Otherwise FIFO by queue order (a reconciled offline ticket goes before the tickets issued after it).
4. Across C's services: the head with the highest effective priority, then the earliest queue order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from edge.engine.model import State, Ticket, WaitingQueue, is_open_counter, queue_key
from sync.contract_config import Service

NoTicketReason = Literal["empty", "no_compatible", "counter_unavailable"]
FULL_QUOTA_PCT = 100  # an appointment quota of 100 % means: appointments always go first


def eligible(state: State, counter_id: str, ticket: Ticket) -> bool:
    """A waiting ticket the counter may take (skill mapping and counter targeting)."""
    counter = state.config.counter(counter_id) if state.config else None
    return (
        counter is not None
        and ticket.status == "waiting"
        and ticket.service_id in counter.services
        and ticket.target_counter in (None, counter_id)
    )


def counter_open(state: State, counter_id: str) -> bool:
    """The counter is configured, active and not on break/closed."""
    counter = state.config.counter(counter_id) if state.config else None
    return counter is not None and counter.active and is_open_counter(state.counters.get(counter_id))


def pick_next(state: State, counter_id: str, now: datetime) -> Ticket | NoTicketReason:
    """The ticket call-next gives this counter, or why there is none.

    Reads the ordered per-service queues (`State.queues`), so the cost does not grow with the number waiting: each
    service's head is the first eligible entry (only tickets targeted at another counter, and appointments when
    walk-ins are wanted, are stepped over).
    """
    if not counter_open(state, counter_id):
        return "counter_unavailable"
    assert state.config is not None
    counter = state.config.counter(counter_id)
    assert counter is not None
    heads: list[tuple[int, Ticket]] = []
    found = False
    for service_id in dict.fromkeys(counter.services):
        queue = state.queue(service_id)
        if queue is None:
            continue
        service = state.config.service(service_id)
        head = _indexed_head(state, queue, service, counter_id, now)
        if head is None:
            continue
        found = True
        if service is not None:
            heads.append(head[::-1])
    if not found:
        return "no_compatible" if state.count("waiting") else "empty"
    if not heads:
        return "no_compatible"
    return min(heads, key=lambda h: (-h[0], queue_key(h[1])))[1]


def _first(state: State, entries: list[Any], keep: Callable[[Ticket], bool]) -> Ticket | None:
    """The first ticket of an ordered queue list that `keep` accepts."""
    for entry in entries:
        ticket = state.tickets[entry[-1]]
        if keep(ticket):
            return ticket
    return None


def _indexed_head(
    state: State, queue: WaitingQueue, service: Service | None, counter_id: str, now: datetime
) -> tuple[Ticket, int] | None:
    """`service_head` over the counter's eligible tickets of one service queue (None: none eligible)."""

    def for_counter(t: Ticket) -> bool:
        return t.target_counter in (None, counter_id)

    first = _first(state, queue.fifo, for_counter)
    if first is None or service is None:
        return None if first is None else (first, 0)
    walk_ins_only = False
    if service.appointment_quota_pct is not None and queue.appointments:
        appointments = [t for t in queue.appointments.values() if for_counter(t)]
        walk_in = _first(state, queue.fifo, lambda t: for_counter(t) and t.channel != "appointment")
        if appointments and walk_in is not None:
            # blend with one walk-in standing for all: the pool is a due appointment, the appointments, or walk-ins
            pool = _blend(state, service, [*appointments, walk_in], now)
            if not (len(pool) == 1 and pool[0] is walk_in):
                return service_head(state, service, pool, now)
            walk_ins_only = True

    def keep(t: Ticket) -> bool:
        return for_counter(t) and not (walk_ins_only and t.channel == "appointment")

    if not service.priority_enabled:
        head = _first(state, queue.fifo, keep) if walk_ins_only else first
        return None if head is None else (head, 0)
    regular = _first(state, queue.regular, keep)
    priority = _first(state, queue.priority, keep)
    if regular is not None and (priority is None or regular_turn(state, service)):
        return regular, 0
    if priority is None:
        return None
    return priority, priority.priority


def regular_turn(state: State, service: Service) -> bool:
    """Anti-starvation: after `anti_starvation_n` priority calls in a row, the oldest regular ticket goes next."""
    return state.priority_streak.get(service.id, 0) >= service.anti_starvation_n


def service_head(state: State, service: Service, tickets: list[Ticket], now: datetime) -> tuple[Ticket, int]:
    """The next ticket of one service among `tickets`, and its effective priority rank."""
    pool = _blend(state, service, tickets, now)
    if not service.priority_enabled:
        return min(pool, key=queue_key), 0
    regular = [t for t in pool if t.priority == 0]
    priority = [t for t in pool if t.priority > 0]
    if regular and (not priority or regular_turn(state, service)):
        return min(regular, key=queue_key), 0
    best = min(priority, key=lambda t: (-t.priority, queue_key(t)))
    return best, best.priority


def _blend(state: State, service: Service, tickets: list[Ticket], now: datetime) -> list[Ticket]:
    """Appointment vs walk-in: the pool the next call comes from (US-QUEUE-014)."""
    if service.appointment_quota_pct is None:
        return tickets
    appointments = [t for t in tickets if t.channel == "appointment"]
    walk_ins = [t for t in tickets if t.channel != "appointment"]
    if not appointments or not walk_ins:
        return tickets
    boost = now + timedelta(minutes=service.appointment_boost_minutes)
    due = [t for t in appointments if t.appointment_at is not None and t.appointment_at <= boost]
    if due:
        return [min(due, key=lambda t: (t.appointment_at or now, queue_key(t)))]
    horizon = now - timedelta(minutes=service.appointment_window_minutes)
    calls = [c for c in state.recent_calls.get(service.id, []) if c.at >= horizon]
    share = sum(c.appointment for c in calls) / len(calls) if calls else 0.0
    # `share < quota` alone would turn a 100 % quota into alternation once every call in the window was one.
    under_quota = service.appointment_quota_pct >= FULL_QUOTA_PCT or share * 100 < service.appointment_quota_pct
    return appointments if under_quota else walk_ins


def queue_order(service: Service, tickets: list[Ticket], streak: int = 0) -> list[Ticket]:
    """Waiting tickets of one service in the order call-next will take them (for positions and ETAs).

    Plays rule 3b forward from the service's current priority streak: the same choice `service_head` makes at each
    call. Appointment blending depends on when the calls happen: `edge.engine.eta.call_order` plays it forward and
    uses this for the rest once one lane is empty.
    """
    if not service.priority_enabled:
        return sorted(tickets, key=queue_key)
    regular = sorted((t for t in tickets if t.priority == 0), key=queue_key)
    priority = sorted((t for t in tickets if t.priority > 0), key=lambda t: (-t.priority, queue_key(t)))
    return merge_lanes(service, regular, priority, streak)


def merge_lanes(service: Service, regular: list[Ticket], priority: list[Ticket], streak: int) -> list[Ticket]:
    """The call order of two lanes already sorted (regular by queue order, priority by class then queue order):
    priority first, a regular ticket after `anti_starvation_n` priority calls in a row (`streak` so far)."""
    order: list[Ticket] = []
    r = p = 0
    while r < len(regular) or p < len(priority):
        if r < len(regular) and (p == len(priority) or streak >= service.anti_starvation_n):
            order.append(regular[r])
            r, streak = r + 1, 0
        else:
            order.append(priority[p])
            p, streak = p + 1, streak + 1
    return order
