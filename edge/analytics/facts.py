"""The appliance's fact projection: one row per ticket, folded from the event log behind a cursor.

It follows the log like every other consumer (STYLE.md: a tracking row per consumer): after each commit the writer
runs `catch_up` in its own transaction, which folds the events past the cursor with `sync.kpi.fold_event` and moves
the cursor. So the rows are a pure function of the log: `rebuild` (from seq 0) gives the same rows, a crash between
the command's commit and the catch-up only delays them, and events from another process are picked up the same way.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import msgspec

from edge.store.log import read_events
from sync.contract import ConfigApplied, Event
from sync.contract_config import BranchConfig, config_decoder
from sync.kpi import FactSource, KpiQuery, TicketFact, csv_cells, csv_line, fact_of, fold_event

_encoder = msgspec.json.Encoder()
_source_decoder = msgspec.json.Decoder(FactSource)
fact_decoder = msgspec.json.Decoder(TicketFact)
CATCH_UP_BATCH = 5000


@dataclass
class _Config:
    """The configuration in force while folding: the zone for local dates and each service's SLA."""

    config: BranchConfig | None

    @property
    def version(self) -> int | None:
        """The version, None before the first configuration."""
        return self.config.version if self.config else None

    @property
    def timezone(self) -> str | None:
        """The branch's zone name (the default zone before any configuration)."""
        return self.config.timezone if self.config else None

    def sla_minutes(self, service_id: str) -> int | None:
        """The SLA of a service, None for a service the configuration does not know."""
        service = self.config.service(service_id) if self.config else None
        return service.sla_minutes if service else None


def _config_at(conn: sqlite3.Connection, version: int | None) -> _Config:
    """The stored configuration of a version (kept per version in the `config` projection)."""
    if version is None:
        return _Config(None)
    row = conn.execute("SELECT doc FROM config WHERE version = ?", (version,)).fetchone()
    return _Config(config_decoder.decode(row[0]) if row else None)


def _write(conn: sqlite3.Connection, sources: Iterable[FactSource], tz: str | None) -> None:
    """Upsert the fact rows of folded sources."""
    rows = []
    csv_rows = []
    for src in sources:
        fact = fact_of(src, tz)
        cells = csv_cells(fact)
        created = fact.created_at.isoformat() if fact.created_at else ""
        rows.append(
            (
                fact.ticket_id,
                f"{fact.business_date or ''}|{created}|{fact.ticket_id}",
                fact.business_date,
                fact.hour,
                fact.service_id,
                fact.counter_id,
                fact.priority,
                fact.channel,
                fact.status,
                fact.created_at.isoformat() if fact.created_at else None,
                fact.wait_seconds,
                fact.service_seconds,
                None if fact.sla_met is None else int(fact.sla_met),
                fact.served_by,
                fact.closed_date,
                _encoder.encode(fact),
                _encoder.encode(src),
            )
        )
        csv_rows.append(
            (
                rows[-1][1],
                fact.ticket_id,
                fact.service_id,
                fact.counter_id,
                fact.priority,
                fact.channel,
                csv_line(cells, ","),
                csv_line(cells, ";"),
            )
        )
    conn.executemany(
        "INSERT OR REPLACE INTO ticket_facts (ticket_id, sort_key, business_date, hour, service_id, counter_id,"
        " priority, channel, status, created_at, wait_seconds, service_seconds, sla_met, served_by, closed_date, fact,"
        " source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    # The sort key moves only if the creation time arrived late; the old record goes first either way.
    conn.executemany("DELETE FROM ticket_fact_csv WHERE ticket_id = ?", [(r[1],) for r in csv_rows])
    conn.executemany(
        "INSERT INTO ticket_fact_csv (sort_key, ticket_id, service_id, counter_id, priority, channel, csv_comma,"
        " csv_semicolon) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        csv_rows,
    )


def _fold(conn: sqlite3.Connection, events: Iterable[Event], config: _Config) -> tuple[int | None, _Config]:
    """Fold events into the stored sources (one batch); returns the last seq folded and the config after it."""
    touched: dict[str, FactSource] = {}
    last: int | None = None
    for event in events:
        last = event.seq
        if isinstance(event, ConfigApplied):
            _write(conn, touched.values(), config.timezone)  # facts folded so far keep the zone they were folded in
            touched.clear()
            config = _Config(event.config)
            continue
        if event.ticket_id is None:
            continue
        previous = touched.get(event.ticket_id)
        if previous is None:
            row = conn.execute("SELECT source FROM ticket_facts WHERE ticket_id = ?", (event.ticket_id,)).fetchone()
            previous = _source_decoder.decode(row[0]) if row else None
        folded = fold_event(previous, event, config.sla_minutes)
        if folded is not None:
            touched[event.ticket_id] = folded
    _write(conn, touched.values(), config.timezone)
    return last, config


def catch_up(conn: sqlite3.Connection, limit: int | None = None) -> int:
    """Fold the events past the cursor, at most `limit` (inside the caller's transaction); returns how many."""
    seq, version = conn.execute("SELECT seq, config_version FROM facts_cursor WHERE id = 1").fetchone()
    if seq > (conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0):
        # The log is shorter than what was folded (an older backup restored under newer facts): start again.
        conn.execute("DELETE FROM ticket_facts")
        conn.execute("DELETE FROM ticket_fact_csv")
        seq, version = 0, None
        conn.execute("UPDATE facts_cursor SET seq = 0, config_version = NULL WHERE id = 1")
    config = _config_at(conn, version)
    folded = 0
    while limit is None or folded < limit:
        size = CATCH_UP_BATCH if limit is None else min(CATCH_UP_BATCH, limit - folded)
        batch = read_events(conn, seq, size)
        if not batch:
            break
        last, config = _fold(conn, batch, config)
        assert last is not None
        folded += len(batch)
        seq = last
        conn.execute("UPDATE facts_cursor SET seq = ?, config_version = ? WHERE id = 1", (seq, config.version))
    return folded


def rebuild(conn: sqlite3.Connection) -> int:
    """Drop every fact row and fold the whole log again (inside the caller's transaction)."""
    conn.execute("DELETE FROM ticket_facts")
    conn.execute("DELETE FROM ticket_fact_csv")
    conn.execute("UPDATE facts_cursor SET seq = 0, config_version = NULL WHERE id = 1")
    return catch_up(conn)


def cursor(conn: sqlite3.Connection) -> int:
    """The seq the facts have folded up to."""
    return int(conn.execute("SELECT seq FROM facts_cursor WHERE id = 1").fetchone()[0])


def _dimensions(query: KpiQuery) -> tuple[str, list[object]]:
    """SQL filter of a query's dimensions (service, priority, channel, counter) over the fact columns."""
    clauses = ["1 = 1"]
    params: list[object] = []
    for column, value in (
        ("service_id", query.service_id),
        ("priority", query.priority),
        ("channel", query.channel),
        ("counter_id", query.counter_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def _day_bounds(query: KpiQuery) -> tuple[str, str]:
    """The sort-key range of the query's local days: keys are `YYYY-MM-DD|...`, so from-date <= key < day after."""
    return query.date_from.isoformat(), (query.date_to + timedelta(days=1)).isoformat()


def _where(query: KpiQuery) -> tuple[str, list[object]]:
    """SQL filter of a query over the fact columns (dates are the branch-local creation date, via the sort key)."""
    dims, params = _dimensions(query)
    return f"sort_key >= ? AND sort_key < ? AND {dims}", [*_day_bounds(query), *params]


def facts(
    conn: sqlite3.Connection, query: KpiQuery, extra: str = "", extra_params: Iterable[object] = ()
) -> list[TicketFact]:
    """The facts a query selects, in creation order (`extra`: one more SQL condition on the fact columns)."""
    where, params = _where(query)
    if extra:
        where += f" AND ({extra})"
    sql = f"SELECT fact FROM ticket_facts WHERE {where} ORDER BY sort_key"  # noqa: S608 - fixed columns, values bound
    return [fact_decoder.decode(blob) for (blob,) in conn.execute(sql, [*params, *extra_params])]


def csv_records(conn: sqlite3.Connection, query: KpiQuery, chunk: int = 2000) -> Iterator[list[str]]:
    """The CSV records (CRLF-terminated, in the query's separator) of the selected tickets, in creation order, a chunk
    at a time (keyset paging: constant memory).

    Exactly one lower bound on the clustered key per page (the last key read, first the range's start), so every page
    is an index seek where the previous one ended, never a rescan from the range's start.
    """
    dims, params = _dimensions(query)
    after, upper = _day_bounds(query)  # the start sorts before every key of that day ("YYYY-MM-DD|...")
    column = "csv_semicolon" if query.sep == ";" else "csv_comma"
    sql = (
        f"SELECT sort_key, {column} FROM ticket_fact_csv WHERE sort_key > ? AND sort_key < ? AND {dims}"  # noqa: S608 - fixed columns, values bound
        " ORDER BY sort_key LIMIT ?"
    )
    while True:
        rows = conn.execute(sql, [after, upper, *params, chunk]).fetchall()
        if not rows:
            return
        yield [r[1] for r in rows]
        after = rows[-1][0]


def rebuild_now(conn: sqlite3.Connection) -> tuple[int, int]:
    """Rebuild the facts from the whole log in one transaction of its own (`qms-edge rebuild`, the appliance
    stopped); returns (events folded, fact rows that differed from the stored ones)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = dict(conn.execute("SELECT ticket_id, fact FROM ticket_facts").fetchall())
        folded = rebuild(conn)
        after = dict(conn.execute("SELECT ticket_id, fact FROM ticket_facts").fetchall())
        differing = sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return folded, differing


RETENTION_ENV = "QMS_FACTS_RETENTION_DAYS"  # days of facts kept for reports (0: keep them all)
DEFAULT_RETENTION_DAYS = 400  # a year and a month: this year's and last year's same-month reports


def retention_days() -> int:
    """How many branch-local days of facts the appliance keeps (QMS_FACTS_RETENTION_DAYS; default 400, 0 = all)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if not raw.isdigit():
        raise ValueError(f"{RETENTION_ENV} must be a whole number of days (0 keeps every fact), not {raw!r}")
    return int(raw)


def prune(conn: sqlite3.Connection, today: date, days: int) -> int:
    """Delete the facts of tickets created more than `days` branch-local days before `today` (inside the caller's
    transaction; 0 keeps everything); returns how many went. The event log keeps them: a rebuild brings them back
    until the next prune."""
    if days <= 0:
        return 0
    first_kept = (today - timedelta(days=days - 1)).isoformat()  # sort keys start with the business date
    conn.execute("DELETE FROM ticket_fact_csv WHERE sort_key < ?", (first_kept,))
    return conn.execute("DELETE FROM ticket_facts WHERE sort_key < ?", (first_kept,)).rowcount
