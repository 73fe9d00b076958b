"""KPI queries at the hub (`GET /api/v1/kpis`): exact from facts for one branch-day, merged from rollups otherwise.

* One branch and one local day (or one day with at most EXACT_LIMIT tickets in scope): the day's facts are read
  and folded by `sync.kpi.kpi_rows` — the same code over the same facts as the appliance, so the figures
  (percentiles included) are equal to the appliance's.
* Anything wider (several days, several branches, a whole tenant): sums over `analytics_rollups` grouped in SQL (a
  few thousand rows for 30 days x 500 branches), percentiles interpolated in the merged fixed histograms
  (`sync.kpi.hist_percentile`), hours open counted as distinct active (branch, date, hour) rows. Across a midnight
  the hours open may differ slightly from a fold of the facts (a ticket done after midnight counts its hour on the
  next date's rows).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.analytics.facts import as_ticket_fact
from cloud.analytics.tables import ACTIVE_HOURS, SERVICE_BUCKETS, WAIT_BUCKETS, daily, facts, rollups
from cloud.analytics.tables import branch_days as branch_day_table
from sync import kpi

# The rollup column behind each grouping (counter '' = no call yet, shown as null).
_GROUP_COLUMN = {"day": "local_date", "hour": "local_hour", "service": "service_id", "counter": "counter_id",
                 "branch": "branch_id"}  # fmt: skip
EXACT_LIMIT = 20_000  # one day's facts folded exactly up to this many (a few branches); beyond: the rollups
_SUMMED = ("tickets", "done", "no_shows", "cancelled", "abandoned", "waited", "wait_sum", "served", "service_sum",
           "sla_measured", "sla_met", *WAIT_BUCKETS, *SERVICE_BUCKETS)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """Which branches a query covers: one tenant or several (None = every tenant), optionally one branch, and the
    caller's branch restriction ((tenant, branch) pairs, None = every branch of those tenants)."""

    tenants: frozenset[str] | None
    branch_id: str | None = None
    branches: frozenset[tuple[str, str]] | None = None

    def where(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        """The WHERE terms limiting `table` (keyed by tenant_id, branch_id) to this scope."""
        terms: list[sa.ColumnElement[bool]] = []
        if self.tenants is not None:
            terms.append(table.c.tenant_id.in_(sorted(self.tenants)))
        if self.branch_id is not None:
            terms.append(table.c.branch_id == self.branch_id)
        if self.branches is not None:
            pairs = sorted(self.branches)
            terms.append(sa.tuple_(table.c.tenant_id, table.c.branch_id).in_(pairs) if pairs else sa.false())
        return terms


def _filters(table: sa.Table, query: kpi.KpiQuery) -> list[sa.ColumnElement[bool]]:
    terms: list[sa.ColumnElement[bool]] = [
        table.c.local_date.between(query.date_from.isoformat(), query.date_to.isoformat())
    ]
    if query.service_id is not None:
        terms.append(table.c.service_id == query.service_id)
    if table is daily or table is branch_day_table:
        return terms  # _daily_fits: the other filters are absent
    if query.priority is not None:
        terms.append(table.c.priority == query.priority)
    if query.channel is not None:
        terms.append(table.c.channel == query.channel)
    if query.counter_id is not None:
        terms.append(table.c.counter_id == query.counter_id)
    return terms


def kpis(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> tuple[dict[str, Any], bool]:
    """The `/kpis` body `{"rows": [...], "totals": {...}}`, and whether its percentiles are exact (from facts)."""
    if query.date_from == query.date_to and _few_facts(conn, scope, query):
        rows, totals = kpi.kpi_rows(fact_stream(conn, scope, query), query.group_by)
        return {"rows": rows, "totals": totals}, True
    rows, totals = _from_rollups(conn, scope, query)
    return {"rows": rows, "totals": totals}, False


def _few_facts(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> bool:
    """Whether one day's facts in scope are few enough to fold exactly (one branch-day always is)."""
    if scope.branch_id is not None and scope.tenants is not None and len(scope.tenants) == 1:
        return True
    matching = sa.select(facts.c.ticket_id).where(*scope.where(facts), *_filters(facts, query))
    counted = sa.select(sa.func.count()).select_from(matching.limit(EXACT_LIMIT + 1).subquery())
    return int(conn.execute(counted).scalar_one()) <= EXACT_LIMIT


def fact_stream(conn: Connection, scope: Scope, query: kpi.KpiQuery, chunk: int = 5000) -> Iterable[kpi.TicketFact]:
    """The facts matching the query as `sync.kpi.TicketFact`s, read in keyset-paged chunks (constant memory)."""
    base = sa.select(facts).where(*scope.where(facts), *_filters(facts, query))
    order = (facts.c.tenant_id, facts.c.local_date, facts.c.branch_id, facts.c.ticket_id)  # the day index's order
    after: tuple[str, ...] | None = None
    while True:
        statement = base.order_by(*order).limit(chunk)
        if after is not None:
            statement = statement.where(sa.tuple_(*order) > sa.tuple_(*(sa.literal(v) for v in after)))
        rows = conn.execute(statement).mappings().all()
        for row in rows:
            yield as_ticket_fact(dict(row), row["branch_id"])
        if len(rows) < chunk:
            return
        last = rows[-1]
        after = (last["tenant_id"], last["local_date"], last["branch_id"], last["ticket_id"])


def csv_records(conn: Connection, scope: Scope, query: kpi.KpiQuery, chunk: int = 5000) -> Iterable[list[str]]:
    """The stored export records (`csv_comma` / `csv_semicolon`) of the facts matching the query in the day index's
    order, `chunk` at a time from ONE query streamed by a server-side cursor (`yield_per`; SQLite steps its cursor):
    constant memory, no rendering and no per-page keyset query (that path, with its key columns, ran ~23,000 rows/s)."""
    record = facts.c.csv_semicolon if query.sep == ";" else facts.c.csv_comma
    order = (facts.c.tenant_id, facts.c.local_date, facts.c.branch_id, facts.c.ticket_id)
    statement = sa.select(record).where(*scope.where(facts), *_filters(facts, query)).order_by(*order)
    for part in conn.execution_options(yield_per=chunk).execute(statement).scalars().partitions():
        yield list(part)


def _aggregate(sums: Any, hours: int) -> kpi.Aggregate:
    """A merged `sync.kpi.Aggregate` from summed rollup columns (no raw values: percentiles from the histograms)."""
    return kpi.Aggregate(
        tickets=int(sums.tickets or 0),
        done=int(sums.done or 0),
        no_shows=int(sums.no_shows or 0),
        cancelled=int(sums.cancelled or 0),
        abandoned=int(sums.abandoned or 0),
        wait=kpi.Distribution(
            n=int(sums.waited or 0),
            total_s=float(sums.wait_sum or 0),
            hist=[int(getattr(sums, c) or 0) for c in WAIT_BUCKETS],
            raw=None,
        ),
        service=kpi.Distribution(
            n=int(sums.served or 0),
            total_s=float(sums.service_sum or 0),
            hist=[int(getattr(sums, c) or 0) for c in SERVICE_BUCKETS],
            raw=None,
        ),
        sla_measured=int(sums.sla_measured or 0),
        sla_met=int(sums.sla_met or 0),
        hours=_HoursOpen(hours),  # only its size counts: the distinct active hours, counted in SQL
    )


class _HoursOpen(set[str]):
    """Stands for a set of `n` distinct branch-hours in `kpi.Aggregate.hours`, whose size alone `kpi.kpi_row` reads:
    building n placeholder strings (180,000 for 30 days x 500 branches) took ~130 ms per aggregate."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0


def _daily_fits(query: kpi.KpiQuery) -> bool:
    """Whether the daily table answers the query (no hour, priority, channel or counter in it)."""
    return (query.priority is None and query.channel is None and query.counter_id is None
            and set(query.group_by) <= {"branch", "day", "service"})  # fmt: skip


def _hours_in(table: sa.Table) -> sa.ColumnElement[int]:
    """A row's hours open: how many of its a<hour> columns are above 0."""
    return sum((sa.case((table.c[h] > 0, 1), else_=0) for h in ACTIVE_HOURS), sa.literal(0))


def _open_hours(
    conn: Connection, scope: Scope, query: kpi.KpiQuery, group_by: Sequence[str]
) -> dict[tuple[Any, ...], int]:
    """Hours open per group, all services together: per branch-day, the hours with activity in its
    `analytics_branch_days` row, summed over the group's rows. One row is one branch-day, so a plain per-row sum:
    no GROUP BY over branch-days (that aggregate of 24 columns over 45,000 daily rows spilled to disk and took ~0.5 s
    of a 30-day x 500-branch query)."""
    table = branch_day_table
    group_columns = [table.c[_GROUP_COLUMN[g]] for g in group_by]
    statement = (
        sa.select(*group_columns, sa.func.sum(_hours_in(table)))
        .where(*scope.where(table), *_filters(table, query))
        .group_by(*group_columns)
    )
    return {tuple(row[:-1]): int(row[-1] or 0) for row in conn.execute(statement).all()}


class _Sums:
    """Summed measures of several rows (the totals of a grouped query, added up in Python: no second scan)."""

    def __init__(self, rows: Sequence[Any], offset: int) -> None:
        columns = list(zip(*rows, strict=True)) or [() for _ in range(offset + len(_SUMMED))]
        for i, name in enumerate(_SUMMED):  # by position, column-wise (getattr per row and measure: ~25 ms / 500 rows)
            setattr(self, name, sum(filter(None, columns[offset + i])))


def _from_daily(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Group and sum the daily rows (the totals are the groups' sums). Hours open: with a service (filtered or
    grouped by) those of the service's own daily rows, summed in the same query; else from `_open_hours`."""
    where = [*scope.where(daily), *_filters(daily, query)]
    group_columns = [daily.c[_GROUP_COLUMN[g]] for g in query.group_by]
    per_service = "service" in query.group_by or query.service_id is not None
    summed = [sa.func.sum(daily.c[name]).label(name) for name in _SUMMED]
    if per_service:
        summed.append(sa.func.sum(_hours_in(daily)).label("open_hours"))
    if not group_columns:
        totals_row = conn.execute(sa.select(*summed).where(*where)).one()
        total_hours = (
            int(totals_row.open_hours or 0) if per_service else sum(_open_hours(conn, scope, query, ()).values())
        )
        return [], kpi.kpi_row(_aggregate(totals_row, total_hours))
    grouped = conn.execute(sa.select(*group_columns, *summed).where(*where).group_by(*group_columns)).all()
    if per_service:
        hours = {tuple(row[: len(group_columns)]): int(row.open_hours or 0) for row in grouped}
    else:
        hours = _open_hours(conn, scope, query, query.group_by)
    if set(query.group_by) & {"branch", "day"} or query.service_id is not None:
        total_hours = sum(hours.values())  # each branch-day (of the one service) is in exactly one group
    else:
        total_hours = sum(_open_hours(conn, scope, query, ()).values())
    totals = kpi.kpi_row(_aggregate(_Sums(grouped, len(group_columns)), total_hours))
    rows: list[dict[str, Any]] = []
    for row in grouped:
        key = tuple(row[: len(group_columns)])
        if not row.tickets:
            continue
        values: dict[str, Any] = {kpi.GROUP_KEY[g]: v for g, v in zip(query.group_by, key, strict=True)}
        values.update(kpi.kpi_row(_aggregate(row, hours.get(key, 0))))
        rows.append(values)
    names = [kpi.GROUP_KEY[g] for g in query.group_by]
    rows.sort(key=lambda r: tuple((r[name] is None, _sortable(r[name])) for name in names))
    return rows, totals


def _from_rollups(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Group and sum the rollups in SQL: one query for the measures, one for the hours open (per group and total)."""
    if _daily_fits(query):
        return _from_daily(conn, scope, query)
    where = [*scope.where(rollups), *_filters(rollups, query)]
    group_columns = [rollups.c[_GROUP_COLUMN[g]] for g in query.group_by]
    summed = [sa.func.sum(rollups.c[name]).label(name) for name in _SUMMED]
    hour_id = (rollups.c.tenant_id, rollups.c.branch_id, rollups.c.local_date, rollups.c.local_hour)
    active = sa.select(*group_columns, *hour_id).where(*where, rollups.c.active > 0).distinct().subquery()
    active_groups = [active.c[c.name] for c in group_columns]
    totals_row = conn.execute(sa.select(*summed).where(*where)).one()
    total_hours = conn.execute(
        sa.select(sa.func.count()).select_from(
            sa.select(*hour_id).where(*where, rollups.c.active > 0).distinct().subquery()
        )
    ).scalar_one()
    totals = kpi.kpi_row(_aggregate(totals_row, int(total_hours)))
    if not group_columns:
        return [], totals
    sums = conn.execute(sa.select(*group_columns, *summed).where(*where).group_by(*group_columns)).all()
    hours = {
        tuple(row[:-1]): int(row[-1])
        for row in conn.execute(sa.select(*active_groups, sa.func.count()).group_by(*active_groups)).all()
    }
    rows: list[dict[str, Any]] = []
    for row in sums:
        key = tuple(row[: len(group_columns)])
        if not row.tickets:
            continue  # only completions of tickets created outside the filter
        values: dict[str, Any] = {
            kpi.GROUP_KEY[g]: (None if g == "counter" and v == "" else v)
            for g, v in zip(query.group_by, key, strict=True)
        }
        values.update(kpi.kpi_row(_aggregate(row, hours.get(key, 0))))
        rows.append(values)
    rows.sort(
        key=lambda r: tuple((r[kpi.GROUP_KEY[g]] is None, _sortable(r[kpi.GROUP_KEY[g]])) for g in query.group_by)
    )
    return rows, totals


def _sortable(value: Any) -> Any:
    return "" if value is None else value


def branch_days(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> Sequence[Any]:
    """(tenant, branch, date, tickets) of the rollups in range: what a report's summary table lists."""
    return conn.execute(
        sa.select(rollups.c.tenant_id, rollups.c.branch_id, rollups.c.local_date, sa.func.sum(rollups.c.tickets))
        .where(*scope.where(rollups), *_filters(rollups, query))
        .group_by(rollups.c.tenant_id, rollups.c.branch_id, rollups.c.local_date)
        .order_by(rollups.c.tenant_id, rollups.c.branch_id, rollups.c.local_date)
    ).all()


def wait_histogram(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> list[tuple[str, int]]:
    """The merged wait histogram of the rollups in range: (bucket label in minutes, tickets)."""
    where = [*scope.where(rollups), *_filters(rollups, query)]
    sums = conn.execute(sa.select(*(sa.func.sum(rollups.c[name]) for name in WAIT_BUCKETS)).where(*where)).one()
    edges = kpi.BUCKET_EDGES_MIN
    labels = [f"{lo}-{edges[i + 1]}" if i + 1 < len(edges) else f"{lo}+" for i, lo in enumerate(edges)]
    return [(label, int(n or 0)) for label, n in zip(labels, sums, strict=True)]


def arrivals(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> list[tuple[int, int, int]]:
    """Per local hour: (hour, tickets created in it, tickets done in it) over the range — the heat map's columns
    summed. Done in an hour is completed in that hour (a rollup row's `active` - `tickets`), not done among the
    tickets created in it."""
    where = [*scope.where(rollups), *_filters(rollups, query)]
    rows = conn.execute(
        sa.select(rollups.c.local_hour, sa.func.sum(rollups.c.tickets), sa.func.sum(rollups.c.active))
        .where(*where)
        .group_by(rollups.c.local_hour)
        .order_by(rollups.c.local_hour)
    ).all()
    hours = [(int(h), int(n or 0), int(a or 0) - int(n or 0)) for h, n, a in rows]
    return [(h, n, d) for h, n, d in hours if n or d]


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HEAT_LEVELS = 5  # css classes heat-0 .. heat-5, as on the appliance's report page


def heat_level(value: int, top: int) -> int:
    """A heat class 0..HEAT_LEVELS for a count relative to the busiest cell."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, round(HEAT_LEVELS * value / top))


def heat_map(conn: Connection, scope: Scope, query: kpi.KpiQuery) -> dict[str, Any]:
    """Arrivals and tickets served per branch-local weekday x hour over the range, only the hours with any activity
    (the appliance's report page shape). From the hourly rollups: a rollup row's `active` counts the tickets created
    plus those done in its hour, so served in an hour = active - tickets."""
    where = [*scope.where(rollups), *_filters(rollups, query)]
    rows = conn.execute(
        sa.select(rollups.c.local_date, rollups.c.local_hour, sa.func.sum(rollups.c.tickets),
                  sa.func.sum(rollups.c.active))
        .where(*where)
        .group_by(rollups.c.local_date, rollups.c.local_hour)
    ).all()  # fmt: skip
    arrivals: dict[tuple[int, int], int] = {}
    served: dict[tuple[int, int], int] = {}
    for day, hour, tickets, active in rows:
        key = (date.fromisoformat(day).weekday(), int(hour))
        arrivals[key] = arrivals.get(key, 0) + int(tickets or 0)
        served[key] = served.get(key, 0) + int(active or 0) - int(tickets or 0)
    hours = sorted({h for (_, h), n in [*arrivals.items(), *served.items()] if n})
    top = max([*arrivals.values(), 0])
    out = []
    for wd, name in enumerate(WEEKDAYS):
        cells = [{"hour": h, "arrivals": arrivals.get((wd, h), 0), "served": served.get((wd, h), 0),
                  "level": heat_level(arrivals.get((wd, h), 0), top)} for h in hours]  # fmt: skip
        out.append({"weekday": name, "cells": cells, "total": sum(c["arrivals"] for c in cells)})
    return {"hours": hours, "rows": out, "max": top}


CURSOR_PARTS = ("tenant_id", "branch_id", "ticket_id")


def encode_cursor(tenant: str, branch_id: str, ticket_id: str) -> str:
    """An opaque page cursor for (tenant, branch, ticket)."""
    return base64.urlsafe_b64encode(json.dumps([tenant, branch_id, ticket_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    """The key behind a cursor; KpiQueryError when it is not one of ours."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, list) and len(value) == len(CURSOR_PARTS) and all(isinstance(v, str) for v in value):
            return value[0], value[1], value[2]
    except (ValueError, TypeError):
        pass
    raise kpi.KpiQueryError("after", "not a valid cursor")


def ticket_page(
    conn: Connection,
    scope: Scope,
    query: kpi.KpiQuery,
    *,
    hour: int | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One page of the facts matching the query (in key order), each with the `cursor` of the next page."""
    order = (facts.c.tenant_id, facts.c.branch_id, facts.c.ticket_id)
    statement = sa.select(facts).where(*scope.where(facts), *_filters(facts, query)).order_by(*order).limit(limit)
    if hour is not None:
        statement = statement.where(facts.c.local_hour == hour)
    if after:
        statement = statement.where(sa.tuple_(*order) > sa.tuple_(*(sa.literal(v) for v in decode_cursor(after))))
    rows = [dict(row) for row in conn.execute(statement).mappings()]
    for row in rows:
        row["cursor"] = encode_cursor(row["tenant_id"], row["branch_id"], row["ticket_id"])
    return rows
