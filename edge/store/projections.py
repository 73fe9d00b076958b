"""Projection tables (tickets, counters, engine bookkeeping, config) written in the event's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from edge.engine.model import (
    ACTIVE_STATUSES,
    CounterState,
    State,
    Ticket,
    bookkeeping_decoder,
    bookkeeping_of,
    counter_decoder,
    state_from,
    ticket_decoder,
)
from sync.contract_config import BranchConfig, config_decoder

_encoder = msgspec.json.Encoder()


def write_tickets(conn: sqlite3.Connection, tickets: Iterable[Ticket]) -> None:
    """Upsert ticket rows."""
    conn.executemany(
        "INSERT INTO tickets (ticket_id, ticket_number, service_id, status, business_date, created_at, updated_at,"
        " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO UPDATE SET"
        " ticket_number = excluded.ticket_number, service_id = excluded.service_id, status = excluded.status,"
        " business_date = excluded.business_date, updated_at = excluded.updated_at, data = excluded.data",
        [
            (
                t.ticket_id,
                t.ticket_number,
                t.service_id,
                t.status,
                t.business_date,
                t.created_at.isoformat(),
                t.updated_at.isoformat(),
                _encoder.encode(t),
            )
            for t in tickets
        ],
    )


def write_counters(conn: sqlite3.Connection, counters: Iterable[CounterState], removed: Iterable[str] = ()) -> None:
    """Upsert counter rows and drop removed counters."""
    conn.executemany(
        "INSERT INTO counters (counter_id, data) VALUES (?, ?)"
        " ON CONFLICT (counter_id) DO UPDATE SET data = excluded.data",
        [(c.counter_id, _encoder.encode(c)) for c in counters],
    )
    conn.executemany("DELETE FROM counters WHERE counter_id = ?", [(cid,) for cid in removed])


def write_bookkeeping(conn: sqlite3.Connection, state: State) -> None:
    """Persist the engine's scalar state (without the config, stored per version)."""
    book = msgspec.structs.replace(bookkeeping_of(state), config=None)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('engine', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_encoder.encode(book).decode(),),
    )


def write_config(conn: sqlite3.Connection, config: BranchConfig, seq: int) -> None:
    """Store a configuration version."""
    conn.execute(
        "INSERT OR REPLACE INTO config (version, seq, doc) VALUES (?, ?, ?)",
        (config.version, seq, _encoder.encode(config)),
    )


def current_config(conn: sqlite3.Connection) -> BranchConfig | None:
    """The newest applied configuration."""
    row = conn.execute("SELECT doc FROM config ORDER BY version DESC LIMIT 1").fetchone()
    return config_decoder.decode(row[0]) if row else None


def load_state(conn: sqlite3.Connection) -> State:
    """The engine state from the projections: bookkeeping, config, live tickets and today's, counters."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
    if row is None:
        return State()
    book = bookkeeping_decoder.decode(row[0])
    book.config = current_config(conn)
    active = tuple(sorted(ACTIVE_STATUSES))
    tickets = [
        ticket_decoder.decode(data)
        for (data,) in conn.execute(
            f"SELECT data FROM tickets WHERE status IN ({','.join('?' * len(active))}) OR business_date >= ?",  # noqa: S608 - placeholders only
            (*active, book.business_date),
        )
    ]
    counters = [counter_decoder.decode(data) for (data,) in conn.execute("SELECT data FROM counters")]
    return state_from(book, tickets, counters)


def all_ticket_rows(conn: sqlite3.Connection) -> dict[str, bytes]:
    """Every ticket row's data, for comparing a rebuild."""
    return dict(conn.execute("SELECT ticket_id, data FROM tickets"))


def clear(conn: sqlite3.Connection) -> None:
    """Empty every projection (inside the caller's transaction) before a rebuild writes them again."""
    for table in ("tickets", "counters", "config"):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    conn.execute("DELETE FROM meta WHERE key = 'engine'")
