"""Hub PostgreSQL backups and their restore drill (issue 16, E-PLAT-03): `qms-cloud db backup` (alias `qms-cloud
backup`), `qms-cloud db restore` and `qms-cloud drill`.

`backup` writes `pg_dump -Fc` of the hub database into a directory, with a manifest beside it: the dump's SHA-256 and
the row count of every table, counted inside the very snapshot the dump reads (a REPEATABLE READ transaction exports
its snapshot and `pg_dump --snapshot` uses it), so the counts are exact even while consumers write. Older dumps
beyond `keep` are deleted, and so is every dump older than its lifetime (QMS_HUB_DB_BACKUP_MAX_AGE_DAYS, default 7;
the manifest's `expires_at`), at each backup and hourly by the running hub.

Contacts (crypto-shredding, issue 16): a dump kept until `expires_at` must not hold a contact whose retention ends
before then. So the tables that hold ticket contacts (`CONTACT_TABLES`) are dumped without their rows, and the rows
that may outlive the dump are copied beside it, from the same snapshot, one `COPY` text file per table
(`<dump>.<table>.copy`, digests in the manifest): contacts due after `expires_at` plus a day's grace, their push
subscriptions, parked events without the contact key that waited beside them. `restore` loads them after
`pg_restore`. A restore therefore lacks the contacts that were due to be purged within that time anyway. Point-in-time
recovery (WAL archiving) is configured on the server: see docs/hub-operations.md and `pitr.py`.

`drill` takes the newest dump, checks its digest, restores it with `pg_restore` into a scratch database on the same
server, compares every table's row count with the manifest, opens it as the hub does (`create_store_engine`: the
schema at Alembic's head) and drops the scratch database. Success is recorded in `drill.json` in the directory;
`/metrics` exports it as `qms_hub_restore_drill_last_success_timestamp_seconds` when QMS_HUB_BACKUP_DIR names it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BACKUP_DIR_ENV = "QMS_HUB_BACKUP_DIR"
MAX_AGE_ENV = "QMS_HUB_DB_BACKUP_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 7
GRACE = timedelta(days=1)  # the hub sweeps hourly and `db backup` runs daily: a contact due a day late is left out
DRILL_FILE = "drill.json"
TIMEOUT = 3600
STAMP = "%Y%m%dT%H%M%S%fZ"

# Tables holding ticket contacts: their rows go beside the dump, filtered (SELECTs on the dump's snapshot; `cutoff`
# is an ISO time: contacts due up to then are left out).
CONTACT_TABLES: dict[str, str] = {
    "notify_contacts": "SELECT * FROM notify_contacts WHERE purge_after > {cutoff}",
    "notify_push_subscriptions": (
        "SELECT s.* FROM notify_push_subscriptions s WHERE NOT EXISTS (SELECT 1 FROM notify_contacts c WHERE"
        " c.tenant_id = s.tenant_id AND c.branch_id = s.branch_id AND c.ticket_id = s.ticket_id"
        " AND c.purge_after <= {cutoff})"
    ),
    "parked_events": "SELECT tenant_id, branch_id, seq, body, received_at, NULL AS contact_key FROM parked_events",
}


class HubBackupError(Exception):
    """A dump or a drill failed; the message says what."""


@dataclass(frozen=True)
class HubDrillResult:
    """A passed drill."""

    dump: Path
    tables: int
    rows: int
    finished_at: float


def pg_tool(name: str) -> str:
    """`pg_dump`/`pg_restore` on PATH, else the newest /usr/lib/postgresql/*/bin (Debian keeps them there)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise HubBackupError(f"{name} not found: install postgresql-client")
    return versions[-1]


def libpq_url(url: str, database: str | None = None) -> str:
    """The SQLAlchemy URL as libpq takes it (`postgresql://…`), optionally for another database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise HubBackupError("hub backups and drills are for PostgreSQL (a SQLite hub: copy the file with .backup)")
    parsed = parsed.set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per table of the public schema."""
    names = sa.inspect(conn).get_table_names()
    count = sa.func.count()
    return {
        name: int(conn.execute(sa.select(count).select_from(sa.table(name))).scalar_one()) for name in sorted(names)
    }


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def max_age(env: dict[str, str] | None = None) -> timedelta:
    """How long a hub dump may be kept (QMS_HUB_DB_BACKUP_MAX_AGE_DAYS, default 7 days, 1..3650)."""
    raw = (os.environ if env is None else env).get(MAX_AGE_ENV, "").strip()
    days = int(raw) if raw.isdigit() else DEFAULT_MAX_AGE_DAYS
    return timedelta(days=min(max(days, 1), 3650))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def backup(
    url: str, directory: Path, keep: int = 14, *, now: datetime | None = None, lifetime: timedelta | None = None
) -> Path:
    """Dump the database (custom format) with its manifest and its filtered contact rows; delete expired dumps and
    keep the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    taken = now or datetime.now(UTC)
    expires = taken + (lifetime or max_age())
    cutoff = _iso(expires + GRACE)
    stamp = taken.astimezone(UTC).strftime(STAMP)
    dump = directory / f"qms-hub-{stamp}.dump"
    side: dict[str, dict[str, object]] = {}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            counts = _counts(conn)
            filtered = [t for t in CONTACT_TABLES if t in counts]
            done = subprocess.run(  # noqa: S603 - fixed tool, our own arguments
                [pg_tool("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(dump),
                 *(f"--exclude-table-data={t}" for t in filtered), libpq_url(url)],
                capture_output=True, text=True, timeout=TIMEOUT, check=False,
            )  # fmt: skip
            for table in filtered if done.returncode == 0 else []:
                side[table] = _copy_out(conn, table, CONTACT_TABLES[table], cutoff, dump)
                counts[table] = int(side[table]["rows"])  # type: ignore[call-overload]
            conn.rollback()
    except BaseException:
        _remove(dump)
        raise
    finally:
        engine.dispose()
    if done.returncode != 0:
        _remove(dump)
        raise HubBackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    os.chmod(dump, 0o600)
    manifest = {
        "dump": dump.name, "sha256": _digest(dump), "tables": counts, "created_at": stamp,
        "expires_at": _iso(expires), "contacts_kept_if_due_after": cutoff, "filtered": side,
    }  # fmt: skip
    (directory / f"{dump.name}.json").write_text(json.dumps(manifest, indent=1))
    prune(directory, keep, taken)
    return dump


def _copy_out(conn: sa.Connection, table: str, select: str, cutoff: str, dump: Path) -> dict[str, object]:
    """`COPY (select) TO STDOUT` on the dump's snapshot into `<dump>.<table>.copy` (0600); its name, rows, digest."""
    from psycopg import sql

    raw = conn.connection.driver_connection
    query = sql.SQL(select).format(cutoff=sql.Literal(cutoff))  # our own constant SELECTs
    target = dump.with_name(f"{dump.name}.{table}.copy")
    rows = 0
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        cursor = raw.cursor()  # type: ignore[union-attr]
        cursor.execute(sql.SQL("SELECT * FROM ({}) AS kept LIMIT 0").format(query))
        columns = [d.name for d in cursor.description or []]
        with cursor.copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
            for block in copy:
                out.write(block)
                rows += bytes(block).count(b"\n")
    return {"file": target.name, "rows": rows, "sha256": _digest(target), "columns": columns}


def _remove(dump: Path) -> None:
    """A dump and everything written beside it."""
    for path in [dump, dump.with_name(f"{dump.name}.json"), *dump.parent.glob(f"{dump.name}.*.copy")]:
        path.unlink(missing_ok=True)


def _taken(dump: Path) -> datetime:
    """When a dump was taken: the stamp in its name (else its file's time)."""
    try:
        return datetime.strptime(dump.name[len("qms-hub-") : -len(".dump")], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(dump.stat().st_mtime, UTC)


def _expires(directory: Path, dump: Path, lifetime: timedelta) -> datetime:
    """A dump's expiry: the earlier of its manifest's and its stamp plus `lifetime` (the hub's cap)."""
    capped = _taken(dump) + lifetime
    try:
        written = datetime.fromisoformat(json.loads((directory / f"{dump.name}.json").read_text())["expires_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return capped
    return min(written, capped)


def prune(directory: Path, keep: int | None = None, now: datetime | None = None) -> list[str]:
    """Delete the expired dumps (their manifest's `expires_at`, capped by QMS_HUB_DB_BACKUP_MAX_AGE_DAYS) and all but
    the newest `keep`; the dumps deleted."""
    now = now or datetime.now(UTC)
    lifetime = max_age()
    dumps = sorted(directory.glob("qms-hub-*.dump")) if directory.is_dir() else []
    gone = [d for d in dumps if now >= _expires(directory, d, lifetime)]
    alive = [d for d in dumps if d not in gone]
    gone += alive[:-keep] if keep is not None and len(alive) > keep else []
    for dump in gone:
        _remove(dump)
    return [d.name for d in gone]


def restore(dump: Path, target_url: str) -> dict[str, int]:
    """Restore a dump (checked against its manifest) into an existing, empty database: `pg_restore`, then the
    contact rows kept beside it; the row count of every table restored."""
    directory = dump.parent
    try:
        manifest = json.loads((directory / f"{dump.name}.json").read_text())
    except (OSError, ValueError) as exc:
        raise HubBackupError(f"{dump.name}: no readable manifest ({exc})") from None
    if _digest(dump) != manifest.get("sha256"):
        raise HubBackupError(f"{dump.name}: the file does not match its manifest's SHA-256 (damaged)")
    side: dict[str, dict[str, object]] = manifest.get("filtered") or {}
    for table, entry in side.items():
        path = directory / str(entry["file"])
        if not path.is_file() or _digest(path) != entry.get("sha256"):
            raise HubBackupError(f"{dump.name}: {path.name} (the {table} rows) is missing or damaged")
    done = subprocess.run(  # noqa: S603 - fixed tool, our own arguments
        [pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", libpq_url(target_url), str(dump)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise HubBackupError(f"{dump.name}: pg_restore failed: {done.stderr.strip()[:500]}")
    engine = sa.create_engine(target_url)
    try:
        with engine.begin() as conn:
            for table, entry in side.items():
                columns = entry.get("columns")
                names = [str(c) for c in columns] if isinstance(columns, list) else []
                _copy_in(conn, table, names, directory / str(entry["file"]))
        with engine.connect() as conn:
            return _counts(conn)
    finally:
        engine.dispose()


def _copy_in(conn: sa.Connection, table: str, columns: list[str], source: Path) -> None:
    from psycopg import sql

    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with cursor.copy(statement) as copy, source.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            copy.write(block)


def drill(url: str, directory: Path) -> HubDrillResult:
    """Restore the newest dump into a scratch database, verify it against its manifest, open it as the hub does."""
    from cloud.store import create_store_engine

    dumps = sorted(directory.glob("qms-hub-*.dump"))
    if not dumps:
        raise HubBackupError(f"no hub dump (qms-hub-*.dump) in {directory}")
    dump = dumps[-1]
    try:
        manifest = json.loads((directory / f"{dump.name}.json").read_text())
    except (OSError, ValueError) as exc:
        raise HubBackupError(f"{dump.name}: no readable manifest ({exc})") from None
    scratch = f"qms_drill_{int(time.time() * 1000)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
        scratch_url = make_url(url).set(database=scratch).render_as_string(hide_password=False)
        restore(dump, scratch_url)
        engine = create_store_engine(scratch_url)  # the hub's own start-up: schema brought to (or at) head
        try:
            with engine.connect() as conn:
                restored = _counts(conn)
        finally:
            engine.dispose()
        expected: dict[str, int] = manifest.get("tables", {})
        wrong = [f"{t}: {restored.get(t)} rows, manifest {n}" for t, n in expected.items() if restored.get(t) != n]
        if wrong:
            raise HubBackupError(f"{dump.name}: row counts differ: {'; '.join(wrong[:5])}")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
    result = HubDrillResult(dump, len(expected), sum(expected.values()), time.time())
    (directory / DRILL_FILE).write_text(json.dumps({"last_success": result.finished_at, "dump": dump.name}))
    return result


def last_drill(directory: Path) -> float | None:
    """When the last hub drill in `directory` succeeded, None when never."""
    try:
        value = json.loads((directory / DRILL_FILE).read_text())["last_success"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None
