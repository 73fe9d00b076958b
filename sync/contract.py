"""Event types and envelope of the branch event log: the contract every consumer (SSE, MQTT, relay, cloud) reads."""

from __future__ import annotations

import hashlib
import typing
from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

from sync.contract_config import BranchConfig

TicketStatus = Literal["waiting", "called", "serving", "done", "cancelled", "held", "no_show"]
Presence = Literal["available", "busy", "break", "closed"]
GENESIS_HASH = "0" * 64


class Event(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Envelope fields shared by every event; `seq`, `prev_hash` and `hash` are set by the store on append."""

    event_id: str
    occurred_at: datetime
    actor: str
    request_id: str | None = None
    ticket_id: str | None = None
    branch_id: str = ""
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""


class TicketCreated(Event, frozen=True, kw_only=True, tag="ticket.created"):
    """A ticket entered a service's queue."""

    service_id: str
    ticket_number: str
    seq_no: int
    business_date: str
    order: int
    priority: int = 0
    channel: str = "walk_in"
    phone: str | None = None
    email: str | None = None
    customer_ref: str | None = None
    lang: str | None = None
    appointment_at: datetime | None = None
    # Whether the customer asked to be notified (kiosk/API); None: not asked (events from before the field too —
    # the hash covers the stored bytes, so old bodies without it still verify).
    notify_opt_in: bool | None = None
    # The contact (phone, email, customer_ref) sealed with this ticket's own key (sync.crypto); the key lives outside
    # the chain and is erased after the retention period (crypto-shredding). None on events from before sealing.
    contact_sealed: str | None = None


class TicketCalled(Event, frozen=True, kw_only=True, tag="ticket.called"):
    """A counter called a ticket; `auto` marks auto-call, `specific` a call of a chosen ticket."""

    service_id: str
    counter_id: str
    no_show_deadline: datetime | None = None
    auto: bool = False
    specific: bool = False


class TicketRecalled(Event, frozen=True, kw_only=True, tag="ticket.recalled"):
    """The counter called its ticket again."""

    service_id: str
    counter_id: str
    recall_count: int
    no_show_deadline: datetime | None = None


class TicketServing(Event, frozen=True, kw_only=True, tag="ticket.serving"):
    """The customer arrived at the counter and service started."""

    service_id: str
    counter_id: str


class TicketDone(Event, frozen=True, kw_only=True, tag="ticket.done"):
    """Service finished; `service_seconds` runs from start to completion."""

    service_id: str
    counter_id: str
    outcome: str | None = None
    service_seconds: float = 0.0
    wait_seconds: float = 0.0


class TicketCancelled(Event, frozen=True, kw_only=True, tag="ticket.cancelled"):
    """The ticket was cancelled from `from_status`."""

    service_id: str
    from_status: TicketStatus
    counter_id: str | None = None
    reason: str | None = None


class TicketHeld(Event, frozen=True, kw_only=True, tag="ticket.held"):
    """The ticket was put on hold and is skipped by call-next."""

    service_id: str
    from_status: TicketStatus
    counter_id: str | None = None


class TicketUnheld(Event, frozen=True, kw_only=True, tag="ticket.unheld"):
    """The held ticket is waiting again at queue position `order`."""

    service_id: str
    order: int


class TicketTransferred(Event, frozen=True, kw_only=True, tag="ticket.transferred"):
    """The ticket moved to another service and/or one counter and waits there."""

    from_service: str
    to_service: str
    service_id: str
    order: int
    from_status: TicketStatus
    from_counter: str | None = None
    to_counter: str | None = None
    reason: str | None = None


class TicketNoShow(Event, frozen=True, kw_only=True, tag="ticket.no_show"):
    """The called customer did not come; `returned` means a `ticket.returned` follows."""

    service_id: str
    counter_id: str | None = None
    automatic: bool = False
    returned: bool = False


class TicketReturned(Event, frozen=True, kw_only=True, tag="ticket.returned"):
    """After a no-show the ticket waits again (return-to-queue policy)."""

    service_id: str
    order: int
    returns: int


class CounterPresence(Event, frozen=True, kw_only=True, tag="counter.presence"):
    """A counter's availability changed."""

    counter_id: str
    status: Presence
    previous: Presence


class ConfigApplied(Event, frozen=True, kw_only=True, tag="config.applied"):
    """A new branch configuration version took effect."""

    version: int
    config: BranchConfig
    source: str = "api"
    config_hash: str = ""  # sync.contract_config.config_hash(config); empty in events older than the field


class ConfigRejected(Event, frozen=True, kw_only=True, tag="config.rejected"):
    """A configuration version (from the cloud) was refused; the branch keeps running its current version."""

    version: int
    errors: list[str] = []
    source: str = "cloud"
    config_hash: str = ""  # the refused document's hash (empty when it did not parse or predates the field)


class NumbersLeased(Event, frozen=True, kw_only=True, tag="numbers.leased"):
    """A kiosk reserved numbers `first_seq..last_seq` of a service for the day, to issue while offline."""

    lease_id: str
    device_id: str
    service_id: str
    business_date: str
    first_seq: int
    last_seq: int


AnyEvent = (
    TicketCreated
    | TicketCalled
    | TicketRecalled
    | TicketServing
    | TicketDone
    | TicketCancelled
    | TicketHeld
    | TicketUnheld
    | TicketTransferred
    | TicketNoShow
    | TicketReturned
    | CounterPresence
    | ConfigApplied
    | ConfigRejected
    | NumbersLeased
)

EVENT_TYPES: tuple[str, ...] = tuple(str(t.__struct_config__.tag) for t in typing.get_args(AnyEvent))

event_encoder = msgspec.json.Encoder()
canonical_encoder = msgspec.json.Encoder(order="sorted")
event_decoder = msgspec.json.Decoder(AnyEvent)


def event_type(event: Event) -> str:
    """The stable `type` name of an event."""
    return str(event.__struct_config__.tag)


def canonical_bytes(event: Event) -> bytes:
    """The bytes the hash covers: sorted-key JSON of the event with an empty `hash`."""
    return canonical_encoder.encode(msgspec.structs.replace(event, hash=""))


def chain_hash(prev_hash: str, body: bytes) -> str:
    """SHA-256 over the previous hash and the canonical body."""
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()
