"""Hub PostgreSQL backups and their restore drill (issue 16, E-PLAT-03): `qms-cloud backup` and `qms-cloud drill`.

`backup` writes `pg_dump -Fc` of the hub database into a directory, with a manifest beside it: the dump's SHA-256 and
the row count of every table, counted inside the very snapshot the dump reads (a REPEATABLE READ transaction exports
its snapshot and `pg_dump --snapshot` uses it), so the counts are exact even while consumers write. Older dumps
beyond `keep` are deleted. Point-in-time recovery (WAL archiving) is configured on the server, not here: see
docs/hub-operations.md.

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
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BACKUP_DIR_ENV = "QMS_HUB_BACKUP_DIR"
DRILL_FILE = "drill.json"
TIMEOUT = 3600


class HubBackupError(Exception):
    """A dump or a drill failed; the message says what."""


@dataclass(frozen=True)
class HubDrillResult:
    """A passed drill."""

    dump: Path
    tables: int
    rows: int
    finished_at: float


def _tool(name: str) -> str:
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


def backup(url: str, directory: Path, keep: int = 14) -> Path:
    """Dump the database (custom format) with its manifest; keep the newest `keep` dumps."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dump = directory / f"qms-hub-{stamp}.dump"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            counts = _counts(conn)
            done = subprocess.run(  # noqa: S603 - fixed tool, our own arguments
                [_tool("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(dump), libpq_url(url)],
                capture_output=True, text=True, timeout=TIMEOUT, check=False,
            )  # fmt: skip
            conn.rollback()
    finally:
        engine.dispose()
    if done.returncode != 0:
        dump.unlink(missing_ok=True)
        raise HubBackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    os.chmod(dump, 0o600)
    manifest = {"dump": dump.name, "sha256": _digest(dump), "tables": counts, "created_at": stamp}
    (directory / f"{dump.name}.json").write_text(json.dumps(manifest, indent=1))
    for old in sorted(directory.glob("qms-hub-*.dump"))[:-keep]:
        old.unlink()
        (directory / f"{old.name}.json").unlink(missing_ok=True)
    return dump


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
    if _digest(dump) != manifest.get("sha256"):
        raise HubBackupError(f"{dump.name}: the file does not match its manifest's SHA-256 (damaged)")
    scratch = f"qms_drill_{int(time.time() * 1000)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
        scratch_url = make_url(url).set(database=scratch).render_as_string(hide_password=False)
        done = subprocess.run(  # noqa: S603 - fixed tool, our own arguments
            [_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", libpq_url(url, scratch), str(dump)],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise HubBackupError(f"{dump.name}: pg_restore failed: {done.stderr.strip()[:500]}")
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
