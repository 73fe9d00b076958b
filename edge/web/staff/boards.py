"""What the staff pages show, computed from an immutable View: counter desk, waiting lists, supervisor overview."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.engine import Ticket
from edge.engine.model import queue_key
from edge.engine.routing import counter_open
from edge.views import View
from sync.contract_config import Counter, Service

SLA_WARN_RATIO = 0.75  # a waiting ticket turns amber at 75 % of its service's SLA target


@dataclass(frozen=True)
class Row:
    """A ticket as a list row: number, service, position, wait, SLA badge, ETA."""

    ticket: Ticket
    service_name: str
    position: int | None
    wait_seconds: int
    sla: str  # ok | warn | breach
    eta_seconds: int | None


@dataclass(frozen=True)
class Desk:
    """One counter's screen: the counter, its current ticket with the actions it allows, its waiting list."""

    counter: Counter
    presence: str
    open: bool
    current: Ticket | None
    current_service: Service | None
    actions: tuple[str, ...]
    waiting: list[Row]
    held: list[Row]
    services: list[Service]
    counts: dict[str, int]
    transfer_services: list[Service]
    transfer_counters: list[Counter]


@dataclass(frozen=True)
class CounterLine:
    """A supervisor's line per counter."""

    counter: Counter
    presence: str
    current: Ticket | None
    busy_seconds: int | None
    staff: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceLine:
    """A supervisor's line per service: queue length, longest wait against the SLA, open counters."""

    service: Service
    waiting: int
    held: int
    longest_wait: int
    sla: str
    open_counters: int


def zone(view: View) -> ZoneInfo:
    """The branch's timezone (Asia/Jakarta when unset or unknown)."""
    name = view.state.config.timezone if view.state.config else "Asia/Jakarta"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Jakarta")


def service_name(service: Service | None, lang: str, fallback: str = "") -> str:
    """The service's name in the page language."""
    if service is None:
        return fallback
    return service.names.get(lang) or service.name


def sla_state(service: Service | None, wait_seconds: float) -> str:
    """ok, warn (near the target) or breach."""
    target = (service.sla_minutes if service else 15) * 60
    if wait_seconds >= target:
        return "breach"
    return "warn" if wait_seconds >= target * SLA_WARN_RATIO else "ok"


def _row(view: View, ticket: Ticket, now: datetime, lang: str) -> Row:
    config = view.state.config
    service = config.service(ticket.service_id) if config else None
    position, eta = view.positions.get(ticket.ticket_id, (None, None))
    wait = max(0, int((now - ticket.created_at).total_seconds()))
    return Row(ticket, service_name(service, lang, ticket.service_id), position, wait, sla_state(service, wait), eta)


def ticket_actions(ticket: Ticket | None, service: Service | None, is_open: bool) -> tuple[str, ...]:
    """Exactly the actions the engine accepts for the counter's current ticket (or call-next when free)."""
    if ticket is None:
        return ("call_next",) if is_open else ()
    if ticket.status == "called":
        return ("start", "recall", "no_show", "hold", "transfer", "cancel")
    if ticket.status == "serving":
        cancel = ("cancel",) if service is not None and service.allow_cancel_serving else ()
        return ("complete", "hold", "transfer", *cancel)
    return ()


def desk(view: View, counter_id: str, now: datetime, lang: str, service_filter: str | None = None) -> Desk | None:
    """The counter screen's content, or None for an unknown counter."""
    state = view.state
    config = state.config
    counter = config.counter(counter_id) if config else None
    if config is None or counter is None:
        return None
    live = state.counters.get(counter_id)
    current = state.tickets.get(live.current_ticket) if live and live.current_ticket else None
    current_service = config.service(current.service_id) if current else None
    is_open = counter_open(state, counter_id)
    services = [s for s in config.services if s.id in counter.services]
    wanted = {service_filter} if service_filter in counter.services else set(counter.services)
    mine = [
        t
        for t in state.active()
        if t.service_id in counter.services
        and t.target_counter in (None, counter_id)
        and t.status in ("waiting", "held")
    ]
    mine.sort(key=lambda t: view.positions.get(t.ticket_id, (10**9, None))[0] if t.status == "waiting" else t.order)
    counts = {s.id: sum(1 for t in mine if t.service_id == s.id and t.status == "waiting") for s in services}
    rows = [_row(view, t, now, lang) for t in mine if t.service_id in wanted]
    return Desk(
        counter=counter,
        presence=live.presence if live else "closed",
        open=is_open,
        current=current,
        current_service=current_service,
        actions=ticket_actions(current, current_service, is_open),
        waiting=[r for r in rows if r.ticket.status == "waiting"],
        held=[r for r in rows if r.ticket.status == "held"],
        services=services,
        counts=counts,
        transfer_services=[s for s in config.services if s.active],
        transfer_counters=[c for c in config.counters if c.active and c.id != counter_id],
    )


def counter_lines(view: View, now: datetime, staff_by_counter: dict[str, list[str]]) -> list[CounterLine]:
    """Every counter with its presence, current ticket and how long it has been on it."""
    config = view.state.config
    if config is None:
        return []
    lines = []
    for counter in config.counters:
        live = view.state.counters.get(counter.id)
        current = view.state.tickets.get(live.current_ticket) if live and live.current_ticket else None
        since = (current.served_at or current.called_at) if current else None
        busy = int((now - since).total_seconds()) if since else None
        presence = live.presence if live else "closed"
        lines.append(CounterLine(counter, presence, current, busy, staff_by_counter.get(counter.id, [])))
    return lines


def service_lines(view: View, now: datetime) -> list[ServiceLine]:
    """Queue length and longest wait per service."""
    config = view.state.config
    if config is None:
        return []
    lines = []
    for service in config.services:
        waiting = [t for t in view.state.active("waiting") if t.service_id == service.id]
        held = sum(1 for t in view.state.active("held") if t.service_id == service.id)
        longest = max((int((now - t.created_at).total_seconds()) for t in waiting), default=0)
        open_counters = sum(1 for c in config.counters if service.id in c.services and counter_open(view.state, c.id))
        lines.append(ServiceLine(service, len(waiting), held, longest, sla_state(service, longest), open_counters))
    return lines


def active_rows(view: View, now: datetime, lang: str) -> list[Row]:
    """Every waiting, held, called or serving ticket, in queue order (for supervisor interventions)."""
    tickets = sorted(view.state.active(), key=lambda t: (t.business_date, *queue_key(t)))
    return [_row(view, t, now, lang) for t in tickets]
