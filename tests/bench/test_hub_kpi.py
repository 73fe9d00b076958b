"""Hub analytics benchmarks on PostgreSQL: the KPI query over rollups equivalent to 10 M tickets (one tenant, 500
branches x 30 days; budget p95 <= 200 ms) and the streamed CSV export's rows/s (budget >= 100,000/s) with its memory.

The daily rollup rows tenant-wide queries read are generated directly in SQL (what 10.8 M tickets leave behind: 500
branches x 30 days x 3 services = 45,000 rows of 240 tickets, each active 12 hours), then ANALYZEd; facts for the
export are generated the same way (200,000 tickets, with the export records `facts.write` would render). (The hourly
grain, 2.16 M rows for the same tickets, answered the same query in ~6 s p95 here: it serves one branch's hour /
counter / channel / priority breakdowns only.)"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from cloud.analytics.export import csv_chunks
from cloud.analytics.facts import as_ticket_fact
from cloud.analytics.queries import Scope, kpis
from cloud.analytics.tables import ACTIVE_HOURS, SERVICE_BUCKETS, WAIT_BUCKETS, facts
from cloud.store import create_store_engine
from sync import kpi
from tests.bench._support import bench_line
from tests.support.postgres import PostgresCluster, postgres_bin

TENANT = "acme"
BRANCHES, DAYS, HOURS, SERVICES = 500, 30, 12, 3
PER_ROW = 12 * 4 * 5  # tickets per branch, day and service: 12 open hours x 4 counters x 5 (the hourly grain)
FIRST_DAY = date(2026, 11, 1)
EXPORT_TICKETS = 200_000
RUNS = 20


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    """A migrated hub store on a throwaway PostgreSQL cluster."""
    if postgres_bin() is None:
        pytest.fail("PostgreSQL is missing: run `make system-deps`")
    cluster = PostgresCluster().start()
    try:
        store = create_store_engine(cluster.url)
        yield store
        store.dispose()
    finally:
        cluster.stop()


def _generate_daily(store: sa.Engine) -> int:
    """Daily rows of one tenant: 500 branches x 30 days x 3 services, 240 tickets each (12 open hours), and the
    branch-day rows of the same tickets (hours open)."""
    hist = ", ".join(f"CASE WHEN h.i = {i % 8} THEN {PER_ROW} ELSE 0 END" for i, _ in enumerate(WAIT_BUCKETS))
    shist = ", ".join(f"CASE WHEN h.i = {i % 5} THEN {PER_ROW} ELSE 0 END" for i, _ in enumerate(SERVICE_BUCKETS))
    hours = ", ".join(str(PER_ROW if 8 <= hour < 8 + HOURS else 0) for hour in range(24))
    columns = ", ".join(["tenant_id", "branch_id", "local_date", "service_id", "tickets", "done", "no_shows",
                         "cancelled", "abandoned", "waited", "wait_sum", "served", "service_sum", "sla_measured",
                         "sla_met", *WAIT_BUCKETS, *SERVICE_BUCKETS, *ACTIVE_HOURS])  # fmt: skip
    sql = f"""
        INSERT INTO analytics_daily ({columns})
        SELECT '{TENANT}', 'b' || lpad(b::text, 3, '0'), to_char(DATE '{FIRST_DAY}' + d, 'YYYY-MM-DD'), 's' || s,
               {PER_ROW}, 4, 1, 0, 0, {PER_ROW}, {PER_ROW} * 300.0 * (1 + h.i), 4, 960.0, {PER_ROW}, 4,
               {hist}, {shist}, {hours}
        FROM generate_series(1, {BRANCHES}) b, generate_series(0, {DAYS - 1}) d, generate_series(1, {SERVICES}) s,
             LATERAL (SELECT (b + d + s) % 8 AS i) h
    """  # noqa: S608 - constants only
    day_hours = ", ".join(str(PER_ROW * SERVICES if 8 <= hour < 8 + HOURS else 0) for hour in range(24))
    branch_days = f"""
        INSERT INTO analytics_branch_days (tenant_id, branch_id, local_date, {", ".join(ACTIVE_HOURS)})
        SELECT '{TENANT}', 'b' || lpad(b::text, 3, '0'), to_char(DATE '{FIRST_DAY}' + d, 'YYYY-MM-DD'), {day_hours}
        FROM generate_series(1, {BRANCHES}) b, generate_series(0, {DAYS - 1}) d
    """  # noqa: S608 - constants only
    with store.begin() as conn:
        conn.execute(sa.text(sql))
        conn.execute(sa.text(branch_days))
        conn.execute(sa.text("ANALYZE analytics_daily"))
        conn.execute(sa.text("ANALYZE analytics_branch_days"))
        return int(conn.execute(sa.text("SELECT count(*) FROM analytics_daily")).scalar_one())


def test_kpi_query_p95_over_10m_tickets(engine: sa.Engine) -> None:
    """30 days x 500 branches of one tenant: totals and grouped by branch / day / service."""
    started = time.perf_counter()
    rows = _generate_daily(engine)
    generated = time.perf_counter() - started
    query_from, query_to = FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1)
    scope = Scope(frozenset({TENANT}))
    for group_by in ((), ("branch",), ("day",), ("service",)):
        query = kpi.KpiQuery(date_from=query_from, date_to=query_to, group_by=group_by)
        timings = []
        for _ in range(RUNS):
            t = time.perf_counter()
            with engine.connect() as conn:
                body, exact = kpis(conn, scope, query)
            timings.append((time.perf_counter() - t) * 1000)
        assert not exact
        assert body["totals"]["tickets"] == rows * PER_ROW
        assert body["totals"]["throughput_per_hour"] == round(4 / HOURS * PER_ROW * SERVICES / PER_ROW, 2)
        p95 = statistics.quantiles(timings, n=20)[-1]
        bench_line(hub_kpi_query_p95_ms=round(p95, 1), budget="<= 200", group_by=",".join(group_by) or "none",
                   daily_rows=rows, tickets=rows * PER_ROW, result_rows=len(body["rows"]),
                   median_ms=round(statistics.median(timings), 1), generate_s=round(generated, 1))  # fmt: skip


def test_csv_export_rows_per_second_and_memory(engine: sa.Engine) -> None:
    """200,000 facts streamed as CSV: rows/s, and the Python heap's peak while streaming (constant memory) in a
    second, traced pass."""
    local = """to_char((TIMESTAMPTZ '2026-11-01 01:{m:02d}Z' + n * interval '1 second') AT TIME ZONE 'Asia/Jakarta',
        'YYYY-MM-DD"T"HH24:MI:SS"+07:00"')"""
    record = " || ',' || ".join([
        "'t' || lpad(n::text, 9, '0')", "'A' || (n % 1000)", "'b' || lpad((n % 50)::text, 3, '0')", "'s1'", "'c1'",
        "'0'", "'walk_in'", "'done'", *(local.format(m=m) for m in (0, 5, 6, 10)), "'300.000'", "'240.000'", "'done'",
        "'false'", "'false'", "'Asia/Jakarta'",
    ]) + " || E'\\r\\n'"  # fmt: skip
    sql = f"""
        INSERT INTO analytics_facts (tenant_id, branch_id, ticket_id, ticket_number, service_id, counter_id, priority,
            channel, status, created_at, called_at, served_at, completed_at, wait_seconds, service_seconds,
            sla_minutes, sla_met, abandoned, transferred, returned, local_date, local_hour, closed_date, closed_hour,
            seen_at, timezone, csv_comma, csv_semicolon)
        SELECT '{TENANT}', 'b' || lpad((n % 50)::text, 3, '0'), 't' || lpad(n::text, 9, '0'), 'A' || (n % 1000),
            's1', 'c1', 0, 'walk_in', 'done',
            to_char(TIMESTAMPTZ '2026-11-01 01:00Z' + n * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            to_char(TIMESTAMPTZ '2026-11-01 01:05Z' + n * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            to_char(TIMESTAMPTZ '2026-11-01 01:06Z' + n * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            to_char(TIMESTAMPTZ '2026-11-01 01:10Z' + n * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            300.0, 240.0, 15, true, false, false, false, '2026-11-01', 8, '2026-11-01', 8,
            to_char(TIMESTAMPTZ '2026-11-01 01:00Z' + n * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            'Asia/Jakarta', {record}, replace({record}, ',', ';')
        FROM generate_series(1, {EXPORT_TICKETS}) n
    """  # noqa: S608 - constants only
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
        conn.execute(sa.text("ANALYZE analytics_facts"))
        stored = dict(conn.execute(sa.select(facts).where(facts.c.ticket_id == "t000000001")).mappings().one())
    assert stored["csv_comma"] == kpi.csv_row(as_ticket_fact(stored, stored["branch_id"]))  # what write() renders
    assert stored["csv_semicolon"] == kpi.csv_row(as_ticket_fact(stored, stored["branch_id"]), ";")
    query = kpi.KpiQuery(date_from=date(2026, 11, 1), date_to=date(2026, 11, 1))
    started = time.perf_counter()
    size = lines = 0
    for chunk in csv_chunks(engine, Scope(frozenset({TENANT})), query):
        size += len(chunk)
        lines += chunk.count(b"\r\n")
    seconds = time.perf_counter() - started
    tracemalloc.start()  # a second pass for the heap's peak: tracing every allocation would distort the timing
    for _chunk in csv_chunks(engine, Scope(frozenset({TENANT})), query):
        pass
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == EXPORT_TICKETS + 1
    bench_line(hub_csv_rows_per_s=round(EXPORT_TICKETS / seconds), budget=">= 100000", rows=EXPORT_TICKETS,
               megabytes=round(size / 1e6, 1), seconds=round(seconds, 2),
               python_heap_peak_mb=round(peak / 1e6, 1))  # fmt: skip
