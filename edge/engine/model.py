"""Engine state: tickets, counters and the small bookkeeping the routing rules need."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

from sync.contract import Presence, TicketStatus
from sync.contract_config import BranchConfig

ACTIVE_STATUSES: frozenset[str] = frozenset({"waiting", "called", "serving", "held"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"done", "cancelled", "no_show"})
SERVICE_TIME_WINDOW = 20  # recent service times kept per service for the ETA


class Ticket(Struct, frozen=True, kw_only=True):
    """One ticket as the engine sees it; replaced, never mutated."""

    ticket_id: str
    ticket_number: str
    service_id: str
    status: TicketStatus
    business_date: str
    order: int
    created_at: datetime
    updated_at: datetime
    priority: int = 0
    channel: str = "walk_in"
    phone: str | None = None
    email: str | None = None
    customer_ref: str | None = None
    lang: str | None = None
    appointment_at: datetime | None = None
    counter_id: str | None = None
    target_counter: str | None = None
    called_at: datetime | None = None
    served_at: datetime | None = None
    completed_at: datetime | None = None
    no_show_deadline: datetime | None = None
    recall_count: int = 0
    returned: bool = False
    returns: int = 0
    outcome: str | None = None
    transferred_from: str | None = None
    transfer_reason: str | None = None
    transfer_count: int = 0


class CounterState(Struct, frozen=True, kw_only=True):
    """A counter's live state: presence and the ticket it holds (called or serving)."""

    counter_id: str
    presence: Presence = "available"
    current_ticket: str | None = None
    updated_at: datetime | None = None


class RecentCall(Struct, frozen=True, array_like=True):
    """A call remembered for appointment blending: when, and whether it was an appointment."""

    at: datetime
    appointment: bool


class Lease(Struct, frozen=True, kw_only=True):
    """A block of one day's numbers reserved for a kiosk; `used` are those reconciled into the queue so far."""

    lease_id: str
    device_id: str
    service_id: str
    business_date: str
    first_seq: int
    last_seq: int
    granted_at: datetime
    used: tuple[int, ...] = ()


@dataclass
class State:
    """Everything decide needs; evolve updates it in place and returns it (single writer owns it)."""

    branch_id: str = ""
    config: BranchConfig | None = None
    seq: int = 0
    last_hash: str = ""
    business_date: str = ""
    order_seq: int = 0
    tickets: dict[str, Ticket] = field(default_factory=dict)
    active_ids: set[str] = field(default_factory=set)  # index of not-finished tickets (derived from `tickets`)
    counters: dict[str, CounterState] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    priority_streak: dict[str, int] = field(default_factory=dict)
    service_times: dict[str, list[float]] = field(default_factory=dict)
    recent_calls: dict[str, list[RecentCall]] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)  # today's kiosk number leases (offline buffer)

    def active(self, status: str | None = None) -> list[Ticket]:
        """Tickets that are not finished, optionally only those in one status."""
        wanted = ACTIVE_STATUSES if status is None else {status}
        return [t for tid in self.active_ids if (t := self.tickets[tid]).status in wanted]

    def numbering(self, service_id: str, day: str) -> tuple[int, list[tuple[int, int]]]:
        """A service's last ordinary number and its leased (first, last) ranges on `day` (a new day starts empty)."""
        if day != self.business_date:
            return 0, []
        leased = [(lease.first_seq, lease.last_seq) for lease in self.leases.values() if lease.service_id == service_id]
        return self.sequences.get(service_id, 0), leased

    def put(self, ticket: Ticket) -> None:
        """Store a ticket version and keep the active index in step."""
        self.tickets[ticket.ticket_id] = ticket
        if ticket.status in ACTIVE_STATUSES:
            self.active_ids.add(ticket.ticket_id)
        else:
            self.active_ids.discard(ticket.ticket_id)


class Bookkeeping(Struct, kw_only=True):
    """The persisted non-ticket part of State (everything but tickets and counters)."""

    branch_id: str
    config: BranchConfig | None
    seq: int
    last_hash: str
    business_date: str
    order_seq: int
    sequences: dict[str, int]
    priority_streak: dict[str, int]
    service_times: dict[str, list[float]]
    recent_calls: dict[str, list[RecentCall]]
    leases: dict[str, Lease] = {}


def bookkeeping_of(state: State) -> Bookkeeping:
    """Extract the persisted scalars of a state."""
    return Bookkeeping(
        branch_id=state.branch_id,
        config=state.config,
        seq=state.seq,
        last_hash=state.last_hash,
        business_date=state.business_date,
        order_seq=state.order_seq,
        sequences=state.sequences,
        priority_streak=state.priority_streak,
        service_times=state.service_times,
        recent_calls=state.recent_calls,
        leases=state.leases,
    )


def state_from(book: Bookkeeping, tickets: list[Ticket], counters: list[CounterState]) -> State:
    """Rebuild a State from persisted bookkeeping, tickets and counters."""
    return State(
        branch_id=book.branch_id,
        config=book.config,
        seq=book.seq,
        last_hash=book.last_hash,
        business_date=book.business_date,
        order_seq=book.order_seq,
        tickets={t.ticket_id: t for t in tickets},
        active_ids={t.ticket_id for t in tickets if t.status in ACTIVE_STATUSES},
        counters={c.counter_id: c for c in counters},
        sequences=dict(book.sequences),
        priority_streak=dict(book.priority_streak),
        service_times={k: list(v) for k, v in book.service_times.items()},
        recent_calls={k: list(v) for k, v in book.recent_calls.items()},
        leases=dict(book.leases),
    )


def queue_key(ticket: Ticket) -> tuple[int, datetime, str]:
    """FIFO key: queue order, then issue time, then number.

    Orders are unique but for a reconciled offline ticket, which takes the order of the first ticket issued after
    it (it goes before that ticket: same order, earlier issue time).
    """
    return (ticket.order, ticket.created_at, ticket.ticket_number)


def is_open_counter(counter: CounterState | None) -> bool:
    """A counter that may be given tickets (not on break, not closed)."""
    return counter is not None and counter.presence in ("available", "busy")


ticket_encoder = msgspec.json.Encoder()
ticket_decoder = msgspec.json.Decoder(Ticket)
counter_decoder = msgspec.json.Decoder(CounterState)
bookkeeping_decoder = msgspec.json.Decoder(Bookkeeping)

TicketView = dict[str, object]
PositionPolicy = Literal["original", "end"]
