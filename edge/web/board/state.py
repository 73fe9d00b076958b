"""What a board shows, computed from an immutable View: the current call, the recent calls, signage, branding."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edge.engine import Ticket
from edge.views import View
from edge.web.board.access import Scope
from sync.contract_config import BranchConfig

ON_BOARD = ("called", "serving", "done", "no_show")  # a cancelled or re-queued ticket leaves the board


def _last_called(ticket: Ticket) -> datetime:
    """When the ticket was last called or recalled (a recall brings it back to the top)."""
    if ticket.status == "called":
        return ticket.updated_at
    assert ticket.called_at is not None
    return ticket.called_at


def in_scope(config: BranchConfig, ticket: Ticket, scope: Scope) -> bool:
    """Whether a call belongs on a board of this area or service."""
    if scope.kind == "service":
        return ticket.service_id == scope.id
    counter = config.counter(ticket.counter_id) if ticket.counter_id else None
    service = config.service(ticket.service_id)
    return (counter is not None and counter.area_id == scope.id) or (
        service is not None and service.area_id == scope.id and (counter is None or counter.area_id is None)
    )


def scope_exists(config: BranchConfig | None, scope: Scope) -> bool:
    """Whether the area or service is configured."""
    if config is None:
        return False
    if scope.kind == "service":
        return config.service(scope.id) is not None
    return any(a.id == scope.id for a in config.areas)


def _call(config: BranchConfig, ticket: Ticket) -> dict[str, Any]:
    counter = config.counter(ticket.counter_id) if ticket.counter_id else None
    service = config.service(ticket.service_id)
    return {
        "seq_key": f"{ticket.ticket_id}:{ticket.recall_count}",
        "ticket_number": ticket.ticket_number,
        "counter_id": ticket.counter_id,
        "counter_name": counter.name if counter else ticket.counter_id,
        "service_id": ticket.service_id,
        "service_names": {"": service.name, **service.names} if service else {},
        "recall_count": ticket.recall_count,
        "called_at": _last_called(ticket).isoformat(),
    }


def board_state(view: View, scope: Scope) -> dict[str, Any]:
    """The board's whole state at `view.seq` (each message carries all of it: no gap can leave a board stale)."""
    config = view.state.config
    if config is None:
        return {"seq": view.seq, "now": None, "recent": [], "playlist": []}
    calls = [
        t
        for t in view.state.tickets.values()
        if t.called_at is not None and t.counter_id and t.status in ON_BOARD and in_scope(config, t, scope)
    ]
    calls.sort(key=_last_called, reverse=True)
    limit = config.display.recent_calls
    area = scope.id if scope.kind == "area" else (s.area_id if (s := config.service(scope.id)) else None)
    playlist = [
        {"kind": s.kind, "src": s.src, "seconds": s.seconds, "days": s.days, "start": s.start, "end": s.end}
        for s in config.display.playlist
        if not s.areas or (area is not None and area in s.areas)
    ]
    return {
        "seq": view.seq,
        "config_version": config.version,
        "timezone": config.timezone,
        "now": _call(config, calls[0]) if calls else None,
        "recent": [_call(config, t) for t in calls[1 : limit + 1]],
        "playlist": playlist,
    }


def scope_title(config: BranchConfig | None, scope: Scope) -> str:
    """The area's or service's display name."""
    if config is None:
        return scope.id
    if scope.kind == "service":
        service = config.service(scope.id)
        return service.name if service else scope.id
    return next((a.name for a in config.areas if a.id == scope.id), scope.id)
