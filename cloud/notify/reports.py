"""Early delivery reports, kept in the store until their send is recorded (issue 12).

A provider may call our webhook before the transaction recording its send has committed (some answer the send and
call back within milliseconds, and the message id we match reports by comes in that answer). Such a report matches
no row of either outbox (`notify_outbox`, the booking messages' `appt_messages`): the webhook parks it in
`notify_parked_reports`, and recording the send takes it in the same transaction and applies it. The table is shared
by every hub replica and survives a restart, so the replica that sends need not be the one the provider calls.

"No row yet → park" (the webhook) and "record the id → take what is parked" (the dispatcher, the booking sender) must
not interleave, or each would miss the other's uncommitted write: on PostgreSQL both take a transaction-scoped
advisory lock per message id first (always before any row lock, in one order); on SQLite every write transaction
holds the database's write lock from its `BEGIN IMMEDIATE`. A parked report whose send is never recorded (a message
not ours, a send that failed after all) is swept after `PARK_SECONDS`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.appointments.tables import appt_messages
from cloud.notify.providers.base import DeliveryUpdate
from cloud.notify.tables import outbox, parked_reports
from cloud.store import insert_ignore, writer_turn

log = logging.getLogger("qms.notify")
PARK_SECONDS = 600.0  # an early report waits this long for its send to be recorded
PARKED_STATUSES = ("delivered", "failed")  # a `sent` report tells nothing recording the send does not

Key = tuple[str, str, str]  # (tenant, provider, provider message id)


def _lock_key(key: Key) -> int:
    """A message's advisory lock key: 64 bits of a hash of (tenant, provider, message id), signed as PostgreSQL's."""
    digest = hashlib.blake2b("\x00".join(key).encode(), digest_size=8, person=b"qms-report").digest()
    return int.from_bytes(digest, "big", signed=True)


def lock(conn: Connection, keys: Iterable[Key]) -> None:
    """Hold these messages' report locks until the transaction ends (PostgreSQL; SQLite's write lock already
    serialises). Taken in one sorted order, before any row lock, by the webhook and by the recorders alike."""
    if conn.dialect.name != "postgresql":
        return
    found = sorted({_lock_key(k) for k in keys})
    if found:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"),
                     {"keys": found})  # fmt: skip


def park_unmatched(
    conn: Connection, tenant: str, provider: str, updates: Sequence[DeliveryUpdate], now: datetime
) -> int:
    """Park the `delivered`/`failed` reports that match no row of either outbox yet (a retried callback parks
    nothing twice); returns how many were new. The caller holds their `lock`."""
    wanted = {u.provider_message_id for u in updates if u.status in PARKED_STATUSES and u.provider_message_id}
    if not wanted:
        return 0
    known: set[str] = set()
    for table in (outbox, appt_messages):
        known.update(
            conn.execute(
                sa.select(table.c.provider_message_id).where(table.c.tenant_id == tenant,
                                                             table.c.provider == provider,
                                                             table.c.provider_message_id.in_(sorted(wanted)))
            ).scalars()
        )  # fmt: skip
    rows = [{"tenant_id": tenant, "provider": provider, "provider_message_id": u.provider_message_id,
             "status": u.status, "code": u.code, "reason": u.reason, "received_at": now.isoformat()}
            for u in updates if u.provider_message_id in wanted - known]  # fmt: skip
    if not rows:
        return 0
    return int(conn.execute(insert_ignore(conn, parked_reports), rows).rowcount or 0)


def take(conn: Connection, sent: Sequence[Key]) -> dict[tuple[str, str], list[DeliveryUpdate]]:
    """Delete and return the reports parked for sends being recorded, by (tenant, provider), oldest first. One
    statement (nothing parked is the usual case); the caller holds their `lock` and applies them in its transaction."""
    keys = sorted(set(sent))
    if not keys:
        return {}
    c = parked_reports.c
    taken = conn.execute(
        sa.delete(parked_reports)
        .where(sa.tuple_(c.tenant_id, c.provider, c.provider_message_id).in_(keys))
        .returning(c.tenant_id, c.provider, c.provider_message_id, c.status, c.code, c.reason, c.received_at)
    ).all()
    found: dict[tuple[str, str], list[DeliveryUpdate]] = {}
    for row in sorted(taken, key=lambda r: (r.received_at, r.status)):
        update = DeliveryUpdate(row.provider_message_id, row.status, code=row.code, reason=row.reason)
        found.setdefault((row.tenant_id, row.provider), []).append(update)
    return found


def sweep(engine: Engine, now: datetime) -> int:
    """Delete the reports parked longer than `PARK_SECONDS`: their sends were never recorded, so they belong to no
    message of ours. Logged by tenant and provider (counts only: a report carries no contact, and none is logged)."""
    cutoff = (now - timedelta(seconds=PARK_SECONDS)).isoformat()
    c = parked_reports.c
    with writer_turn(engine), engine.begin() as conn:
        gone = conn.execute(
            sa.delete(parked_reports).where(c.received_at < cutoff).returning(c.tenant_id, c.provider)
        ).all()
    counts: dict[tuple[str, str], int] = {}
    for row in gone:
        counts[(row.tenant_id, row.provider)] = counts.get((row.tenant_id, row.provider), 0) + 1
    for (tenant, provider), n in sorted(counts.items()):
        log.info("notify: dropped %d %s delivery report(s) of tenant %s: no send of ours recorded their message "
                 "within %d minutes", n, provider, tenant, int(PARK_SECONDS // 60))  # fmt: skip
    return len(gone)
