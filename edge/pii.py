"""Customer contacts at the appliance (crypto-shredding, issue 16, UU PDP 27/2022).

The writer seals a new ticket's phone, e-mail and customer reference with a key of that ticket alone
(`sync.crypto`) before the event enters the hash-chained log; the key goes to `contact_keys`, a table outside the
chain. While the key is kept, the engine, rebuilds and the relay (which sends the key to the hub in a NATS header
beside the event, never inside it) see the contact; once the retention period has passed, `shred` deletes the key and
scrubs the ticket projection's copy, with SQLite's `secure_delete` on and the WAL checkpointed and truncated by the
writer, so neither the database files nor any backup taken afterwards hold the contact. Backups taken before hold
it neither: each expires (QMS_BACKUP_MAX_AGE_DAYS) and leaves out the keys due before then (edge/backup.py runs
`shred` on its copy with the expiry as `now`). The log is untouched, so `qms-edge verify` passes. Booking references
(`booking:<id>`) stay clear: they name a booking, not a person, and the hub's check-in loop reads them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from edge.engine.model import State, Ticket, ticket_decoder
from sync import crypto
from sync.contract import Event, TicketCreated

RETENTION_ENV = "QMS_CONTACT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
BOOKING_PREFIX = "booking:"
_encoder = msgspec.json.Encoder()


def retention() -> timedelta:
    """How long a ticket's contact is kept (QMS_CONTACT_RETENTION_DAYS, default 30 days, 1..3650)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    days = int(raw) if raw.isdigit() else DEFAULT_RETENTION_DAYS
    return timedelta(days=min(max(days, 1), 3650))


def _private(event: TicketCreated) -> dict[str, str | None]:
    """The fields to seal (a booking reference is not personal data and stays clear)."""
    ref = event.customer_ref if not (event.customer_ref or "").startswith(BOOKING_PREFIX) else None
    return {"phone": event.phone, "email": event.email, "customer_ref": ref}


def seal_for_log(conn: sqlite3.Connection, event: Event, now: datetime, keep: timedelta) -> Event:
    """The event as the log stores it: a ticket.created with a contact gets `contact_sealed` instead of the clear
    fields, and its key is stored (inside the caller's transaction). Any other event is returned as it is."""
    if not isinstance(event, TicketCreated) or event.ticket_id is None:
        return event
    private = _private(event)
    if not any(private.values()):
        return event
    key = crypto.new_key()
    conn.execute(
        "INSERT OR REPLACE INTO contact_keys (ticket_id, key, created_at, purge_after) VALUES (?, ?, ?, ?)",
        (event.ticket_id, key, now.isoformat(), (now + keep).isoformat()),
    )
    cleared = {name: None for name, value in private.items() if value is not None}
    sealed = crypto.seal_contact(key, event.ticket_id, private)
    return msgspec.structs.replace(event, contact_sealed=sealed, **cleared)


def opened(event: Event, keys: dict[str, bytes]) -> Event:
    """The event with its sealed contact put back in clear when its key is in `keys` (else unchanged: after the
    shred the ticket simply has no contact)."""
    if not isinstance(event, TicketCreated) or not event.contact_sealed or event.ticket_id not in keys:
        return event
    contact = crypto.open_contact(keys[event.ticket_id], event.ticket_id, event.contact_sealed)
    if contact is None:
        return event
    clear = {name: value for name, value in contact.items() if value is not None}
    return msgspec.structs.replace(event, **clear)


def keys_of(conn: sqlite3.Connection, ticket_ids: Iterable[str] | None = None) -> dict[str, bytes]:
    """Kept keys by ticket (all of them, or those of `ticket_ids`)."""
    if ticket_ids is None:
        return {tid: bytes(key) for tid, key in conn.execute("SELECT ticket_id, key FROM contact_keys")}
    wanted = list(dict.fromkeys(ticket_ids))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT ticket_id, key FROM contact_keys WHERE ticket_id IN ({marks})", chunk)  # noqa: S608 - placeholders only
        found.update((tid, bytes(key)) for tid, key in rows)
    return found


def shred(conn: sqlite3.Connection, now: datetime, limit: int = 5000) -> list[str]:
    """Erase the keys whose retention ended and scrub those tickets' projection rows (inside the caller's
    transaction); returns the tickets. `secure_delete` makes SQLite overwrite the freed bytes."""
    conn.execute("PRAGMA secure_delete = ON")
    due = [
        tid
        for (tid,) in conn.execute(
            "SELECT ticket_id FROM contact_keys WHERE purge_after <= ? ORDER BY purge_after LIMIT ?",
            (now.isoformat(), limit),
        )
    ]
    for tid in due:
        conn.execute("DELETE FROM contact_keys WHERE ticket_id = ?", (tid,))
        row = conn.execute("SELECT data FROM tickets WHERE ticket_id = ?", (tid,)).fetchone()
        if row is not None:
            ticket = _scrubbed(ticket_decoder.decode(row[0]))
            conn.execute("UPDATE tickets SET data = ? WHERE ticket_id = ?", (_encoder.encode(ticket), tid))
    return due


def _scrubbed(ticket: Ticket) -> Ticket:
    """The ticket without its contact (a booking reference stays: it was never sealed)."""
    ref = ticket.customer_ref if (ticket.customer_ref or "").startswith(BOOKING_PREFIX) else None
    return msgspec.structs.replace(ticket, phone=None, email=None, customer_ref=ref)


def scrub_state(state: State, ticket_ids: Iterable[str]) -> None:
    """Drop the shredded contacts from the writer's in-memory tickets too (they are written back later)."""
    for tid in ticket_ids:
        ticket = state.tickets.get(tid)
        if ticket is not None:
            state.tickets[tid] = _scrubbed(ticket)


def with_contact_of(sealed: Event, original: Event) -> Event:
    """The sealed event with the original's clear contact fields (what the engine evolves with, in memory only)."""
    return msgspec.structs.replace(sealed, **{name: getattr(original, name, None) for name in crypto.SEALED_FIELDS})
