"""Opening the appliance database (WAL, synchronous=FULL) and its schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")


def migration_scripts() -> list[tuple[str, str]]:
    """Every migration as (file name, SQL), in file-name order (`NNNN_what.sql`); user_version counts applied ones."""
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


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
    scripts = migration_scripts()
    for version, (_name, script) in enumerate(scripts[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(scripts)


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
    """Create the data dir and database if needed, migrate, and return the writer connection."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(data_dir / "qms.sqlite3")
    migrate(conn)
    return conn
