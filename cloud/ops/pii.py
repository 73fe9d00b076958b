"""Sealed contacts at the hub (crypto-shredding, issue 16; the appliance side is edge/pii.py).

A `ticket.created` arrives with its contact sealed (`contact_sealed`, sync.crypto) and the ticket's key in the
message's `Qms-Contact-Key` header, outside the event's hashed body. The hub stores that key only beside an event
that waits in `parked_events` for its predecessor (deleted when it is applied): while the
consumer applies a batch, the keys are readable here (`offered_keys`), the notification trigger opens the contact
once and hands it to `cloud.notify.contacts` (the one module that keeps contacts, purged after the tenant's
retention). The `events` table keeps only the sealed copy, so when the contact row is purged and the stream's 30-day
buffer has dropped the message (header and all), the hub can no longer recover the contact. Events from before
sealing (clear fields) are read as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sync import crypto
from sync.contract import TicketCreated

_offered: ContextVar[Mapping[tuple[str, str, int], bytes]] = ContextVar(
    "qms_contact_keys", default=MappingProxyType({})
)


@dataclass(frozen=True)
class OpenedContact:
    """A ticket's contact as the branch gave it (None fields: not given, or no longer recoverable)."""

    phone: str | None
    email: str | None
    customer_ref: str | None


def key_from_headers(headers: Mapping[str, str] | None) -> str:
    """The contact key header of a NATS message ("" when absent)."""
    return (headers or {}).get(crypto.CONTACT_KEY_HEADER, "")


@contextmanager
def offered_keys(keys: Mapping[tuple[str, str, int], str]) -> Iterator[None]:
    """Make the batch's `(tenant, branch, seq) -> key text` readable by `contact_of` inside the block (malformed
    keys are dropped: the header is input from the wire)."""
    decoded = {where: key for where, text in keys.items() if (key := crypto.decode_key(text)) is not None}
    token = _offered.set(MappingProxyType(decoded))
    try:
        yield
    finally:
        _offered.reset(token)


def offered_text(tenant: str, branch_id: str, seq: int) -> str | None:
    """The key offered for an event of this batch as header text (kept beside a parked copy), None when none."""
    key = _offered.get().get((tenant, branch_id, seq))
    return crypto.encode_key(key) if key is not None else None


def offer_more(keys: Mapping[tuple[str, str, int], str]) -> None:
    """Add keys to the current batch's offer (those kept beside parked events, now being applied); only inside an
    `offered_keys` block, whose exit withdraws them too."""
    decoded = {where: key for where, text in keys.items() if (key := crypto.decode_key(text)) is not None}
    if decoded:
        _offered.set(MappingProxyType({**_offered.get(), **decoded}))


def contact_of(tenant: str, branch_id: str, event: Any) -> OpenedContact:
    """The contact of a ticket.created: its clear fields (an event from before sealing), else its sealed contact
    opened with the key that came beside it; empty when neither is there."""
    if not isinstance(event, TicketCreated):
        return OpenedContact(None, None, None)
    clear = OpenedContact(event.phone, event.email, event.customer_ref)
    if not event.contact_sealed or event.ticket_id is None:
        return clear
    key = _offered.get().get((tenant, branch_id, event.seq))
    opened = crypto.open_contact(key, event.ticket_id, event.contact_sealed) if key else None
    if opened is None:
        return clear
    return OpenedContact(
        opened["phone"] or event.phone, opened["email"] or event.email, opened["customer_ref"] or event.customer_ref
    )


def forget_parked_keys(conn: Any, now: datetime) -> int:
    """Erase the contact keys kept beside parked events once the tenant's contact retention (its notification
    settings' `retention_days`, 30 by default) has passed since the event arrived: an event whose predecessor never
    comes must not keep its contact openable for ever. The event stays parked; it is applied without a contact.
    Returns the rows cleared."""
    import sqlalchemy as sa

    from cloud.notify import policy
    from cloud.store import parked

    tenants = conn.execute(sa.select(parked.c.tenant_id).where(parked.c.contact_key.is_not(None)).distinct())
    cleared = 0
    for (tenant,) in tenants.all():
        cutoff = (now - policy.load(conn, tenant).retention).isoformat()
        done = conn.execute(
            sa.update(parked)
            .where(parked.c.tenant_id == tenant, parked.c.contact_key.is_not(None), parked.c.received_at <= cutoff)
            .values(contact_key=None)
        )
        cleared += done.rowcount or 0
    return cleared
