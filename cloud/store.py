"""The cloud store (SQLAlchemy Core; SQLite by default, PostgreSQL in production): replicated events, per-branch
tracking (next seq, last hash, link problems), parked out-of-order events, a live ticket projection (with what
ticket status links need: queue order, language, counter, offline ids, number leases), config versions, HQ console
accounts.

Applying is idempotent by `(branch_id, seq)`: the branch row is the tracking record and is updated in the same
transaction as the events it accounts for, so a redelivered message is recognised and skipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

branches = sa.Table(
    "branches",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("next_seq", sa.BigInteger, nullable=False, default=1),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False, default=0),
    sa.Column("duplicates", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_event_at", sa.String(40)),  # occurred_at of the newest applied event (UTC, RFC 3339)
    sa.Column("last_received_at", sa.String(40)),
    sa.Column("config_version", sa.Integer),  # the version the branch reported applying (config.applied)
    sa.Column("config_rejected_version", sa.Integer),
    sa.Column("config_rejected_reason", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, default="ok"),  # ok | gap | chain_broken
    sa.Column("problem", sa.Text),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("occurred_at", sa.String(40), nullable=False),
    sa.Column("ticket_id", sa.String(64)),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
)
sa.Index("events_type", events.c.type)

parked = sa.Table(
    "parked_events",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("ticket_number", sa.String(16), nullable=False),
    sa.Column("business_date", sa.String(10), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
sa.Index("tickets_status", tickets.c.branch_id, tickets.c.status, tickets.c.service_id)

# What a ticket's public status page needs beyond `tickets` (kept beside it so `tickets` keeps its columns).
ticket_links = sa.Table(
    "ticket_links",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("queue_order", sa.BigInteger, nullable=False),  # the event's `order`: who is ahead in the service
    sa.Column("request_id", sa.String(128)),  # an offline ticket's temporary id (`off-<lease>-<seq>`)
    sa.Column("lang", sa.String(8)),
    sa.Column("counter_id", sa.String(64)),  # the counter of its newest ticket.called / ticket.recalled
)
sa.Index("ticket_links_request", ticket_links.c.branch_id, ticket_links.c.request_id)

number_leases = sa.Table(  # kiosk number leases (numbers.leased): an offline ticket's number before it synced
    "number_leases",
    metadata,
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("lease_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("first_seq", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
)

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("kv_revision", sa.BigInteger),
    sa.Column("created_at", sa.String(40), nullable=False),
)

branch_credentials = sa.Table(
    "branch_credentials",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

# HQ console accounts (`qms-cloud users …`; cloud/hq_users.py). `tenants` is a JSON list; `["*"]` = every tenant.
hq_users = sa.Table(
    "hq_users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),  # argon2id
    sa.Column("role", sa.String(16), nullable=False),  # hq_admin | hq_viewer
    sa.Column("tenants", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)


def utcnow_iso() -> str:
    """Now, UTC, RFC 3339."""
    return datetime.now(UTC).isoformat()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL, a busy timeout, and manual transactions so `BEGIN IMMEDIATE` can be issued (several consumers)."""
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode = WAL")
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA synchronous = NORMAL")


def _sqlite_begin(conn: Connection) -> None:
    """Take the write lock at BEGIN: a deferred transaction that upgrades later can fail with SQLITE_BUSY."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str) -> Engine:
    """An engine for `sqlite:///path` or `postgresql+psycopg://…`, with the schema created."""
    engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    metadata.create_all(engine)
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction (committed on success, rolled back on error)."""
    with engine.begin() as conn:
        yield conn


def insert_ignore(engine_or_conn: Engine | Connection, table: sa.Table) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` for the dialect in use (the one dialect-specific construct)."""
    if engine_or_conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()
