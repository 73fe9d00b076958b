"""Read models: JSON views of tickets and counters, and the immutable snapshot readers use between commits."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from edge.engine import State, Ticket
from edge.engine.eta import positions
from edge.engine.model import CounterState, queue_key

RECENT_CALLS = 10  # "last N calls" a board shows


def mask_phone(phone: str | None) -> str | None:
    """`081234567890` -> `0812****890`: enough for staff to confirm, not to copy."""
    if not phone:
        return None
    shown = 7  # first four and last three digits
    if len(phone) <= shown:
        return "*" * len(phone)
    return f"{phone[:4]}{'*' * (len(phone) - shown)}{phone[-3:]}"


def mask_email(email: str | None) -> str | None:
    """`budi.santoso@mail.id` -> `b***@mail.id`."""
    if not email:
        return None
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def ticket_view(ticket: Ticket, position: tuple[int, int | None] | None = None) -> dict[str, Any]:
    """The API's JSON for a ticket (phone masked; position/ETA only while waiting)."""
    pos, eta = position if position else (None, None)
    return {
        "ticket_id": ticket.ticket_id,
        "ticket_number": ticket.ticket_number,
        "status": ticket.status,
        "service_id": ticket.service_id,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "lang": ticket.lang,
        "customer_ref": ticket.customer_ref,
        "phone": mask_phone(ticket.phone),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "called_at": _iso(ticket.called_at),
        "served_at": _iso(ticket.served_at),
        "completed_at": _iso(ticket.completed_at),
        "counter_id": ticket.counter_id,
        "target_counter": ticket.target_counter,
        "recall_count": ticket.recall_count,
        "returned": ticket.returned,
        "outcome": ticket.outcome,
        "transferred_from": ticket.transferred_from,
        "transfer_reason": ticket.transfer_reason,
        "appointment_at": _iso(ticket.appointment_at),
        "no_show_deadline": _iso(ticket.no_show_deadline),
        "position": pos,
        "eta_seconds": eta,
    }


def counter_view(state: State, counter: CounterState) -> dict[str, Any]:
    """The API's JSON for a counter, with its configuration and current ticket."""
    config = state.config.counter(counter.counter_id) if state.config else None
    current = state.tickets.get(counter.current_ticket) if counter.current_ticket else None
    return {
        "counter_id": counter.counter_id,
        "name": config.name if config else counter.counter_id,
        "area_id": config.area_id if config else None,
        "services": list(config.services) if config else [],
        "auto_call": config.auto_call if config else False,
        "presence": counter.presence,
        "current_ticket": ticket_view(current) if current else None,
        "updated_at": _iso(counter.updated_at),
    }


@dataclass(frozen=True)
class View:
    """A consistent, immutable picture of the queue at `seq` (shallow copies; tickets are frozen)."""

    state: State

    @classmethod
    def of(cls, state: State) -> View:
        """Copy the containers of a live state so the writer can go on mutating it."""
        return cls(
            replace(
                state,
                tickets=dict(state.tickets),
                active_ids=set(state.active_ids),
                counters=dict(state.counters),
                sequences=dict(state.sequences),
                priority_streak=dict(state.priority_streak),
                service_times={k: list(v) for k, v in state.service_times.items()},
                recent_calls={k: list(v) for k, v in state.recent_calls.items()},
                leases=dict(state.leases),
            )
        )

    @property
    def seq(self) -> int:
        """The last event included."""
        return self.state.seq

    @cached_property
    def positions(self) -> dict[str, tuple[int, int | None]]:
        """Position and ETA of every waiting ticket."""
        return positions(self.state)

    def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """One ticket's view, if it is in memory (active or today's)."""
        ticket = self.state.tickets.get(ticket_id)
        return ticket_view(ticket, self.positions.get(ticket_id)) if ticket else None

    def area_of(self, ticket: Ticket) -> set[str]:
        """The areas a ticket shows in: its service's and its counter's."""
        config = self.state.config
        if config is None:
            return set()
        areas = set()
        service = config.service(ticket.service_id)
        if service and service.area_id:
            areas.add(service.area_id)
        counter = config.counter(ticket.counter_id) if ticket.counter_id else None
        if counter and counter.area_id:
            areas.add(counter.area_id)
        return areas

    def tickets(
        self, *, status: str | None = None, service_id: str | None = None, area: str | None = None
    ) -> list[dict[str, Any]]:
        """Tickets in memory, filtered, oldest first."""
        found = [
            t
            for t in self.state.tickets.values()
            if (status is None or t.status == status)
            and (service_id is None or t.service_id == service_id)
            and (area is None or area in self.area_of(t))
        ]
        found.sort(key=lambda t: (t.business_date, *queue_key(t)))
        return [ticket_view(t, self.positions.get(t.ticket_id)) for t in found]

    def counters(self, area: str | None = None) -> list[dict[str, Any]]:
        """Every counter's view, optionally of one area."""
        config = self.state.config
        views = []
        for counter in self.state.counters.values():
            conf = config.counter(counter.counter_id) if config else None
            if area is None or (conf is not None and conf.area_id == area):
                views.append(counter_view(self.state, counter))
        return sorted(views, key=lambda v: str(v["counter_id"]))

    def snapshot(self, area: str | None = None, service_id: str | None = None) -> dict[str, Any]:
        """`GET /snapshot`: active tickets, counters and what is being called, at `seq`."""
        active = [
            t
            for t in self.tickets(area=area, service_id=service_id)
            if t["status"] in ("waiting", "called", "serving", "held")
        ]
        calls = [
            t
            for t in self.state.tickets.values()
            if t.called_at is not None
            and (area is None or area in self.area_of(t))
            and (service_id is None or t.service_id == service_id)
        ]
        calls.sort(key=lambda t: t.called_at or t.created_at, reverse=True)
        return {
            "seq": self.seq,
            "branch_id": self.state.branch_id,
            "config_version": self.state.config.version if self.state.config else 0,
            "timezone": self.state.config.timezone if self.state.config else None,
            "tickets": active,
            "counters": self.counters(area),
            "now_calling": [ticket_view(t) for t in calls if t.status == "called"],
            "recent_calls": [ticket_view(t) for t in calls[:RECENT_CALLS]],
        }
