"""Engine state: tickets, counters and the small bookkeeping the routing rules need."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
    updated_at: datetime | None = None  # last presence change or ticket event here (the idle sweep reads it)


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


QueueEntry = tuple[int, datetime, str, str]  # queue_key + ticket_id
PriorityEntry = tuple[int, int, datetime, str, str]  # -priority, queue_key, ticket_id


def queue_entry(ticket: Ticket) -> QueueEntry:
    """A ticket's place in FIFO order (queue_key, then the id so entries are unique)."""
    return (ticket.order, ticket.created_at, ticket.ticket_number, ticket.ticket_id)


def priority_entry(ticket: Ticket) -> PriorityEntry:
    """A priority ticket's place: higher class first, FIFO within the class."""
    return (-ticket.priority, ticket.order, ticket.created_at, ticket.ticket_number, ticket.ticket_id)


class WaitingQueue:
    """One service's waiting tickets, kept ordered as they change so routing and positions never scan the queue.

    `fifo` holds every waiting ticket by queue order, `regular` the priority-0 ones by queue order, `priority` the
    others by (-priority, queue order); `appointments` the waiting appointment tickets (few: they are booked).
    Inserting and removing is a binary search plus a list move: microseconds even at tens of thousands of tickets.
    """

    __slots__ = ("appointments", "fifo", "priority", "regular")

    def __init__(self) -> None:
        self.fifo: list[QueueEntry] = []
        self.regular: list[QueueEntry] = []
        self.priority: list[PriorityEntry] = []
        self.appointments: dict[str, Ticket] = {}

    def __len__(self) -> int:
        return len(self.fifo)

    def add(self, ticket: Ticket) -> None:
        """Insert a waiting ticket in order."""
        insort(self.fifo, queue_entry(ticket))
        if ticket.priority > 0:
            insort(self.priority, priority_entry(ticket))
        else:
            insort(self.regular, queue_entry(ticket))
        if ticket.channel == "appointment":
            self.appointments[ticket.ticket_id] = ticket

    def remove(self, ticket: Ticket) -> None:
        """Take out a ticket that was added with exactly these fields."""
        _discard(self.fifo, queue_entry(ticket))
        if ticket.priority > 0:
            _discard(self.priority, priority_entry(ticket))
        else:
            _discard(self.regular, queue_entry(ticket))
        self.appointments.pop(ticket.ticket_id, None)


def _discard(entries: list[Any], entry: Any) -> None:
    index = bisect_left(entries, entry)
    if index < len(entries) and entries[index] == entry:
        del entries[index]


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
    # Derived indexes, kept in step by `put` (never persisted, rebuilt by `state_from`/`reindex`):
    by_status: dict[str, set[str]] = field(default_factory=dict, compare=False, repr=False)
    queues: dict[str, WaitingQueue] = field(default_factory=dict, compare=False, repr=False)
    open_dates: Counter[str] = field(default_factory=Counter, compare=False, repr=False)  # waiting/held per day
    active_numbers: dict[str, set[str]] = field(default_factory=dict, compare=False, repr=False)  # number -> ids
    indexed: bool = field(default=True, compare=False, repr=False)  # False: indexes are built on first use

    def active(self, status: str | None = None) -> list[Ticket]:
        """Tickets that are not finished, optionally only those in one status (from the status index)."""
        if not self.indexed:
            self.reindex()
        if status is None:
            return [self.tickets[tid] for tid in self.active_ids]
        return [self.tickets[tid] for tid in self.by_status.get(status, ())]

    def count(self, status: str) -> int:
        """How many tickets are in one (active) status."""
        if not self.indexed:
            self.reindex()
        return len(self.by_status.get(status, ()))

    def queue(self, service_id: str) -> WaitingQueue | None:
        """The ordered waiting queue of a service (None when nobody waits for it)."""
        if not self.indexed:
            self.reindex()
        queue = self.queues.get(service_id)
        return queue if queue else None

    def number_in_use(self, ticket_number: str, day: str, day_close_cancels: bool = False) -> bool:
        """Whether an active ticket holds this number on business day `day`.

        A ticket of an earlier day that is still waiting or held does not count when the day close cancels those
        (`day_close: cancel`): the first tick of the day ends it. Called or serving ones, and any under `keep`, do.
        """
        if not self.indexed:
            self.reindex()
        for tid in self.active_numbers.get(ticket_number, ()):
            ticket = self.tickets[tid]
            if not (day_close_cancels and ticket.business_date < day and ticket.status in ("waiting", "held")):
                return True
        return False

    def has_open_before(self, day: str) -> bool:
        """Whether any ticket still waiting or held belongs to a business date before `day`."""
        if not self.indexed:
            self.reindex()
        return any(d < day for d, n in self.open_dates.items() if n)

    def reindex(self) -> None:
        """Rebuild the derived indexes from `tickets`.

        Built aside and then swapped in, so a reader thread that finds `indexed` true sees complete indexes (a
        read-only snapshot may be indexed by two readers at once; both build the same thing).
        """
        built = State(tickets=self.tickets)
        for ticket in self.tickets.values():
            built._index(ticket)
        self.active_ids, self.by_status = built.active_ids, built.by_status
        self.queues, self.open_dates = built.queues, built.open_dates
        self.active_numbers = built.active_numbers
        self.indexed = True

    def numbering(self, service_id: str, day: str) -> tuple[int, list[tuple[int, int]]]:
        """A service's last ordinary number and its leased (first, last) ranges on `day` (a new day starts empty)."""
        if day != self.business_date:
            return 0, []
        leased = [(lease.first_seq, lease.last_seq) for lease in self.leases.values() if lease.service_id == service_id]
        return self.sequences.get(service_id, 0), leased

    def put(self, ticket: Ticket) -> None:
        """Store a ticket version and keep the indexes in step."""
        old = self.tickets.get(ticket.ticket_id)
        if old is not None:
            self._unindex(old)
        self.tickets[ticket.ticket_id] = ticket
        self._index(ticket)

    def _index(self, ticket: Ticket) -> None:
        if ticket.status not in ACTIVE_STATUSES:
            return
        self.active_ids.add(ticket.ticket_id)
        self.active_numbers.setdefault(ticket.ticket_number, set()).add(ticket.ticket_id)
        self.by_status.setdefault(ticket.status, set()).add(ticket.ticket_id)
        if ticket.status == "waiting":
            self.queues.setdefault(ticket.service_id, WaitingQueue()).add(ticket)
        if ticket.status in ("waiting", "held"):
            self.open_dates[ticket.business_date] += 1

    def _unindex(self, ticket: Ticket) -> None:
        if ticket.status not in ACTIVE_STATUSES:
            return
        self.active_ids.discard(ticket.ticket_id)
        holders = self.active_numbers.get(ticket.ticket_number)
        if holders is not None:
            holders.discard(ticket.ticket_id)
            if not holders:
                del self.active_numbers[ticket.ticket_number]
        self.by_status.get(ticket.status, set()).discard(ticket.ticket_id)
        if ticket.status == "waiting" and (queue := self.queues.get(ticket.service_id)) is not None:
            queue.remove(ticket)
        if ticket.status in ("waiting", "held"):
            self.open_dates[ticket.business_date] -= 1
            if self.open_dates[ticket.business_date] <= 0:
                del self.open_dates[ticket.business_date]


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
    state = State(
        branch_id=book.branch_id,
        config=book.config,
        seq=book.seq,
        last_hash=book.last_hash,
        business_date=book.business_date,
        order_seq=book.order_seq,
        tickets={t.ticket_id: t for t in tickets},
        counters={c.counter_id: c for c in counters},
        sequences=dict(book.sequences),
        priority_streak=dict(book.priority_streak),
        service_times={k: list(v) for k, v in book.service_times.items()},
        recent_calls={k: list(v) for k, v in book.recent_calls.items()},
        leases=dict(book.leases),
    )
    state.reindex()
    return state


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
