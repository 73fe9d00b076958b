"""Opening the appliance database (WAL, synchronous=FULL) and its schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA: list[str] = [
    # v1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        ticket_id TEXT,
        request_id TEXT,
        actor TEXT NOT NULL,
        body BLOB NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_ticket ON events (ticket_id);
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TABLE tickets (
        ticket_id TEXT PRIMARY KEY,
        ticket_number TEXT NOT NULL,
        service_id TEXT NOT NULL,
        status TEXT NOT NULL,
        business_date TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX tickets_status ON tickets (status, service_id);
    CREATE INDEX tickets_day ON tickets (business_date, ticket_number);
    CREATE TABLE counters (counter_id TEXT PRIMARY KEY, data BLOB NOT NULL);
    CREATE TABLE config (version INTEGER PRIMARY KEY, seq INTEGER NOT NULL, doc BLOB NOT NULL);
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        response BLOB NOT NULL,
        seq INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'device')),
        counters TEXT NOT NULL DEFAULT '[]',
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    """,
]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN IMMEDIATE ourselves), WAL and FULL sync."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in enumerate(SCHEMA[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(SCHEMA)


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def open_database(data_dir: Path) -> sqlite3.Connection:
    """Create the data dir and database if needed, migrate, and return the writer connection."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(data_dir / "qms.sqlite3")
    migrate(conn)
    return conn
