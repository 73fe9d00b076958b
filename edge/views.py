"""Read models: JSON views of tickets and counters, and the immutable snapshot readers use between commits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
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
    """A consistent, immutable picture of the queue at `seq` (shallow copies; tickets are frozen).

    `state` is materialised on first use by a reader: the writer hands over an immutable base map of tickets (shared
    by many views) plus the few tickets changed since, so making a View costs the writer nothing that grows with
    the queue (see `Snapshots`).
    """

    seq: int
    _parts: tuple[State, dict[str, Ticket], dict[str, Ticket]]  # (scalar copy, base tickets, changed tickets)
    at: datetime | None = None  # the writer's clock at the commit: positions are placed at that time

    @classmethod
    def of(cls, state: State) -> View:
        """A View of a live state, copying every ticket now (for one-off use; the writer uses `Snapshots`)."""
        return Snapshots().view(state)

    @cached_property
    def state(self) -> State:
        """The state at `seq`. Its ticket map is merged on first use and the derived indexes (active set, ordered
        queues) are built when a reader needs them, so reading the config, counters or seq costs nothing more."""
        scalars, base, changed = self._parts
        return _SnapshotState(scalars, base, changed)

    @cached_property
    def positions(self) -> dict[str, tuple[int, int | None]]:
        """Position and ETA of every waiting ticket, at the commit's time (appointment blending depends on it)."""
        return positions(self.state, self.at or datetime.now(UTC))

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


class _SnapshotState(State):
    """A View's state: the scalars copied at commit; `tickets` is the shared base map with the changed tickets laid
    over it, merged by the first reader that looks at tickets (a dict copy, off the writer)."""

    def __init__(self, scalars: State, base: dict[str, Ticket], changed: dict[str, Ticket]) -> None:
        self.__dict__.update(scalars.__dict__)
        self.__dict__.pop("tickets", None)
        self._base, self._changed = base, changed

    @property
    def tickets(self) -> dict[str, Ticket]:
        merged: dict[str, Ticket] | None = self.__dict__.get("_merged")
        if merged is None:
            merged = {**self._base, **self._changed} if self._changed else self._base
            self.__dict__["_merged"] = merged
        return merged

    @tickets.setter
    def tickets(self, value: dict[str, Ticket]) -> None:
        self.__dict__["_merged"] = value


class Snapshots:
    """Makes the writer's Views without copying every ticket at every commit.

    A base copy of the ticket map is taken once per `REBASE_AFTER` changed tickets (or when the writer replaced the
    map: day roll-over, reload); each View gets that shared base plus a copy of the tickets changed since. The
    writer's cost per commit is therefore bounded by `REBASE_AFTER`, not by the number of tickets in memory;
    the occasional rebase (one dict copy) is amortised over that many changes.
    """

    REBASE_AFTER = 512

    def __init__(self) -> None:
        self._source: dict[str, Ticket] | None = None
        self._base: dict[str, Ticket] = {}
        self._changed: set[str] = set()

    def view(self, state: State, changed: Iterable[str] = (), at: datetime | None = None) -> View:
        """A View of `state` at time `at`; `changed` are the ticket ids the last transaction touched."""
        if state.tickets is not self._source or len(self._changed) > self.REBASE_AFTER:
            self._source, self._base, self._changed = state.tickets, dict(state.tickets), set()
        else:
            self._changed.update(changed)
        tickets = state.tickets
        delta = {tid: tickets[tid] for tid in self._changed if tid in tickets}
        scalars = replace(
            state,
            tickets={},
            active_ids=set(),
            by_status={},
            queues={},
            open_dates=Counter(),
            active_numbers={},
            indexed=False,
            counters=dict(state.counters),
            sequences=dict(state.sequences),
            priority_streak=dict(state.priority_streak),
            service_times={k: list(v) for k, v in state.service_times.items()},
            recent_calls={k: list(v) for k, v in state.recent_calls.items()},
            leases=dict(state.leases),
        )
        return View(state.seq, (scalars, self._base, delta), at)
