"""Read model of the HQ console: branches with their link state, live queues per branch, cross-branch counts."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.config_edit import running_document
from cloud.liveness import NEVER, Liveness, liveness_of, missed_beats_setting
from cloud.store import branches, config_versions, events, parked, tickets
from sync.contract_config import short_hash

LIVE_STATUSES = ("waiting", "called", "serving")
NEVER_CONNECTED = "never_connected"  # added with `qms-cloud branch add`, no message from it yet
STALE_AFTER_SECONDS = 300.0  # no event for this long: the console flags the link as quiet


@dataclass
class BranchView:
    """One branch as the console shows it."""

    branch_id: str
    tenant: str
    status: str
    problem: str | None
    events: int
    duplicates: int
    next_seq: int
    parked: int
    last_event_at: str | None
    last_received_at: str | None
    seconds_since_event: float | None
    config_version: int | None
    config_latest: int | None
    config_rejected_version: int | None
    config_rejected_reason: str | None
    queue: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> status -> count
    # Each version with its content hash (12 hex digits shown), so equal numbers of different documents differ.
    config_hash: str | None = None
    config_latest_hash: str | None = None
    config_rejected_hash: str | None = None
    liveness: str = NEVER  # online | offline | never connected (cloud/liveness.py, from the branch's heartbeats)
    last_beat_at: str | None = None
    software_version: str | None = None
    last_seq: int | None = None  # the branch's log head as its last beat reported it
    # For people: the name and zone of what the branch runs (its newest replicated config), its services' names.
    name: str = ""
    timezone: str = "Asia/Jakarta"
    service_names: dict[str, str] = field(default_factory=dict)

    def local(self, at: str | None) -> str:
        """A stored UTC moment in the branch's zone, `YYYY-MM-DD HH:MM:SS`; '-' for none."""
        if not at:
            return "-"
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("Asia/Jakarta")
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def liveness_words(self) -> str:
        """`online`, `offline since <last beat>`, `never connected`."""
        return Liveness(self.liveness, self.last_beat_at).words

    def config_label(self, which: str) -> str:
        """`v4 (1a2b3c4d5e6f)` for `runs`, `latest` (the cloud's newest) or `rejected`; `-` when there is none."""
        version, digest = {
            "runs": (self.config_version, self.config_hash),
            "latest": (self.config_latest, self.config_latest_hash),
            "rejected": (self.config_rejected_version, self.config_rejected_hash),
        }[which]
        if version is None:
            return "-"
        return f"v{version}" + (f" ({short_hash(digest)})" if digest else "")

    @property
    def link(self) -> str:
        """`never_connected` (added, nothing received yet), `ok`, `quiet` (nothing for a while), `gap` or
        `chain_broken`."""
        if self.status != "ok":
            return self.status
        if self.last_received_at is None:
            return NEVER_CONNECTED
        if self.seconds_since_event is not None and self.seconds_since_event > STALE_AFTER_SECONDS:
            return "quiet"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the console's API)."""
        return {**self.__dict__, "link": self.link, "liveness_words": self.liveness_words}


def _age(value: str | None, now: datetime) -> float | None:
    if value is None:
        return None
    return round(max(0.0, (now - datetime.fromisoformat(value)).total_seconds()), 1)


def overview(
    engine: Engine, now: datetime | None = None, tenants: Collection[str] | None = None, missed_beats: int | None = None
) -> dict[str, Any]:
    """Everything the console page shows, read in one transaction; with `tenants`, only those tenants' branches
    (and only their queues and events in the counts); a branch is offline after `missed_beats` missed heartbeats
    (default `QMS_HUB_MISSED_BEATS`, 3)."""
    now = now or datetime.now(UTC)
    branch_q = sa.select(branches).order_by(branches.c.tenant_id, branches.c.branch_id)
    queue_q = sa.select(
        tickets.c.tenant_id, tickets.c.branch_id, tickets.c.service_id, tickets.c.status, sa.func.count()
    ).where(tickets.c.status.in_(LIVE_STATUSES))
    counts_q = sa.select(events.c.type, sa.func.count())
    if tenants is not None:  # rows carry their tenant: scoping is a filter on it
        branch_q = branch_q.where(branches.c.tenant_id.in_(sorted(tenants)))
        queue_q = queue_q.where(tickets.c.tenant_id.in_(sorted(tenants)))
        counts_q = counts_q.where(events.c.tenant_id.in_(sorted(tenants)))
    with engine.connect() as conn:
        rows = conn.execute(branch_q).all()
        versions = config_versions.c
        latest: dict[tuple[str, str], int] = {
            (t, b): v
            for t, b, v in conn.execute(
                sa.select(versions.tenant_id, versions.branch_id, sa.func.max(versions.version)).group_by(
                    versions.tenant_id, versions.branch_id
                )
            ).all()
        }
        parked_counts: dict[tuple[str, str], int] = {
            (t, b): n
            for t, b, n in conn.execute(
                sa.select(parked.c.tenant_id, parked.c.branch_id, sa.func.count()).group_by(
                    parked.c.tenant_id, parked.c.branch_id
                )
            ).all()
        }
        queue_rows = conn.execute(
            queue_q.group_by(tickets.c.tenant_id, tickets.c.branch_id, tickets.c.service_id, tickets.c.status)
        ).all()
        type_counts = conn.execute(counts_q.group_by(events.c.type).order_by(events.c.type)).all()
        latest_hash = _latest_hashes(conn)
        keys = [(r.tenant_id, r.branch_id) for r in rows]
        beats = liveness_of(conn, keys, now, missed_beats or missed_beats_setting())
        running = {key: running_document(conn, *key) for key in keys}  # config.applied is rare: a short index read
    views = {
        (r.tenant_id, r.branch_id): BranchView(
            branch_id=r.branch_id,
            tenant=r.tenant_id,
            status=r.status,
            problem=r.problem,
            events=r.events,
            duplicates=r.duplicates,
            next_seq=r.next_seq,
            parked=parked_counts.get((r.tenant_id, r.branch_id), 0),
            last_event_at=r.last_event_at,
            last_received_at=r.last_received_at,
            seconds_since_event=_age(r.last_event_at, now),
            config_version=r.config_version,
            config_latest=latest.get((r.tenant_id, r.branch_id)),
            config_rejected_version=r.config_rejected_version,
            config_rejected_reason=r.config_rejected_reason,
            config_hash=r.config_hash,
            config_latest_hash=latest_hash.get((r.tenant_id, r.branch_id)),
            config_rejected_hash=r.config_rejected_hash,
        )
        for r in rows
    }
    for key, config in running.items():
        if config is not None:
            view = views[key]
            view.name, view.timezone = config.name, config.timezone
            view.service_names = {svc.id: svc.name for svc in config.services}
    for key, live in beats.items():
        view = views[key]
        view.liveness, view.last_beat_at = live.state, live.last_beat_at
        view.software_version, view.last_seq = live.software_version, live.last_seq
    for tenant, branch_id, service_id, status, count in queue_rows:
        if (tenant, branch_id) in views:
            views[(tenant, branch_id)].queue.setdefault(service_id, dict.fromkeys(LIVE_STATUSES, 0))[status] = count
    return {
        "generated_at": now.isoformat(),
        "branches": list(views.values()),
        "event_counts": [{"type": t, "count": n} for t, n in type_counts],
        "total_events": sum(n for _t, n in type_counts),
    }


def _latest_hashes(conn: Connection) -> dict[tuple[str, str], str | None]:
    """The content hash of each branch's newest distributed version."""
    versions = config_versions.c
    rows = conn.execute(
        sa.select(versions.tenant_id, versions.branch_id, versions.config_hash).order_by(versions.version)
    ).all()
    return {(t, b): h for t, b, h in rows}  # ordered by version: the newest wins
