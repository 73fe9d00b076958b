"""Queue position and ETA of waiting tickets, from position, open counters and recent service times.

ETA heuristic: tickets ahead are shared among the service's open counters, each taking the mean of the last
20 service times (or the service's configured `avg_service_seconds` before any): eta = (position - 1) / open
* mean + mean / 2 — the half accounts for the ticket in progress. No open counter: ETA unknown (None).
"""

from __future__ import annotations

from edge.engine.model import State, Ticket, is_open_counter
from edge.engine.routing import queue_key, queue_order


def mean_service_seconds(state: State, service_id: str) -> float:
    """Mean of recent service times, or the configured default."""
    recent = state.service_times.get(service_id) or []
    if recent:
        return sum(recent) / len(recent)
    service = state.config.service(service_id) if state.config else None
    return float(service.avg_service_seconds if service else 300)


def open_counters(state: State, service_id: str) -> int:
    """Counters that serve the service and are available or busy."""
    if state.config is None:
        return 0
    return sum(
        1
        for c in state.config.counters
        if c.active and service_id in c.services and is_open_counter(state.counters.get(c.id))
    )


def positions(state: State) -> dict[str, tuple[int, int | None]]:
    """For every waiting ticket: (1-based position in its service, ETA in seconds or None)."""
    result: dict[str, tuple[int, int | None]] = {}
    if state.config is None:
        return result
    by_service: dict[str, list[Ticket]] = {}
    for t in state.active("waiting"):
        by_service.setdefault(t.service_id, []).append(t)
    for service_id, tickets in by_service.items():
        service = state.config.service(service_id)
        if service is None:
            continue
        mean = mean_service_seconds(state, service_id)
        n_open = open_counters(state, service_id)
        for index, t in enumerate(queue_order(service, tickets)):
            eta = None if n_open == 0 else round(index / n_open * mean + mean / 2)
            result[t.ticket_id] = (index + 1, eta)
    return result


def position_of(state: State, ticket: Ticket) -> tuple[int, int | None] | None:
    """Position and ETA of one waiting ticket, in O(waiting) without sorting the queue."""
    service = state.config.service(ticket.service_id) if state.config else None
    if ticket.status != "waiting" or service is None:
        return None
    mine = queue_key(service, ticket)
    ahead = sum(
        1 for t in state.active("waiting") if t.service_id == ticket.service_id and queue_key(service, t) < mine
    )
    n_open = open_counters(state, ticket.service_id)
    mean = mean_service_seconds(state, ticket.service_id)
    return ahead + 1, None if n_open == 0 else round(ahead / n_open * mean + mean / 2)
