"""KPI facts: a ticket's figures from its timestamps, and the fold of its events into them (see `sync.kpi`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from sync.contract import (
    Event,
    TicketCalled,
    TicketCreated,
    TicketDone,
    TicketRecalled,
    TicketReturned,
    TicketServing,
    TicketTransferred,
    event_type,
)

DEFAULT_TIMEZONE: Final = "Asia/Jakarta"
OPEN_STATUSES: Final = frozenset({"waiting", "called", "serving", "held"})


@cache
def zone(name: str | None) -> ZoneInfo:
    """The time zone for a branch's tz name; an unknown or empty name falls back to Asia/Jakarta, never raises."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def zone_name(name: str | None) -> str:
    """The tz name actually used for `name` (the fallback's when it is unknown): what the CSV's timezone column says."""
    return zone(name).key


def local_date_hour(instant: datetime, tz: str | None) -> tuple[str, int]:
    """The branch-local business date (ISO) and hour (0-23) of a UTC instant."""
    local = instant.astimezone(zone(tz))
    return local.date().isoformat(), local.hour


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in seconds, or None when either is missing or the result is negative (out-of-order data)."""
    if start is None or end is None:
        return None
    delta = (end - start).total_seconds()
    return delta if delta >= 0 else None


class TicketFact(msgspec.Struct, frozen=True, kw_only=True):
    """One ticket's figures, derived from its timestamps only: what the projection stores and the CSV prints."""

    ticket_id: str
    ticket_number: str = ""
    branch_id: str = ""
    service_id: str = ""
    counter_id: str | None = None
    priority: int = 0
    channel: str = "walk_in"
    status: str = "waiting"
    created_at: datetime | None = None
    called_at: datetime | None = None  # the FIRST call: later recalls/returns/transfers do not move it
    served_at: datetime | None = None
    completed_at: datetime | None = None
    wait_seconds: float | None = None
    service_seconds: float | None = None
    outcome: str = "waiting"
    transferred: bool = False
    returned: bool = False
    timezone: str = DEFAULT_TIMEZONE
    business_date: str | None = None  # branch-local date of creation (or of the first known timestamp)
    hour: int | None = None
    sla_minutes: int | None = None
    sla_met: bool | None = None
    abandoned: bool = False  # cancelled before ever being called
    closed_date: str | None = None  # branch-local date and hour the ticket was completed (throughput)
    closed_hour: int | None = None
    served_by: str | None = None  # who completed it (the desk's "served today"); never exported


def ticket_fact(
    *,
    ticket_id: str,
    status: str,
    created_at: datetime | None,
    called_at: datetime | None = None,
    served_at: datetime | None = None,
    completed_at: datetime | None = None,
    ticket_number: str = "",
    branch_id: str = "",
    service_id: str = "",
    counter_id: str | None = None,
    priority: int = 0,
    channel: str = "walk_in",
    transferred: bool = False,
    returned: bool = False,
    sla_minutes: int | None = None,
    tz: str | None = DEFAULT_TIMEZONE,
    served_by: str | None = None,
) -> TicketFact:
    """Build a ticket's fact from its timestamps; whatever is missing is simply not measured (never an exception)."""
    wait = seconds_between(created_at, called_at)
    service = seconds_between(served_at, completed_at) if status == "done" else None
    anchor = created_at or called_at or served_at or completed_at
    day, hour = local_date_hour(anchor, tz) if anchor else (None, None)
    closed_day, closed_hour = local_date_hour(completed_at, tz) if completed_at and status == "done" else (None, None)
    sla_met = wait <= sla_minutes * 60 if wait is not None and sla_minutes else None
    return TicketFact(
        ticket_id=ticket_id,
        ticket_number=ticket_number,
        branch_id=branch_id,
        service_id=service_id,
        counter_id=counter_id,
        priority=priority,
        channel=channel,
        status=status,
        created_at=created_at,
        called_at=called_at,
        served_at=served_at,
        completed_at=completed_at,
        wait_seconds=wait,
        service_seconds=service,
        outcome=status,
        transferred=transferred,
        returned=returned,
        timezone=zone_name(tz),
        business_date=day,
        hour=hour,
        sla_minutes=sla_minutes,
        sla_met=sla_met,
        abandoned=status == "cancelled" and called_at is None,
        closed_date=closed_day,
        closed_hour=closed_hour,
        served_by=served_by if status == "done" else None,
    )


class FactSource(msgspec.Struct, frozen=True, kw_only=True):
    """What a ticket's events say about it, folded in any order: the input of `ticket_fact` (no contact data)."""

    ticket_id: str
    ticket_number: str = ""
    branch_id: str = ""
    service_id: str = ""
    counter_id: str | None = None
    priority: int = 0
    channel: str = "walk_in"
    status: str = "waiting"
    status_seq: int = 0  # seq of the event that set `status`: an older event replicated late never overrides it
    service_seq: int = 0  # likewise for `service_id` (the service named by the newest event)
    counter_seq: int = 0  # likewise for `counter_id` (the counter of the newest call/serve/done/no-show)
    created_at: datetime | None = None
    called_at: datetime | None = None
    served_at: datetime | None = None
    completed_at: datetime | None = None
    transferred: bool = False
    returned: bool = False
    sla_minutes: int | None = None  # of the service the ticket queued for (where its wait is measured)
    served_by: str | None = None  # the actor of the (latest) completion


_STATUS_OF_EVENT: Final[Mapping[str, str]] = {
    "ticket.created": "waiting",
    "ticket.called": "called",
    "ticket.serving": "serving",
    "ticket.done": "done",
    "ticket.cancelled": "cancelled",
    "ticket.held": "held",
    "ticket.unheld": "waiting",
    "ticket.transferred": "waiting",
    "ticket.no_show": "no_show",
    "ticket.returned": "waiting",
}


def _earliest(a: datetime | None, b: datetime) -> datetime:
    """The earlier of a known and a possibly missing instant."""
    return b if a is None or b < a else a


def _latest(a: datetime | None, b: datetime) -> datetime:
    """The later of a known and a possibly missing instant."""
    return b if a is None or b > a else a


def fold_event(
    source: FactSource | None, event: Event, sla_minutes_of: Callable[[str], int | None]
) -> FactSource | None:
    """A ticket's fact source after one of its events (None for events about no ticket); total over any order.

    The first call stays the first (recalls, returns and transfers never move it); serving and completion keep their
    latest instant; the status follows the event with the highest seq. `sla_minutes_of(service_id)` reads the
    branch configuration in force, so the SLA is the one of the service the ticket queued for.
    """
    if event.ticket_id is None:
        return None
    kind = event_type(event)
    if kind not in _STATUS_OF_EVENT and kind != "ticket.recalled":
        return source
    src = source or FactSource(ticket_id=event.ticket_id, branch_id=event.branch_id)
    changes: dict[str, object] = {}
    at = event.occurred_at
    match event:
        case TicketCreated():
            changes.update(
                ticket_number=event.ticket_number,
                priority=event.priority,
                channel=event.channel,
                created_at=at,
                sla_minutes=sla_minutes_of(event.service_id),
            )
        case TicketCalled() | TicketRecalled():
            changes.update(called_at=_earliest(src.called_at, at))
        case TicketServing():
            changes.update(served_at=_latest(src.served_at, at))
        case TicketDone():
            if src.completed_at is None or at >= src.completed_at:
                changes.update(completed_at=at, served_by=event.actor)
        case TicketTransferred():
            changes["transferred"] = True
        case TicketReturned():
            changes["returned"] = True
        case _:
            pass
    counter_id = getattr(event, "counter_id", None)
    if counter_id and event.seq >= src.counter_seq:
        changes.update(counter_id=counter_id, counter_seq=event.seq)
    if event.seq >= src.service_seq:  # every ticket event names the ticket's service at that moment
        changes.update(service_id=getattr(event, "service_id", src.service_id), service_seq=event.seq)
    if kind in _STATUS_OF_EVENT and event.seq >= src.status_seq:
        changes.update(status=_STATUS_OF_EVENT[kind], status_seq=event.seq)
    return msgspec.structs.replace(src, **changes)


def fact_of(source: FactSource, tz: str | None, branch_id: str | None = None) -> TicketFact:
    """The fact of a folded source in the branch's time zone (`branch_id` where the source does not carry it: the
    hub knows the branch from the subject, not the fold)."""
    return ticket_fact(
        ticket_id=source.ticket_id,
        status=source.status,
        created_at=source.created_at,
        called_at=source.called_at,
        served_at=source.served_at,
        completed_at=source.completed_at,
        ticket_number=source.ticket_number,
        branch_id=source.branch_id if branch_id is None else branch_id,
        service_id=source.service_id,
        counter_id=source.counter_id,
        priority=source.priority,
        channel=source.channel,
        transferred=source.transferred,
        returned=source.returned,
        sla_minutes=source.sla_minutes,
        tz=tz,
        served_by=source.served_by,
    )
