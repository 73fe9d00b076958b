"""The HQ dashboard's live view (US-ANALYT-003): per branch, queue length, longest wait, counters open and their load,
today's KPIs — read from the facts' live index, the counters table and today's rollups, never from the event log.

`LiveFeed` tells connected dashboards that something was applied: one watcher task per hub replica reads the branches'
tracking rows' newest `updated_at` (the apply transaction sets it, so it changes exactly when a batch committed, on
whichever replica's consumer) every `interval` seconds and wakes the SSE streams, which then send a fresh board. One
small query per replica per interval however many dashboards are open; an event reaches the browser well within 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.analytics.queries import Scope, kpis
from cloud.analytics.tables import counters, facts
from cloud.background import Background
from cloud.store import branches
from sync import kpi

OPEN = ("waiting", "called", "serving", "held")
OPEN_DAYS = 1  # open tickets are today's (or from just before midnight): the facts' day index bounds the read


def board(conn: Connection, scope: Scope, today: date, now: datetime | None = None) -> list[dict[str, Any]]:
    """One summary per branch in scope (sorted by tenant, branch)."""
    now = now or datetime.now(UTC)
    known = conn.execute(
        sa.select(branches.c.tenant_id, branches.c.branch_id, branches.c.last_event_at).where(*scope.where(branches))
    ).all()
    out: dict[tuple[str, str], dict[str, Any]] = {
        (t, b): {"tenant": t, "branch_id": b, "last_event_at": at, "waiting": 0, "called": 0, "serving": 0,
                 "held": 0, "longest_wait_s": None, "counters_open": 0, "counters": [], "today": None}
        for t, b, at in known
    }  # fmt: skip
    queued = conn.execute(
        sa.select(facts.c.tenant_id, facts.c.branch_id, facts.c.status, sa.func.count(),
                  sa.func.min(facts.c.created_at))
        .where(*scope.where(facts), facts.c.local_date >= (today - timedelta(days=OPEN_DAYS)).isoformat(),
               facts.c.status.in_(OPEN))
        .group_by(facts.c.tenant_id, facts.c.branch_id, facts.c.status)
    ).all()  # fmt: skip
    for tenant, branch_id, status, count, oldest in queued:
        row = out.get((tenant, branch_id))
        if row is None:
            continue
        row[status] = int(count)
        if status == "waiting" and oldest:
            row["longest_wait_s"] = max(0.0, round((now - datetime.fromisoformat(oldest)).total_seconds(), 1))
    load = _served_today(conn, scope, today)
    for tenant, branch_id, counter_id, status in conn.execute(
        sa.select(counters.c.tenant_id, counters.c.branch_id, counters.c.counter_id, counters.c.status)
        .where(*scope.where(counters))
        .order_by(counters.c.tenant_id, counters.c.branch_id, counters.c.counter_id)
    ).all():
        row = out.get((tenant, branch_id))
        if row is None:
            continue
        row["counters"].append({"counter_id": counter_id, "status": status,
                                "served_today": load.get((tenant, branch_id, counter_id), 0)})  # fmt: skip
        row["counters_open"] += status in ("available", "busy")
    query = kpi.KpiQuery(date_from=today, date_to=today, group_by=("branch",))
    for tenant in sorted({t for t, _ in out}):
        tenant_scope = Scope(frozenset({tenant}), scope.branch_id, scope.branches)
        for kpi_row in kpis(conn, tenant_scope, query)[0]["rows"]:
            row = out.get((tenant, str(kpi_row["branch_id"])))
            if row is not None:
                row["today"] = {k: kpi_row[k] for k in kpi.KPI_FIELDS}
    return [out[key] for key in sorted(out)]


def _served_today(conn: Connection, scope: Scope, today: date) -> dict[tuple[str, str, str], int]:
    """Tickets done today (created today, branch-local) per counter."""
    rows = conn.execute(
        sa.select(facts.c.tenant_id, facts.c.branch_id, facts.c.counter_id, sa.func.count())
        .where(*scope.where(facts), facts.c.local_date == today.isoformat(), facts.c.status == "done")
        .group_by(facts.c.tenant_id, facts.c.branch_id, facts.c.counter_id)
    ).all()
    return {(t, b, c): int(n) for t, b, c, n in rows if c is not None}


@dataclass
class LiveFeed(Background):
    """Wakes the dashboards' SSE streams when an applied batch committed (see the module's docstring)."""

    engine: Engine
    interval: float = 0.2
    version: int = 0

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()

    task_name = "analytics-live-feed"

    def _mark(self) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(branches.c.updated_at))).scalar_one_or_none()
        return str(value) if value is not None else None

    async def _run(self) -> None:
        last = await asyncio.to_thread(self._mark)
        while True:
            await asyncio.sleep(self.interval)
            try:
                mark = await asyncio.to_thread(self._mark)
            except sa.exc.SQLAlchemyError:
                continue  # the store is away for a moment: health reports it; the dashboard just waits
            if mark != last:
                last = mark
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()

    async def wait(self, seen: int, seconds: float) -> int:
        """The version after `seen` (returns at once when it moved already), or `seen` after `seconds`."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._changed.wait_for(lambda: self.version != seen)
            return self.version
