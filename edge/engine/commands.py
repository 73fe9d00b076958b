"""Commands: the imperative requests decide() turns into events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

from sync.contract import Presence
from sync.contract_config import BranchConfig


class Command(Struct, frozen=True, kw_only=True):
    """Who asks, and the idempotency key they gave."""

    actor: str = "system"
    request_id: str | None = None


class Enqueue(Command, frozen=True, kw_only=True):
    """Create a ticket in a service's queue."""

    service_id: str
    priority: int | None = None
    channel: str = "walk_in"
    phone: str | None = None
    email: str | None = None
    customer_ref: str | None = None
    lang: str | None = None
    appointment_at: datetime | None = None
    notify_opt_in: bool | None = None  # the customer asked to be notified (None: not asked)


class CallNext(Command, frozen=True, kw_only=True):
    """Call the next eligible ticket to a counter."""

    counter_id: str


class CallTicket(Command, frozen=True, kw_only=True):
    """Call one chosen waiting ticket to a counter."""

    ticket_id: str
    counter_id: str


class Recall(Command, frozen=True, kw_only=True):
    """Announce a called ticket again."""

    ticket_id: str
    counter_id: str | None = None


class Start(Command, frozen=True, kw_only=True):
    """Begin serving a called ticket (only at the calling counter)."""

    ticket_id: str
    counter_id: str | None = None


class Complete(Command, frozen=True, kw_only=True):
    """Finish serving, with an optional outcome code."""

    ticket_id: str
    counter_id: str | None = None
    outcome: str | None = None


class Cancel(Command, frozen=True, kw_only=True):
    """Cancel a waiting or held ticket (a serving one only if the service allows)."""

    ticket_id: str
    counter_id: str | None = None
    reason: str | None = None


class Hold(Command, frozen=True, kw_only=True):
    """Put a ticket aside so call-next skips it."""

    ticket_id: str
    counter_id: str | None = None


class Unhold(Command, frozen=True, kw_only=True):
    """Return a held ticket to the queue, at the position the service's policy says."""

    ticket_id: str
    counter_id: str | None = None


class Transfer(Command, frozen=True, kw_only=True):
    """Move a ticket to another service and/or to one counter."""

    ticket_id: str
    to_service_id: str | None = None
    to_counter_id: str | None = None
    counter_id: str | None = None
    reason: str | None = None


class NoShow(Command, frozen=True, kw_only=True):
    """Mark a called ticket as not shown (or return it to the queue per policy)."""

    ticket_id: str
    counter_id: str | None = None


class SetPresence(Command, frozen=True, kw_only=True):
    """Set a counter's availability."""

    counter_id: str
    status: Presence


class ApplyConfig(Command, frozen=True, kw_only=True):
    """Replace the branch configuration; refused if `base_version` is not the current one."""

    config: BranchConfig
    base_version: int | None
    source: str = "api"
    version: int | None = None  # explicit target version (cloud-distributed); default base + 1


class RejectConfig(Command, frozen=True, kw_only=True):
    """Record that a distributed configuration version was refused (it never took effect)."""

    version: int
    errors: list[str]
    source: str = "cloud"
    config_hash: str = ""  # the refused document's (sync.contract_config.config_hash)


class Tick(Command, frozen=True, kw_only=True):
    """Time passed: fire due auto no-shows, then at most one auto-call."""

    kind: Literal["tick"] = "tick"


class LeaseNumbers(Command, frozen=True, kw_only=True):
    """Reserve a block of today's numbers of a service for a kiosk's offline buffer."""

    device_id: str
    service_id: str
    count: int


class EnqueueLeased(Command, frozen=True, kw_only=True):
    """Reconcile a ticket a kiosk issued offline from its lease (request_id = the kiosk's temporary id)."""

    lease_id: str
    seq_no: int
    issued_at: datetime
    device_id: str
    channel: str = "kiosk"
    phone: str | None = None
    customer_ref: str | None = None
    lang: str | None = None
    notify_opt_in: bool | None = None
