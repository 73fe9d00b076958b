"""Reading the fact projection for the API and the pages: fresh KPIs, the streamed CSV, today's figures.

Reads never fold the log themselves: when the projection lags the log (the follower runs right after each commit,
so only by a moment) a read asks the writer for one catch-up first, so a report reflects every acknowledged command.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from edge.analytics import facts
from edge.analytics.follower import SLICE
from edge.engine.numbering import business_date
from edge.service import QueueService
from edge.store.db import connect
from sync.kpi import (
    DEFAULT_TIMEZONE,
    KpiQuery,
    TicketFact,
    aggregate,
    csv_header_line,
    kpi_row,
    kpi_rows,
    parse_query,
)

CSV_CHUNK = 2000  # rows per database page and per streamed chunk: memory stays flat whatever the range


def timezone(service: QueueService) -> str:
    """The branch's zone name."""
    config = service.view.state.config
    return config.timezone if config else DEFAULT_TIMEZONE


def today(service: QueueService) -> date:
    """The branch-local business date now."""
    return date.fromisoformat(business_date(service.clock(), timezone(service)))


def query_of(service: QueueService, params: Mapping[str, str]) -> KpiQuery:
    """Parse report filters against the branch's today (raises sync.kpi.KpiQueryError)."""
    return parse_query(params, today(service))


async def fresh(service: QueueService) -> None:
    """Make the facts reflect every committed event: one catch-up in the writer when the cursor lags."""
    seq = service.view.seq
    while service.read(facts.cursor) < seq:  # in slices: a long backlog never holds the writer for long
        folded = await asyncio.wrap_future(service.submit_store(lambda conn: facts.catch_up(conn, SLICE)))
        if not folded:
            return


async def select(
    service: QueueService, query: KpiQuery, extra: str = "", params: tuple[Any, ...] = ()
) -> list[TicketFact]:
    """The facts a query selects, after making them fresh."""
    await fresh(service)
    return service.read(lambda conn: facts.facts(conn, query, extra, params))


async def kpis(service: QueueService, query: KpiQuery) -> dict[str, Any]:
    """The `/kpis` body: rows per group and totals, per the shared definitions."""
    rows, totals = kpi_rows(await select(service, query), query.group_by)
    return {
        "from": query.date_from.isoformat(),
        "to": query.date_to.isoformat(),
        "timezone": timezone(service),
        "group_by": list(query.group_by),
        "rows": rows,
        "totals": totals,
    }


def csv_chunks(db_path: Path, query: KpiQuery) -> Iterator[bytes]:
    """The CSV export as encoded chunks, read on its own read-only connection (a long export blocks nobody)."""
    conn: sqlite3.Connection = connect(db_path, readonly=True)
    try:
        yield csv_header_line(query.sep).encode()
        for records in facts.csv_records(conn, query, CSV_CHUNK):
            yield "".join(records).encode()
    finally:
        conn.close()


def csv_filename(branch_id: str, query: KpiQuery) -> str:
    """`tickets-<branch>-<from>-<to>.csv` (ids are [a-z0-9_-], safe in a header)."""
    return f"tickets-{branch_id or 'branch'}-{query.date_from.isoformat()}-{query.date_to.isoformat()}.csv"


def db_path(service: QueueService) -> Path:
    """The appliance database file."""
    return service.data_dir / "qms.sqlite3"


async def today_facts(service: QueueService, extra: str = "", params: tuple[Any, ...] = ()) -> list[TicketFact]:
    """Today's facts (branch-local), optionally narrowed by one SQL condition."""
    day = today(service)
    return await select(service, KpiQuery(date_from=day, date_to=day), extra, params)


def past_sla(tickets: list[dict[str, Any]], sla_of: Mapping[str, int], now: datetime) -> list[dict[str, Any]]:
    """Waiting tickets whose wait already exceeds their service's SLA, longest first (the floor's live flags)."""
    late = []
    for t in tickets:
        if t.get("status") != "waiting":
            continue
        sla = sla_of.get(t.get("service_id", ""))
        created = t.get("created_at")
        if not sla or not created:
            continue
        waited = (now - datetime.fromisoformat(created)).total_seconds()
        if waited > sla * 60:
            late.append({**t, "waited_s": round(waited), "sla_minutes": sla})
    return sorted(late, key=lambda t: -t["waited_s"])


def today_row(service: QueueService) -> dict[str, Any]:
    """Today's branch KPIs from the projection as it stands (the floor refreshes on every event; no log scan)."""
    day = today(service)
    query = KpiQuery(date_from=day, date_to=day)
    return kpi_row(aggregate(service.read(lambda conn: facts.facts(conn, query))))


def agent_today(service: QueueService, username: str) -> dict[str, Any]:
    """An agent's own day: tickets they completed today and their average handling (serving) time in seconds."""
    day = today(service).isoformat()
    served, avg = service.read(
        lambda conn: conn.execute(
            "SELECT count(*), avg(service_seconds) FROM ticket_facts"
            " WHERE served_by = ? AND status = 'done' AND closed_date = ?",
            (username, day),
        ).fetchone()
    )
    return {"served": served, "avg_handling_s": avg}
