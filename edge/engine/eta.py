"""Queue position and ETA of waiting tickets, from position, open counters and recent service times.

ETA heuristic: tickets ahead are shared among the service's open counters, each taking the mean of the last
20 service times (or the service's configured `avg_service_seconds` before any): eta = (position - 1) / open
* mean + mean / 2 — the half accounts for the ticket in progress. No open counter: ETA unknown (None).
"""

from __future__ import annotations

from edge.engine.model import State, Ticket, is_open_counter
from edge.engine.routing import queue_order


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
    """Position and ETA of one waiting ticket (orders only its own service's queue)."""
    if ticket.status != "waiting":
        return None
    return positions(state, ticket.service_id).get(ticket.ticket_id)
