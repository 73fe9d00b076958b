"""Supervisor from HQ (US-AGENT-008), read-only: a branch's floor as the hub's replica of its log shows it — each
counter's presence and the ticket it is calling or serving, each service's waiting line and its oldest wait — with the
branch's liveness, so HQ sees at once whether the picture is current. Pure reads of the projection the consumer keeps
(`tickets`, `ticket_links`) and the replicated `counter.presence` events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.admin.config_edit import running_document
from cloud.liveness import Liveness, liveness_of, missed_beats_setting

__all__ = ["Floor", "floor", "liveness_of", "missed_beats_setting"]
from cloud.store import events, ticket_links, tickets

LIVE = ("waiting", "called", "serving", "held")
SHOWN_WAITING = 12  # ticket numbers listed per service; the count covers all
SHOWN_TICKETS = 60  # live tickets listed for HQ's transfer/cancel, in queue order; the lines' counts cover all


@dataclass
class CounterView:
    """One counter: its presence and its current ticket."""

    counter_id: str
    name: str
    presence: str = "closed"
    ticket: str | None = None
    ticket_status: str | None = None


@dataclass
class ServiceView:
    """One service's line: how many wait, the first numbers, the oldest wait in minutes."""

    service_id: str
    name: str
    waiting: int = 0
    held: int = 0
    numbers: list[str] = field(default_factory=list)
    oldest_minutes: int | None = None


@dataclass(frozen=True)
class TicketView:
    """One live ticket HQ may transfer or cancel, with its service's and counter's names for people."""

    ticket_id: str
    number: str
    service_id: str
    status: str
    counter_id: str | None
    service_name: str = ""
    counter_name: str = ""


@dataclass
class Floor:
    """The branch's floor at `generated_at`."""

    liveness: Liveness
    counters: list[CounterView]
    services: list[ServiceView]
    generated_at: datetime
    tickets: list[TicketView] = field(default_factory=list)
    branch_name: str = ""
    timezone: str = "Asia/Jakarta"

    def local(self, at: datetime | str | None) -> str:
        """A moment in the branch's zone (stored UTC), `YYYY-MM-DD HH:MM:SS`; '' for none."""
        if not at:
            return ""
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("Asia/Jakarta")
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def floor(conn: Connection, tenant: str, branch_id: str, lang: str, now: datetime | None = None) -> Floor:
    """Read the floor of one branch (the caller checked the branch is in its scope)."""
    now = now or datetime.now(UTC)
    config = running_document(conn, tenant, branch_id)
    counters = {c.id: CounterView(c.id, c.name) for c in (config.counters if config else []) if c.active}
    services = {
        s.id: ServiceView(s.id, s.names.get(lang, s.name)) for s in (config.services if config else []) if s.active
    }
    presence = conn.execute(
        sa.select(events.c.body)
        .where(events.c.tenant_id == tenant, events.c.branch_id == branch_id, events.c.type == "counter.presence")
        .order_by(events.c.seq)
    ).scalars()
    for body in presence:
        event = json.loads(body)
        if event.get("counter_id") in counters:
            counters[event["counter_id"]].presence = str(event.get("status", "closed"))
    rows = conn.execute(
        sa.select(
            tickets.c.ticket_id,
            tickets.c.ticket_number,
            tickets.c.service_id,
            tickets.c.status,
            tickets.c.updated_at,
            ticket_links.c.counter_id,
            ticket_links.c.queue_order,
        )
        .select_from(
            tickets.outerjoin(
                ticket_links,
                sa.and_(
                    ticket_links.c.tenant_id == tickets.c.tenant_id,
                    ticket_links.c.branch_id == tickets.c.branch_id,
                    ticket_links.c.ticket_id == tickets.c.ticket_id,
                ),
            )
        )
        .where(tickets.c.tenant_id == tenant, tickets.c.branch_id == branch_id, tickets.c.status.in_(LIVE))
        .order_by(ticket_links.c.queue_order)
    ).all()
    shown: list[TicketView] = []
    for ticket_id, number, service_id, status, updated_at, counter_id, _order in rows:
        line = services.setdefault(service_id, ServiceView(service_id, service_id))
        if len(shown) < SHOWN_TICKETS:
            at = counters.get(counter_id) if counter_id else None
            shown.append(TicketView(ticket_id, number, service_id, status, counter_id, line.name,
                                    at.name if at else (counter_id or "")))  # fmt: skip
        if status == "waiting":
            line.waiting += 1
            if len(line.numbers) < SHOWN_WAITING:
                line.numbers.append(number)
            minutes = int((now - datetime.fromisoformat(updated_at)).total_seconds() // 60)
            line.oldest_minutes = max(line.oldest_minutes or 0, minutes)
        elif status == "held":
            line.held += 1
        elif counter_id in counters:
            counters[counter_id].ticket, counters[counter_id].ticket_status = number, status
    live = liveness_of(conn, [(tenant, branch_id)], now, missed_beats_setting())[(tenant, branch_id)]
    name, zone = (config.name, config.timezone) if config else (branch_id, "Asia/Jakarta")
    return Floor(live, list(counters.values()), list(services.values()), now, shown, name, zone)
