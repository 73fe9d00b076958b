"""Opening the appliance database (WAL, synchronous=FULL) and its schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.store.datadir import create_private, ensure_private

MIGRATIONS = Path(__file__).with_name("migrations")


def migration_scripts() -> list[tuple[int, str]]:
    """Every migration as (number, SQL) from `NNNN_what.sql`, in order; user_version is the last number applied."""
    found = sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    numbers = [int(p.name[:4]) for p in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number in {MIGRATIONS}")
    return [(n, p.read_text(encoding="utf-8")) for n, p in zip(numbers, found, strict=True)]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN IMMEDIATE ourselves), WAL and FULL sync.

    A new database file is created 0600 first: SQLite gives its -wal and -shm files the database file's mode.
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations numbered above user_version, each in its own transaction; returns the version."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    scripts = migration_scripts()
    for version, script in (m for m in scripts if m[0] > current):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return scripts[-1][0] if scripts else current


def _statements(script: str) -> list[str]:
    """Split a migration into statements (comments dropped), keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        if line.lstrip().startswith("--"):
            continue
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def open_database(data_dir: Path) -> sqlite3.Connection:
    """Create the data dir (0700) and database (0600) if needed, tighten an older install's modes, migrate, and
    return the writer connection."""
    ensure_private(data_dir)
    conn = connect(data_dir / "qms.sqlite3")
    migrate(conn)
    return conn
