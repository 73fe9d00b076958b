"""The cloud store (SQLAlchemy Core; SQLite by default, PostgreSQL in production): replicated events, per-branch
tracking (next seq, last hash, link problems), parked out-of-order events, a live ticket projection (with what
ticket status links need: queue order, language, counter, offline ids, number leases), config versions, HQ console
accounts.

Every branch-scoped row is keyed by `(tenant_id, branch_id)`: branch ids are unique only inside a tenant. Applying is
idempotent by `(tenant_id, branch_id, seq)`: the branch row is the tracking record and is updated in the same
transaction as the events it accounts for, so a redelivered message is recognised and skipped.

The schema is owned by the Alembic revisions in `cloud/migrations/versions/`; `create_store_engine` upgrades the
database to the newest one (so does `qms-cloud db upgrade`). `metadata` here mirrors the newest revision.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from sync.contract import GENESIS_HASH

metadata = sa.MetaData()
MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x716D73  # PostgreSQL advisory lock key held while upgrading ("qms")

branches = sa.Table(
    "branches",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("next_seq", sa.BigInteger, nullable=False, default=1),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False, default=0),
    sa.Column("duplicates", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_event_at", sa.String(40)),  # occurred_at of the newest applied event (UTC, RFC 3339)
    sa.Column("last_received_at", sa.String(40)),
    sa.Column("config_version", sa.Integer),  # the version the branch reported applying (config.applied)
    sa.Column("config_rejected_version", sa.Integer),
    sa.Column("config_rejected_reason", sa.Text),
    sa.Column("config_hash", sa.String(64)),  # content hash of the version it runs (sync.contract_config.config_hash)
    sa.Column("config_rejected_hash", sa.String(64)),  # and of the last one it refused
    sa.Column("status", sa.String(16), nullable=False, default="ok"),  # ok | gap | chain_broken
    sa.Column("problem", sa.Text),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
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
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
    # A sealed ticket.created's contact key (cloud.ops.pii) while the event waits here for its predecessor: the
    # key came beside the message, which is acknowledged once parked. Deleted with the row when it is applied.
    sa.Column("contact_key", sa.String(64), nullable=True),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("ticket_number", sa.String(16), nullable=False),
    sa.Column("business_date", sa.String(10), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
sa.Index("tickets_status", tickets.c.status, tickets.c.tenant_id, tickets.c.branch_id, tickets.c.service_id)

# What a ticket's public status page needs beyond `tickets` (kept beside it so `tickets` keeps its columns).
ticket_links = sa.Table(
    "ticket_links",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("queue_order", sa.BigInteger, nullable=False),  # the event's `order`: who is ahead in the service
    sa.Column("request_id", sa.String(128)),  # an offline ticket's temporary id (`off-<lease>-<seq>`)
    sa.Column("lang", sa.String(8)),
    sa.Column("counter_id", sa.String(64)),  # the counter of its newest ticket.called / ticket.recalled
)
sa.Index("ticket_links_request", ticket_links.c.request_id, ticket_links.c.tenant_id, ticket_links.c.branch_id)

number_leases = sa.Table(  # kiosk number leases (numbers.leased): an offline ticket's number before it synced
    "number_leases",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("lease_id", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("first_seq", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
)

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("kv_revision", sa.BigInteger),
    sa.Column("config_hash", sa.String(64)),  # sync.contract_config.config_hash of `doc`
    sa.Column("created_at", sa.String(40), nullable=False),
)

# The newest heartbeat of each branch (cloud/liveness.py): online, offline since …, or never connected.
branch_liveness = sa.Table(
    "branch_liveness",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("last_beat_at", sa.String(40), nullable=False),  # when the hub received it (UTC, RFC 3339)
    sa.Column("sent_at", sa.String(40), nullable=False),  # the branch's clock
    sa.Column("interval_seconds", sa.Float, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("acked_seq", sa.BigInteger, nullable=False),
    sa.Column("lag_events", sa.BigInteger, nullable=False),
    sa.Column("software_version", sa.String(64), nullable=False),
    sa.Column("beats", sa.BigInteger, nullable=False),
)

branch_credentials = sa.Table(
    "branch_credentials",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
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


def branch_key(table: sa.Table, tenant: str, branch_id: str) -> sa.ColumnElement[bool]:
    """`table`'s rows of one branch: `tenant_id = … AND branch_id = …`."""
    return sa.and_(table.c.tenant_id == tenant, table.c.branch_id == branch_id)


def register_branch(conn: Connection, tenant: str, branch_id: str) -> None:
    """Make the branch's tracking row if it has none (at `branch add`, or at its first event): next seq 1."""
    conn.execute(_registration(conn.dialect.name), {"r_tenant": tenant, "r_branch": branch_id, "r_at": utcnow_iso()})


@functools.cache
def _registration(dialect: str) -> Any:
    """`register_branch`'s statement, built once per dialect (the consumer runs it for every batch)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(branches)
        .values(
            tenant_id=sa.bindparam("r_tenant"), branch_id=sa.bindparam("r_branch"), next_seq=1,
            last_hash=GENESIS_HASH, events=0, duplicates=0, status="ok", updated_at=sa.bindparam("r_at"),
        )
        .on_conflict_do_nothing()
    )  # fmt: skip


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
        dbapi_conn.execute("PRAGMA secure_delete = ON")  # purged contacts are overwritten, not left in free pages


def _sqlite_begin(conn: Connection) -> None:
    """Take the write lock at BEGIN: a deferred transaction that upgrades later can fail with SQLITE_BUSY."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str, *, upgrade: bool = True) -> Engine:
    """An engine for `sqlite:///path` or `postgresql+psycopg://…`, its schema upgraded to the newest revision."""
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}  # a health check must not hang
    engine = sa.create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    if upgrade:
        upgrade_schema(engine)
    return engine


def _alembic(conn: Connection | None = None) -> Any:
    """An Alembic configuration that runs `cloud/migrations` on `conn`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


_heads: list[str] = []  # the newest revision, read once per process


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: empty, or a hub from before migrations)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    if not _heads:
        head = ScriptDirectory.from_config(_alembic()).get_current_head()
        assert head is not None
        _heads.append(head)
    return _heads[0]


def upgrade_schema(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision` in one transaction (under a lock, so hub replicas and CLI commands starting
    at once do not race); a pre-migration hub (its tables, no `alembic_version`) runs `0001_baseline`, which adds only
    the tables it lacks.
    Returns (revision before, revision after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    before = schema_revision(engine)
    if revision == "head" and before == head_revision():
        return before, before  # the common case: nothing to do, no write lock taken
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (the write lock); PostgreSQL: an advisory lock
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        # A hub from before migrations (tables, no alembic_version) runs 0001 too: it adds only what is missing.
        command.upgrade(_alembic(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after or ""


def store_problem(engine: Engine) -> str | None:
    """Why the store cannot be reached right now (a round trip), or None when it answers."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # anything the driver raises means "unreachable" to a health check
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


_TURNS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_TURNS_GUARD = threading.Lock()


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """On SQLite, one write transaction at a time among this process's writers (the consumer's batches, the
    notification dispatcher, the booking sender, the webhooks), handed on the moment its holder commits. SQLite's own
    busy handler retries with sleeps of up to 100 ms, so a claim waiting for `BEGIN IMMEDIATE` kept missing the few
    milliseconds between two consumer batches (the dispatcher stalled for 0.7-2.4 s at 100 events/s). PostgreSQL
    takes no turn: rows are locked there, not the database."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _TURNS_GUARD:
        lock = _TURNS.setdefault(engine, threading.Lock())
    with lock:
        yield


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


# Set-based statements for the consumer's batches. PostgreSQL: ONE statement whatever the number of rows (columns sent
# as arrays, `unnest`), so a batch costs a round trip and no per-row driver work; SQLite: executemany (in-process).


def write_many(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, key: tuple[str, ...] = (), merge: str = "error"
) -> None:
    """Insert `rows` (all with the same keys). `merge`: "error" (a plain INSERT), "ignore" (`ON CONFLICT DO NOTHING`,
    any unique key), "replace" (the other columns take the new values) or "add" (they are added to: rollup
    measures); the last two on conflict with `key`."""
    if not rows:
        return
    names = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        params = _pg_arrays(table, names, rows)
        shared = _shared_columns(table, names, params) if len(rows) > 1 else ()
        conn.exec_driver_sql(_pg_write_sql(table, names, key, merge, tuple(shared)), params)
        return
    from sqlalchemy.dialects.sqlite import insert

    statement = insert(table)
    if merge == "ignore":
        statement = statement.on_conflict_do_nothing()
    elif merge in ("replace", "add"):
        others = [name for name in names if name not in key]
        updates = {
            n: statement.excluded[n] if merge == "replace" else table.c[n] + statement.excluded[n] for n in others
        }
        statement = statement.on_conflict_do_update(index_elements=list(key), set_=updates)
    conn.execute(statement, rows)


def _pg_type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.SmallInteger):
        return "int2"
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Float):
        return "float8"
    return "text"


# Each array holds one Python type (psycopg picks the array's type from its items).
_PG_PY: dict[str, Any] = {"boolean": bool, "int2": int, "int4": int, "int8": int, "float8": float, "text": str}
_NONE = type(None)


def _pg_arrays(table: sa.Table, names: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """One array parameter per column (`c0`, `c1`, …), each of the column's one Python type: the rows are transposed
    in C (itemgetter, zip) and a column is converted item by item only when it holds another type (an int in a float
    column, a bool in an integer one); a row without one of the names gives None there."""
    try:
        columns = list(zip(*map(operator.itemgetter(*names), rows), strict=True)) if len(names) > 1 else None
    except KeyError:
        columns = None
    if columns is None:
        columns = [tuple(row.get(name) for row in rows) for name in names]
    arrays = {}
    for i, (name, column) in enumerate(zip(names, columns, strict=True)):
        convert = _PG_PY[_pg_type(table.c[name])]
        if set(map(type, column)) <= {convert, _NONE}:
            arrays[f"c{i}"] = list(column)
        else:
            arrays[f"c{i}"] = [None if value is None else convert(value) for value in column]
    return arrays


_SHAREABLE = ("text", "boolean", "int2", "int4", "int8")  # float columns always go as arrays: -0.0 == 0.0


def _shared_columns(table: sa.Table, names: tuple[str, ...], params: dict[str, Any]) -> list[int]:
    """The columns holding one value in every row (tenant, branch, a batch's timestamp, zero measures): each is sent
    as that one value instead of an array (fewer items for psycopg to dump), and `params` is changed to say so. At
    least one column stays an array (it carries the number of rows)."""
    shared: list[int] = []
    for i, name in enumerate(names):
        values = params[f"c{i}"]
        if _pg_type(table.c[name]) in _SHAREABLE and len(set(values)) == 1 and len(shared) < len(names) - 1:
            shared.append(i)
            params[f"c{i}"] = values[0]
    return shared


@functools.lru_cache(maxsize=1024)
def _pg_write_sql(
    table: sa.Table, names: tuple[str, ...], key: tuple[str, ...], merge: str, shared: tuple[int, ...] = ()
) -> str:
    """The PostgreSQL INSERT of `names` from one array parameter per column (`%(c0)b`, `%(c1)b`, …: psycopg sends
    them in binary; quoting a 500-event batch's bodies into a text array literal took 260 ms of Python, binary 1 ms),
    or one value for each of the `shared` columns."""
    kinds = [_pg_type(table.c[name]) for name in names]
    arrays = ", ".join(f"CAST(%(c{i})b AS {kinds[i]}[])" for i in range(len(names)) if i not in shared)
    aliases = ", ".join(f"c{i}" for i in range(len(names)) if i not in shared)
    chosen = ", ".join(f"CAST(%(c{i})s AS {kinds[i]})" if i in shared else f"u.c{i}" for i in range(len(names)))
    others = [name for name in names if name not in key]
    conflict = {
        "error": "",
        "ignore": " ON CONFLICT DO NOTHING",
        "replace": f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = EXCLUDED.{name}" for name in others),
        "add": f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in others),
    }[merge]
    # Names from our own Table objects only, never from input: nothing here can carry an injection.
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {chosen} FROM unnest({arrays}) AS u({aliases}){conflict}"
    )


def probe(
    conn: Connection,
    table: sa.Table,
    tenant: str,
    branch_id: str,
    column: str,
    values: list[str],
    columns: list[sa.Column[Any]] | None = None,
) -> sa.Select[Any]:
    """The rows (`columns`, default all) of one branch whose `column`, the next part of the primary key, is one of
    `values`, found by primary-key probes.

    PostgreSQL plans `ticket_id IN (…)` / `= ANY(…)` on a table not analysed yet (a new hub catching up on a
    backlog; a new branch in an old table) as a scan of the whole branch with the ids as a filter, or as a hash join
    over it: the cost grows with the table (0.4 s for 250 ids among 6,250 tickets). A LATERAL probe per value (its
    OFFSET 0 keeps the planner from flattening it into a join) stays an index lookup whatever the statistics."""
    chosen = columns if columns is not None else list(table.c)
    if conn.dialect.name != "postgresql":
        return sa.select(*chosen).where(branch_key(table, tenant, branch_id), table.c[column].in_(values))
    statement = _pg_probe(table, column, tuple(chosen))
    return statement.params(probe_tenant=tenant, probe_branch=branch_id, probe_values=list(values))


@functools.cache
def _pg_probe(table: sa.Table, column: str, chosen: tuple[sa.Column[Any], ...]) -> sa.Select[Any]:
    """`probe`'s construct for PostgreSQL with its values as bind parameters, built once per table and columns (building
    it was half of a probe's Python time)."""
    wanted = sa.func.unnest(sa.bindparam("probe_values", type_=postgresql.ARRAY(sa.Text)))
    keys = wanted.table_valued("value").render_derived(name="wanted")
    found = (
        sa.select(*chosen)
        .where(
            table.c.tenant_id == sa.bindparam("probe_tenant", type_=sa.String),
            table.c.branch_id == sa.bindparam("probe_branch", type_=sa.String),
            table.c[column] == keys.c.value,
        )
        .offset(0)
        .lateral("found")
    )
    return sa.select(*found.c).select_from(keys.join(found, sa.true()))


def update_many(
    conn: Connection, table: sa.Table, tenant: str, branch_id: str, key: str, rows: list[dict[str, Any]]
) -> None:
    """Update stored rows of one branch found by `key` (the rest of their primary key): in each row (all with the same
    names) a value that is None keeps the stored one; a key that is not stored changes nothing.

    PostgreSQL: one statement for the batch — each row's stored version read by a primary-key probe (as `probe`: an
    index lookup whatever the statistics) and written back through `INSERT … ON CONFLICT DO UPDATE` on the primary
    key, so no join over the branch is ever planned; SQLite: an UPDATE by executemany (in-process)."""
    if not rows:
        return
    names = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = _pg_arrays(table, names, rows)
        params.update(tenant=tenant, branch=branch_id)
        conn.exec_driver_sql(_pg_update_sql(table, key, names), params)
        return
    changed = {name: sa.func.coalesce(sa.bindparam(f"u_{name}", type_=table.c[name].type), table.c[name])
               for name in names if name != key}  # fmt: skip
    conn.execute(
        sa.update(table)
        .where(branch_key(table, tenant, branch_id), table.c[key] == sa.bindparam(f"u_{key}"))
        .values(changed),
        [{f"u_{name}": value for name, value in row.items()} for row in rows],
    )


@functools.cache
def _pg_update_sql(table: sa.Table, key: str, names: tuple[str, ...]) -> str:
    """`update_many`'s statement for PostgreSQL (names from our own Table objects only, never from input)."""
    arrays = ", ".join(f"CAST(%(c{i})b AS {_pg_type(table.c[name])}[])" for i, name in enumerate(names))
    aliases = ", ".join(f"v{i}" for i in range(len(names)))
    given = {name: f"w.v{i}" for i, name in enumerate(names)}
    values = ", ".join(
        f"coalesce({given[c.name]}, found.{c.name})" if c.name in given and c.name != key else f"found.{c.name}"
        for c in table.c
    )
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names if name != key)
    pkey = ", ".join(c.name for c in table.primary_key.columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(c.name for c in table.c)}) SELECT {values} "  # noqa: S608
        f"FROM unnest({arrays}) AS w({aliases}), LATERAL (SELECT * FROM {table.name} WHERE tenant_id = %(tenant)s "
        f"AND branch_id = %(branch)s AND {key} = {given[key]} OFFSET 0) AS found "
        f"ON CONFLICT ({pkey}) DO UPDATE SET {updates}"
    )


def probe_rows(
    conn: Connection,
    table: sa.Table,
    tenant: str,
    branch_id: str,
    column: str,
    values: list[str],
    columns: tuple[str, ...],
) -> list[Any]:
    """The rows (`columns`, named tuples) that `probe` selects, for the consumer's hot path: on PostgreSQL its SQL is
    rendered once per table and columns and sent to the driver as is (building and compiling the LATERAL construct
    cost ~1 ms of Python a query, more than the query)."""
    if not values:
        return []
    if conn.dialect.name != "postgresql":
        chosen = [table.c[name] for name in columns]
        return list(conn.execute(probe(conn, table, tenant, branch_id, column, values, chosen)))
    sql = _pg_probe_sql(table, column, columns)
    return list(conn.exec_driver_sql(sql, {"tenant": tenant, "branch": branch_id, "values": list(values)}))


@functools.cache
def _pg_probe_sql(table: sa.Table, column: str, columns: tuple[str, ...]) -> str:
    """`probe`'s statement for PostgreSQL (names from our own Table objects only, never from input)."""
    chosen = ", ".join(f"found.{name}" for name in columns)
    return (
        f"SELECT {chosen} FROM unnest(CAST(%(values)s AS text[])) AS wanted(value), LATERAL "  # noqa: S608
        f"(SELECT {', '.join(columns)} FROM {table.name} WHERE tenant_id = %(tenant)s AND branch_id = %(branch)s "
        f"AND {column} = wanted.value OFFSET 0) AS found"
    )


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Writes only inside: on PostgreSQL they are sent without waiting for each one (psycopg's pipeline mode), so the
    server works on one while Python prepares the next; all are done when the block ends. Elsewhere a no-op."""
    if conn.dialect.name != "postgresql":
        yield
        return
    import psycopg

    driver = conn.connection.driver_connection
    assert driver is not None  # a checked-out connection always has its driver's
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as exc:  # raised at the pipeline's end, past SQLAlchemy: wrapped as its own calls would be
        raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error, dialect=conn.dialect) from exc
