"""Repairing a branch at the hub (`qms-cloud branch resync`): forget its events from a seq on and wait for them again.

The appliance's log is the branch's source of truth. When the hub's copy went wrong — a fork after the appliance was
restored from a backup, a broken link — the operator drops the hub's copy from seq N on (and whatever is parked),
which resets the branch's tracking to "next is N, linking to the stored N-1" and rebuilds its derived rows (tickets,
status-link tables, the configuration it reports) from the events that remain, through the consumer's own fold.
Then `qms-edge replication resend --from-seq N` on the appliance ships N… again and the consumer applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.analytics import facts
from cloud.apply import config_fields, decode_any, project_events
from cloud.store import (
    branch_key,
    branches,
    events,
    number_leases,
    parked,
    ticket_links,
    tickets,
    transaction,
    utcnow_iso,
)
from sync.contract import GENESIS_HASH

REFOLD_CHUNK = 5000


class ResyncRefused(Exception):
    """The branch is unknown, belongs to another tenant, or the seq is out of range."""


@dataclass(frozen=True)
class ResyncReport:
    """What a resync did (or, with `dry_run`, would do)."""

    tenant: str
    branch_id: str
    from_seq: int
    status_before: str
    problem_before: str | None
    next_seq_before: int
    events_dropped: int
    last_dropped: int | None
    parked_dropped: int
    events_kept: int
    tickets: int  # rows of the rebuilt ticket projection
    dry_run: bool


def resync_branch(engine: Engine, tenant: str, branch_id: str, from_seq: int, *, dry_run: bool = False) -> ResyncReport:
    """Drop the branch's events with seq >= `from_seq` and its parked events, reset its tracking to `from_seq` and
    rebuild its derived rows from the events kept — all in one transaction (rolled back for a dry run)."""
    with transaction(engine) as conn:
        row = conn.execute(
            sa.select(branches).where(branch_key(branches, tenant, branch_id)).with_for_update()
        ).one_or_none()
        if row is None:
            raise ResyncRefused(f"no branch {tenant}.{branch_id} at this hub")
        if not 1 <= from_seq <= row.next_seq:
            raise ResyncRefused(f"--from-seq must be between 1 and {row.next_seq} (the hub's next seq for the branch)")
        dropped, last_dropped = conn.execute(
            sa.select(sa.func.count(), sa.func.max(events.c.seq)).where(
                branch_key(events, tenant, branch_id), events.c.seq >= from_seq
            )
        ).one()
        parked_count = conn.execute(
            sa.select(sa.func.count()).select_from(parked).where(branch_key(parked, tenant, branch_id))
        ).scalar_one()
        if not dry_run:
            conn.execute(sa.delete(events).where(branch_key(events, tenant, branch_id), events.c.seq >= from_seq))
            conn.execute(sa.delete(parked).where(branch_key(parked, tenant, branch_id)))
            kept = _rebuild(conn, tenant, branch_id, from_seq)
            ticket_rows = conn.execute(
                sa.select(sa.func.count()).select_from(tickets).where(branch_key(tickets, tenant, branch_id))
            ).scalar_one()
        else:
            kept = conn.execute(
                sa.select(sa.func.count()).where(branch_key(events, tenant, branch_id), events.c.seq < from_seq)
            ).scalar_one()
            ticket_rows = 0
    return ResyncReport(
        tenant=tenant,
        branch_id=branch_id,
        from_seq=from_seq,
        status_before=row.status,
        problem_before=row.problem,
        next_seq_before=row.next_seq,
        events_dropped=int(dropped),
        last_dropped=last_dropped,
        parked_dropped=int(parked_count),
        events_kept=int(kept),
        tickets=int(ticket_rows),
        dry_run=dry_run,
    )


def _rebuild(conn: Connection, tenant: str, branch_id: str, from_seq: int) -> int:
    """Re-fold the kept events into fresh derived rows and reset the tracking row; returns how many were kept."""
    for table in (tickets, ticket_links, number_leases):
        conn.execute(sa.delete(table).where(branch_key(table, tenant, branch_id)))
    facts.clear(conn, tenant, branch_id)  # analytics facts and rollups are derived too: folded again below
    # What the kept events say about configuration; None where they say nothing (the dropped ones no longer count).
    config: dict[str, Any] = {"config_version": None, "config_rejected_version": None, "config_rejected_reason": None}
    kept, last_hash, last_event_at, after = 0, GENESIS_HASH, None, 0
    while True:
        rows = conn.execute(
            sa.select(events.c.seq, events.c.body)
            .where(branch_key(events, tenant, branch_id), events.c.seq > after, events.c.seq < from_seq)
            .order_by(events.c.seq)
            .limit(REFOLD_CHUNK)
        ).all()
        if not rows:
            break
        chunk = [decode_any(body.encode()) for _seq, body in rows]
        project_events(conn, tenant, branch_id, chunk)
        facts.on_applied(conn, tenant, branch_id, chunk)
        config.update(config_fields(chunk))
        kept += len(chunk)
        after, last_hash, last_event_at = chunk[-1].seq, chunk[-1].hash, chunk[-1].occurred_at.isoformat()
    if kept != from_seq - 1:  # never expected: events are only stored in order; roll back rather than guess
        raise ResyncRefused(f"the hub holds {kept} events below seq {from_seq}, not {from_seq - 1}: resync from 1")
    conn.execute(
        sa.update(branches)
        .where(branch_key(branches, tenant, branch_id))
        .values(
            next_seq=from_seq,
            last_hash=last_hash,
            events=kept,
            last_event_at=last_event_at,
            status="ok",
            problem=None,
            updated_at=utcnow_iso(),
            **config,
        )
    )
    return kept
