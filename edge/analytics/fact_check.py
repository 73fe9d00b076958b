"""`qms-edge rebuild --check` for the report facts: fold the log again beside the live rows, compare, write nothing.

The refold runs in TEMP tables named like the live ones (`ticket_facts`, `ticket_fact_csv`, `facts_cursor`): SQLite
resolves an unqualified name in the temp schema first, so `edge.analytics.facts.catch_up` itself folds into them while
it reads the log and the configurations from the database. Nothing takes the database's write lock (the check runs
beside a running appliance), and one read transaction gives the log, the live rows and their cursor as of one moment.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from edge.analytics import facts
from edge.engine.numbering import business_date
from sync.contract_config import BranchConfig
from sync.kpi import DEFAULT_TIMEZONE

TABLES = ("ticket_facts", "ticket_fact_csv", "facts_cursor")
BLOBS = ("fact", "source")  # JSON documents: compared field by field, after the plain columns


@dataclass(frozen=True)
class FactCheck:
    """How many tickets' facts were compared, how many differ, and the first difference in words (None: identical)."""

    compared: int
    differing: int
    first: str | None


def check_now(conn: sqlite3.Connection, config: BranchConfig | None) -> FactCheck:
    """`check` for the branch's today (its configured zone) and the appliance's retention (QMS_FACTS_RETENTION_DAYS)."""
    zone = config.timezone if config else DEFAULT_TIMEZONE
    return check(conn, date.fromisoformat(business_date(datetime.now(UTC), zone)), facts.retention_days())


def check(conn: sqlite3.Connection, today: date, retention_days: int) -> FactCheck:
    """Compare the live fact rows (and their CSV records) with a refold of the log up to the live cursor. Tickets the
    retention has dropped (created before `today` - `retention_days` + 1) are not missing."""
    conn.execute("BEGIN")
    try:
        live = _rows(conn, "main")
        csv = _csv(conn, "main")
        upto = facts.cursor(conn)  # the live follower may lag the log by a commit: fold as far as it did
        _shadow(conn)
        facts.catch_up(conn, limit=upto)  # seqs are gapless from 1: the first `upto` events
        return _compare(live, _rows(conn, "temp"), csv, _csv(conn, "temp"), _first_kept(today, retention_days))
    finally:
        conn.execute("ROLLBACK")
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _shadow(conn: sqlite3.Connection) -> None:
    """TEMP copies of the fact tables' definitions (keys included: the fold relies on INSERT OR REPLACE)."""
    for table in TABLES:
        query = "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?"
        (sql,) = conn.execute(query, (table,)).fetchone()
        conn.execute(sql.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
    conn.execute("INSERT INTO temp.facts_cursor (id, seq, config_version) VALUES (1, 0, NULL)")


def _rows(conn: sqlite3.Connection, schema: str) -> dict[str, dict[str, Any]]:
    cursor = conn.execute(f"SELECT * FROM {schema}.ticket_facts")  # noqa: S608 - schema is main or temp
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def _csv(conn: sqlite3.Connection, schema: str) -> dict[str, tuple[Any, ...]]:
    sql = f"SELECT ticket_id, sort_key, csv_comma, csv_semicolon FROM {schema}.ticket_fact_csv"  # noqa: S608
    return {row[0]: tuple(row[1:]) for row in conn.execute(sql)}


def _first_kept(today: date, days: int) -> str:
    """The sort key before which the retention deletes facts ("" keeps them all, as `facts.prune`)."""
    return (today - timedelta(days=days - 1)).isoformat() if days > 0 else ""


def _compare(live: dict[str, dict[str, Any]], folded: dict[str, dict[str, Any]], live_csv: dict[str, tuple[Any, ...]],
             folded_csv: dict[str, tuple[Any, ...]], first_kept: str) -> FactCheck:  # fmt: skip
    """Every ticket in creation order (the sort key); the first difference described."""
    order = {tid: row["sort_key"] for tid, row in (folded | live).items()}
    found: list[str] = []
    for tid in sorted(order, key=lambda t: (order[t], t)):
        mine, theirs = live.get(tid), folded.get(tid)
        if mine is None and theirs is not None and theirs["sort_key"] < first_kept:
            continue  # dropped by the retention (QMS_FACTS_RETENTION_DAYS); the log keeps the ticket
        if (problem := _row_difference(tid, mine, theirs)) is None and live_csv.get(tid) != folded_csv.get(tid):
            problem = f"ticket {tid}: its CSV record differs from the log's"
        if problem is not None:
            found.append(problem)
    return FactCheck(compared=len(order), differing=len(found), first=found[0] if found else None)


def _row_difference(tid: str, live: dict[str, Any] | None, folded: dict[str, Any] | None) -> str | None:
    """The first column (or field of the fact document) where a live row and the refolded one disagree."""
    if live is None or folded is None:
        return f"ticket {tid}: no fact row here, the log has one" if live is None else (
            f"ticket {tid}: a fact row the log does not have")  # fmt: skip
    for column in (c for c in folded if c not in BLOBS):
        if live.get(column) != folded[column]:
            return f"ticket {tid}: {column} is {live.get(column)!r} here, {folded[column]!r} from the log"
    for column in BLOBS:
        if live.get(column) != folded[column]:
            return f"ticket {tid}: {_blob_difference(column, live.get(column), folded[column])}"
    return None


def _blob_difference(column: str, live: Any, folded: Any) -> str:
    """The first field of a JSON document that differs (the whole column when the live one does not decode)."""
    try:
        mine, theirs = msgspec.json.decode(live), msgspec.json.decode(folded)
    except (msgspec.DecodeError, TypeError):
        return f"{column} does not decode here"
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(mine.keys() | theirs.keys()):
            if mine.get(key) != theirs.get(key):
                return f"{column}.{key} is {mine.get(key)!r} here, {theirs.get(key)!r} from the log"
    return f"{column} differs from the log's"
