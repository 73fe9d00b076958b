"""Queue position and ETA of waiting tickets, from position, open counters and recent service times.

ETA heuristic: tickets ahead are shared among the service's open counters, each taking the mean of the last
20 service times (or the service's configured `avg_service_seconds` until `MIN_SAMPLES` exist): eta =
(position - 1) / open * mean + mean / 2 — the half accounts for the ticket in progress. No open counter: ETA
unknown (None). Each sample counts as at least `sample_floor` (an accidental start→complete of a second would
otherwise promise "< 1 min" to a long queue).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from edge.engine.model import (
    PriorityEntry,
    QueueEntry,
    State,
    Ticket,
    is_open_counter,
    priority_entry,
    queue_entry,
)
from edge.engine.routing import queue_order

DEFAULT_SERVICE_SECONDS = 300  # a service missing from the configuration
MIN_SAMPLES = 3  # fewer real service times than this: the configured average is the better guess
FLOOR_SECONDS = 30.0  # no service is shorter than this, nor than FLOOR_FRACTION of the configured average ...
FLOOR_FRACTION = 0.2
# ... unless the configured average itself is shorter (then the floor is that average).


def sample_floor(configured: float) -> float:
    """The least a recorded service time counts as, for a service configured to average `configured` seconds."""
    return max(min(FLOOR_SECONDS, configured), configured * FLOOR_FRACTION)


def mean_service_seconds(state: State, service_id: str) -> float:
    """Mean of recent service times (each at least the floor), or the configured average before `MIN_SAMPLES`."""
    service = state.config.service(service_id) if state.config else None
    configured = float(service.avg_service_seconds if service else DEFAULT_SERVICE_SECONDS)
    recent = state.service_times.get(service_id) or []
    if len(recent) < MIN_SAMPLES:
        return configured
    floor = sample_floor(configured)
    return sum(max(floor, t) for t in recent) / len(recent)


def open_counters(state: State, service_id: str) -> int:
    """Counters that serve the service and are available or busy."""
    if state.config is None:
        return 0
    return sum(
        1
        for c in state.config.counters
        if c.active and service_id in c.services and is_open_counter(state.counters.get(c.id))
    )


def positions(state: State, service_id: str | None = None) -> dict[str, tuple[int, int | None]]:
    """For every waiting ticket (of one service, or all): (1-based position in call order, ETA seconds or None)."""
    result: dict[str, tuple[int, int | None]] = {}
    if state.config is None:
        return result
    by_service: dict[str, list[Ticket]] = {}
    for t in state.active("waiting"):
        if service_id is None or t.service_id == service_id:
            by_service.setdefault(t.service_id, []).append(t)
    for sid, tickets in by_service.items():
        service = state.config.service(sid)
        if service is None:
            continue
        mean = mean_service_seconds(state, sid)
        n_open = open_counters(state, sid)
        for index, t in enumerate(queue_order(service, tickets, state.priority_streak.get(sid, 0))):
            eta = None if n_open == 0 else round(index / n_open * mean + mean / 2)
            result[t.ticket_id] = (index + 1, eta)
    return result


def position_of(state: State, ticket: Ticket) -> tuple[int, int | None] | None:
    """Position and ETA of one waiting ticket, from its rank in the service's ordered queue (no scan).

    Equal to `positions(state)[ticket_id]`: `queue_order` interleaves regular and priority tickets by the
    anti-starvation rule, which is arithmetic on the two ranks (see `_interleaved`).
    """
    if ticket.status != "waiting" or state.config is None:
        return None
    service = state.config.service(ticket.service_id)
    queue = state.queue(ticket.service_id)
    if service is None or queue is None:
        return None
    if not service.priority_enabled:
        index = _rank(queue.fifo, queue_entry(ticket))
    else:
        streak = state.priority_streak.get(service.id, 0)
        index = _interleaved(ticket, queue.regular, queue.priority, streak, service.anti_starvation_n)
    if index is None:
        return None
    mean = mean_service_seconds(state, ticket.service_id)
    n_open = open_counters(state, ticket.service_id)
    eta = None if n_open == 0 else round(index / n_open * mean + mean / 2)
    return index + 1, eta


def _rank(entries: list[Any], entry: Any) -> int | None:
    index = bisect_left(entries, entry)
    return index if index < len(entries) and entries[index] == entry else None


def _interleaved(
    ticket: Ticket, regular: list[QueueEntry], priority: list[PriorityEntry], streak: int, n: int
) -> int | None:
    """0-based place of a ticket in `queue_order`: priority tickets are taken until the streak reaches `n`, then one
    regular ticket (the streak restarts at 0), and so on; whichever list runs out, the other continues."""
    first_run = max(0, n - streak)  # priority tickets before the first regular one
    if ticket.priority > 0:
        q = _rank(priority, priority_entry(ticket))
        if q is None:
            return None
        regular_before = len(regular) if n == 0 else 0 if q < first_run else 1 + (q - first_run) // n
        return q + min(len(regular), regular_before)
    r = _rank(regular, queue_entry(ticket))
    if r is None:
        return None
    return r + min(len(priority), first_run + r * n)
