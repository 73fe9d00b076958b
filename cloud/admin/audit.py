"""The hub audit log (US-ADMIN-005): every console action, append-only and hash-chained, merged with the branches'
replicated audit trail (their privileged events, each with its actor) for the viewer and the CSV export.

Each row's `hash` is SHA-256 over the previous row's hash and the row's canonical JSON, so an edited, deleted or
reordered row breaks the chain from there on; `verify` (`qms-cloud audit verify`) walks it. Appending takes the
chain's head under a lock (PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE), so replicas never fork it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.tables import branch_profiles, hub_audit
from cloud.store import events
from sync.contract import GENESIS_HASH
from sync.kpi import neutralise

AUDIT_LOCK = 0x716D7361  # PostgreSQL advisory lock key held while appending ("qmsa")
DEFAULT_ZONE = "Asia/Jakarta"
# The branch events that are the appliance's own audit trail: configuration and staff/privileged actions.
BRANCH_AUDIT_TYPES = ("config.applied", "config.rejected", "counter.presence", "ticket.cancelled", "ticket.transferred")
CSV_HEADER = (
    "time",
    "time_zone",
    "source",
    "tenant",
    "branch",
    "actor",
    "action",
    "target",
    "from",
    "correlation_id",
    "before",
    "after",
)
VIEW_LIMIT = 500


def _canonical(row: dict[str, Any]) -> bytes:
    fields = (
        "seq",
        "at",
        "actor",
        "action",
        "tenant_id",
        "branch_id",
        "target",
        "source_ip",
        "before",
        "after",
        "correlation_id",
    )
    return json.dumps({k: row.get(k) for k in fields}, sort_keys=True, separators=(",", ":")).encode()


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON (without its hashes)."""
    return hashlib.sha256(prev_hash.encode("ascii") + _canonical(row)).hexdigest()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    tenant: str | None = None,
    branch: str | None = None,
    target: str | None = None,
    source_ip: str | None = None,
    before: Any = None,
    after: Any = None,
    correlation_id: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one entry inside the caller's transaction (so the action and its audit commit together); its seq."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    head = conn.execute(sa.select(hub_audit.c.seq, hub_audit.c.hash).order_by(hub_audit.c.seq.desc()).limit(1)).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    row = {
        "seq": seq,
        "at": (at or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "tenant_id": tenant,
        "branch_id": branch,
        "target": target,
        "source_ip": source_ip,
        "before": _json(before),
        "after": _json(after),
        "correlation_id": correlation_id,
    }
    conn.execute(hub_audit.insert().values(**row, prev_hash=prev, hash=row_hash(prev, row)))
    return seq


@dataclass(frozen=True)
class Verified:
    """The outcome of walking the chain: how many rows, and the first broken seq with why (None when intact)."""

    rows: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the whole chain is intact."""
        return self.broken_at is None


def verify(engine: Engine) -> Verified:
    """Recompute every hash in seq order; report the first row whose link or content does not match."""
    prev, expected_seq, count = GENESIS_HASH, 1, 0
    with engine.connect() as conn:
        for r in conn.execute(sa.select(hub_audit).order_by(hub_audit.c.seq)).mappings():
            count += 1
            if r["seq"] != expected_seq:
                return Verified(count, r["seq"], f"seq {expected_seq} is missing")
            if r["prev_hash"] != prev:
                return Verified(count, r["seq"], "its link to the previous row does not match")
            if r["hash"] != row_hash(prev, dict(r)):
                return Verified(count, r["seq"], "its content was changed after it was written")
            prev, expected_seq = r["hash"], expected_seq + 1
    return Verified(count)


@dataclass(frozen=True)
class Filters:
    """What the viewer and the export narrow to; every field optional. Dates are the branch-local calendar days."""

    since: date | None = None
    until: date | None = None
    actor: str | None = None
    action: str | None = None
    branch: str | None = None


@dataclass(frozen=True)
class Entry:
    """One line of the merged trail (hub action or replicated branch event)."""

    at: datetime  # UTC
    source: str  # hub | branch
    tenant: str | None
    branch: str | None
    actor: str
    action: str
    target: str | None
    source_ip: str | None
    correlation_id: str | None
    before: str | None
    after: str | None

    def local(self, zone: str) -> str:
        """The time in the branch's zone, to the second."""
        return self.at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def _bounds(filters: Filters) -> tuple[str | None, str | None]:
    """UTC bounds wide enough for any zone (±14 h); the exact local day is checked per row."""
    lo = datetime.combine(filters.since, time(), UTC) - timedelta(hours=14) if filters.since else None
    hi = datetime.combine(filters.until, time(), UTC) + timedelta(days=1, hours=14) if filters.until else None
    return (lo.isoformat() if lo else None, hi.isoformat() if hi else None)


def zones(conn: Connection) -> dict[tuple[str, str], str]:
    """Each managed branch's time zone."""
    rows = conn.execute(sa.select(branch_profiles.c.tenant_id, branch_profiles.c.branch_id, branch_profiles.c.timezone))
    return {(t, b): z for t, b, z in rows}


def _branch_target(body: dict[str, Any]) -> str | None:
    for key in ("counter_id", "ticket_id"):
        if body.get(key):
            return f"{key.removesuffix('_id')} {body[key]}"
    if "version" in body:
        return f"config v{body['version']}"
    return None


def entries(
    conn: Connection, filters: Filters, tenants: Collection[str] | None, limit: int = VIEW_LIMIT
) -> tuple[list[Entry], dict[tuple[str, str], str]]:
    """The merged trail, newest first, limited to the caller's tenants and the filters; with each branch's zone."""
    lo, hi = _bounds(filters)
    hub_q = sa.select(hub_audit).order_by(hub_audit.c.seq.desc()).limit(limit)
    if tenants is not None:
        hub_q = hub_q.where(hub_audit.c.tenant_id.in_(sorted(tenants)))
    if lo:
        hub_q = hub_q.where(hub_audit.c.at >= lo)
    if hi:
        hub_q = hub_q.where(hub_audit.c.at < hi)
    if filters.actor:
        hub_q = hub_q.where(hub_audit.c.actor == filters.actor)
    if filters.action:
        hub_q = hub_q.where(hub_audit.c.action == filters.action)
    if filters.branch:
        hub_q = hub_q.where(hub_audit.c.branch_id == filters.branch)
    found = [
        Entry(
            datetime.fromisoformat(r.at),
            "hub",
            r.tenant_id,
            r.branch_id,
            r.actor,
            r.action,
            r.target,
            r.source_ip,
            r.correlation_id,
            r.before,
            r.after,
        )
        for r in conn.execute(hub_q)
    ]
    ev_q = (
        sa.select(events.c.tenant_id, events.c.branch_id, events.c.occurred_at, events.c.type, events.c.body)
        .where(events.c.type.in_(BRANCH_AUDIT_TYPES))
        .order_by(events.c.occurred_at.desc())
        .limit(limit)
    )
    if tenants is not None:
        ev_q = ev_q.where(events.c.tenant_id.in_(sorted(tenants)))
    if lo:
        ev_q = ev_q.where(events.c.occurred_at >= lo)
    if hi:
        ev_q = ev_q.where(events.c.occurred_at < hi)
    if filters.action:
        ev_q = ev_q.where(events.c.type == filters.action)
    if filters.branch:
        ev_q = ev_q.where(events.c.branch_id == filters.branch)
    for r in conn.execute(ev_q):
        body = json.loads(r.body)
        if filters.actor and body.get("actor") != filters.actor:
            continue
        found.append(
            Entry(
                datetime.fromisoformat(r.occurred_at).astimezone(UTC),
                "branch",
                r.tenant_id,
                r.branch_id,
                str(body.get("actor", "")),
                r.type,
                _branch_target(body),
                None,
                body.get("request_id"),
                None,
                None,
            )
        )
    tz = zones(conn)

    def zone_of(e: Entry) -> str:
        return tz.get((e.tenant or "", e.branch or ""), DEFAULT_ZONE)

    def in_days(e: Entry) -> bool:
        day = e.at.astimezone(ZoneInfo(zone_of(e))).date()
        return (filters.since is None or day >= filters.since) and (filters.until is None or day <= filters.until)

    merged = sorted((e for e in found if in_days(e)), key=lambda e: e.at, reverse=True)[:limit]
    return merged, tz


def zone_for(tz: dict[tuple[str, str], str], entry: Entry) -> str:
    """The zone an entry is shown in: its branch's, or Asia/Jakarta."""
    return tz.get((entry.tenant or "", entry.branch or ""), DEFAULT_ZONE)


def csv_lines(found: list[Entry], tz: dict[tuple[str, str], str]) -> Iterator[str]:
    """The export, header first; times in each row's branch zone (named in its own column); cells that a spreadsheet
    would run as a formula are defused."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for e in found:
        zone = zone_for(tz, e)
        writer.writerow(
            neutralise(cell)
            for cell in [
                e.local(zone),
                zone,
                e.source,
                e.tenant or "",
                e.branch or "",
                e.actor,
                e.action,
                e.target or "",
                e.source_ip or "",
                e.correlation_id or "",
                e.before or "",
                e.after or "",
            ]
        )
    yield out.getvalue()
