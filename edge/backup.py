"""Appliance backups: one private tar.gz of everything in the data dir, with a checked manifest; verified restore.

The archive holds `manifest.json` and `data/<path>` for the database (a consistent snapshot taken with SQLite's online
backup API, so the appliance may keep serving) and every other file the appliance keeps in its data dir: `token.key`
(board URLs, device tokens, status links), `mqtt.json`, voice packs, signage. A restore checks the manifest, every
checksum, the database's pages and its hash chain before it replaces anything. Single-file `.sqlite3` backups of
earlier versions are still restored (the database only).

Every backup has a lifetime (QMS_BACKUP_MAX_AGE_DAYS, default 7): its name and manifest carry the time it expires,
and every holder deletes it by then (the appliance's backups dir, the hub's store, an S3 bucket). So that no backup
outlives a contact's retention (crypto-shredding, edge/pii.py), the copy of the database in a backup taken at `t`
holds only the contact keys due after `t + lifetime + SWEEP_GRACE`: the others are shredded in the copy before it is
archived (their tickets' projection rows scrubbed, the freed pages overwritten and vacuumed away). The price: a
restore comes back without the contacts that were due to be erased within that time anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from edge import pii
from edge.store.datadir import DIR_MODE, FILE_MODE, LOCK_NAME, STAGING_PREFIX, DataDirLock, create_private
from edge.store.db import connect, open_database
from edge.store.log import last_position, verify_chain
from edge.store.projections import current_config

FORMAT = "qms-edge-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "qms.sqlite3"
DATA_PREFIX = "data/"
SQLITE_MAGIC = b"SQLite format 3\x00"
GZIP_MAGIC = b"\x1f\x8b"
# Not copied: the live database (a snapshot goes in instead), SQLite's side files, the serving lock, the box's own
# runtime state (RUNTIME_STATE), re-fetchable caches and our own staging files.
LINK_STATE = "cloud-link.json"
# What this box did, not what the branch is: a new box restored from a backup would otherwise report the old box's
# link and pid (edge.replication.LINK_FILE), last S3 upload (edge.backup_ship.STATUS_FILE), passed drill
# (edge.drill.DRILL_FILE), update outcome (edge.updates.STATUS_FILE) and certificate renewal (edge.tls) as its own.
# Neither backed up nor restored (archives made before they were left out still carry them).
RUNTIME_STATE = frozenset({LINK_STATE, "backup-ship.json", "drill.json", "update-status.json", "tls/renewal.json"})
SKIPPED_FILES = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME, *RUNTIME_STATE}
SKIPPED_DIRS = {"board-media/cache"}
CHUNK = 1 << 20
LIFETIME_ENV = "QMS_BACKUP_MAX_AGE_DAYS"
DEFAULT_LIFETIME_DAYS = 7
# Holders sweep expired backups at least hourly (the appliance wakes at the earliest expiry, the hub hourly) and an S3
# lifecycle rule acts within a day: contact keys due less than this after a backup's expiry are left out too.
SWEEP_GRACE = timedelta(days=1)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is for the technician."""


@dataclass(frozen=True)
class DatabaseCheck:
    """The result of checking a database file: its pages (integrity_check) and its event log's hash chain."""

    events: int  # events whose hash and link were checked good
    last_seq: int
    last_hash: str
    file_error: str | None = None  # what integrity_check (or reading a damaged page) reported
    chain_error: str | None = None  # the first break in the chain

    @property
    def ok(self) -> bool:
        """True when both the file and the chain are intact."""
        return self.file_error is None and self.chain_error is None

    @property
    def problem(self) -> str:
        """The failure in words for the technician ('' when ok)."""
        if self.file_error:
            return f"the database file is corrupt (integrity_check): {self.file_error}"
        if self.chain_error:
            return f"the event log's chain is broken after {self.events} good events: {self.chain_error}"
        return ""


def check_database(path: Path) -> DatabaseCheck:
    """Check a database file's pages with `PRAGMA integrity_check`, then its event log's hash chain."""
    conn = connect(path, readonly=True)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        findings = [line for (text,) in rows for line in str(text).splitlines() if line != "ok"]
        if findings:
            return DatabaseCheck(0, 0, "", file_error="; ".join(findings[:5]))
        report = verify_chain(conn)
        seq, last_hash = last_position(conn)
    except sqlite3.DatabaseError as exc:
        return DatabaseCheck(0, 0, "", file_error=str(exc))
    finally:
        conn.close()
    return DatabaseCheck(report.checked, seq, last_hash or "", chain_error=report.error if not report.ok else None)


def lifetime(env: dict[str, str] | None = None) -> timedelta:
    """How long any copy of a backup may be kept (QMS_BACKUP_MAX_AGE_DAYS, default 7 days, 1..3650)."""
    raw = (os.environ if env is None else env).get(LIFETIME_ENV, "").strip()
    days = int(raw) if raw.isdigit() else DEFAULT_LIFETIME_DAYS
    return timedelta(days=min(max(days, 1), 3650))


def contacts_cutoff(expires: datetime) -> datetime:
    """A backup expiring at `expires` keeps only the contact keys due after this."""
    return expires + SWEEP_GRACE


@dataclass(frozen=True)
class BackupResult:
    """What `create_backup` wrote."""

    path: Path
    manifest: dict[str, object]
    check: DatabaseCheck


def create_backup(
    data_dir: Path, dest: Path, *, now: datetime | None = None, max_age: timedelta | None = None
) -> BackupResult:
    """Write one archive (mode 0600, never overwriting) of the data dir, to be kept until `now + max_age` (default:
    QMS_BACKUP_MAX_AGE_DAYS) and holding no contact due before that (see the module's doc); nothing is left behind
    when it fails."""
    taken = now or datetime.now(UTC)
    expires = taken + (max_age or lifetime())
    db = data_dir / DB_NAME
    if not db.is_file():
        raise BackupError(f"no appliance database in {data_dir} (use --data-dir or QMS_DATA_DIR)")
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise BackupError(f"{dest} exists; choose a new file") from None
    try:
        with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=dest.parent) as tmp:
            staging = Path(tmp)
            check, contacts = _checked_snapshot(db, staging / DB_NAME, contacts_cutoff(expires))
            files = [DB_NAME, *_copy_data_files(data_dir, staging, dest)]
            manifest = _manifest(staging, check, files, taken, expires, contacts)
            with os.fdopen(fd, "wb") as out:
                fd = -1
                _write_archive(out, manifest, staging, files)
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        dest.unlink(missing_ok=True)
        raise
    return BackupResult(dest, manifest, check)


def _checked_snapshot(db: Path, target: Path, cutoff: datetime) -> tuple[DatabaseCheck, dict[str, object]]:
    """Snapshot the database, leave out the contacts due before `cutoff`, and check the copy's pages and chain (what
    goes into the archive is what was checked)."""
    _snapshot(db, target)
    contacts = _leave_out_contacts(target, cutoff)
    check = check_database(target)
    if not check.ok:
        raise BackupError(f"no backup written: {check.problem}")
    return check, contacts


def _leave_out_contacts(copy: Path, cutoff: datetime) -> dict[str, object]:
    """Shred, in the copy only, every contact key due before `cutoff` (and scrub its ticket's projection row), with
    the freed bytes overwritten (`secure_delete`) and vacuumed out of the file; what was kept and left out."""
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contact_keys'").fetchone()
        if found is None:
            return {"kept": 0, "left_out": 0, "kept_if_due_after": _stamp(cutoff)}
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        left_out = 0
        while batch := pii.shred(conn, cutoff):
            left_out += len(batch)
        conn.execute("COMMIT")
        kept = conn.execute("SELECT count(*) FROM contact_keys").fetchone()[0]
        conn.execute("VACUUM")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"no backup written: the database file is corrupt: {exc}") from None
    finally:
        conn.close()
    return {"kept": kept, "left_out": left_out, "kept_if_due_after": _stamp(cutoff)}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _snapshot(db: Path, target: Path) -> None:
    """A consistent copy through SQLite's online backup API, as one self-contained file (no -wal)."""
    create_private(target)
    source = connect(db, readonly=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"no backup written: the database file is corrupt: {exc}") from None
    finally:
        copy.close()
        source.close()


def _copy_data_files(data_dir: Path, staging: Path, dest: Path) -> list[str]:
    """Copy every other file the appliance keeps in its data dir into `staging`; their relative POSIX paths."""
    copied = []
    for root, dirs, names in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(STAGING_PREFIX) and (rel_root / d).as_posix() not in SKIPPED_DIRS
        )
        for name in sorted(names):
            path = Path(root) / name
            rel = (rel_root / name).as_posix()
            if _skipped(rel, path, dest):
                continue
            _private_dirs(staging, Path(rel).parent)
            with path.open("rb") as src, _private_file(staging / rel) as out:
                shutil.copyfileobj(src, out, CHUNK)
            copied.append(rel)
    return copied


def _skipped(rel: str, path: Path, dest: Path) -> bool:
    """Left out: see SKIPPED_FILES, databases set aside by a restore, links, and the archive being written."""
    name = path.name
    if rel in SKIPPED_FILES or name.startswith((STAGING_PREFIX, f"{DB_NAME}.damaged-")):
        return True
    return path.is_symlink() or not path.is_file() or path.resolve() == dest.resolve()


def appliance_version() -> str:
    """The installed qms distribution's version."""
    try:
        return importlib.metadata.version("qms")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(
    staging: Path,
    check: DatabaseCheck,
    files: list[str],
    taken: datetime,
    expires: datetime,
    contacts: dict[str, object],
) -> dict[str, object]:
    """What the archive holds and where the log stood, so a restore can check everything before it writes."""
    conn = connect(staging / DB_NAME, readonly=True)
    try:
        config = current_config(conn)
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "appliance_version": appliance_version(),
        "tenant_id": config.tenant_id if config else None,
        "branch_id": config.branch_id if config else None,
        "created_at": _stamp(taken),
        "expires_at": _stamp(expires),  # every copy is deleted by then (the name carries it too)
        "contacts": contacts,
        "schema_version": schema,
        "log": {"events": check.events, "last_seq": check.last_seq, "last_hash": check.last_hash},
        "files": [{"path": p, "size": (staging / p).stat().st_size, "sha256": _digest(staging / p)} for p in files],
    }


def _write_archive(out: BinaryIO, manifest: dict[str, object], staging: Path, files: list[str]) -> None:
    """manifest.json first (readable with `tar -xOzf FILE manifest.json`), then data/<path> for every file."""
    now = int(datetime.now(UTC).timestamp())
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        body = json.dumps(manifest, indent=2).encode()
        tar.addfile(_entry(MANIFEST, len(body), now), io.BytesIO(body))
        for rel in files:
            with (staging / rel).open("rb") as f:
                tar.addfile(_entry(DATA_PREFIX + rel, os.fstat(f.fileno()).st_size, now), f)


def _entry(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, FILE_MODE, mtime
    return info


# ---- restore ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    """What `restore_backup` put back."""

    check: DatabaseCheck
    files: list[str]
    legacy: bool  # an old single-file database backup (nothing but the database came back)
    manifest: dict[str, object]
    set_aside: list[str]  # a damaged database's files, renamed (kept) before the restore


def restore_backup(source: Path, data_dir: Path, *, replace: bool, other_branch: bool = False) -> RestoreResult:
    """Check the backup completely, then put it back, holding the data dir's lock all along (refused while an
    appliance serves the data dir, and none can start meanwhile)."""
    if not source.is_file():
        raise BackupError(f"no such backup file: {source}")
    with source.open("rb") as f:
        head = f.read(16)
    if head == SQLITE_MAGIC:
        return _restore_legacy(source, data_dir, replace=replace, other_branch=other_branch)
    if not head.startswith(GZIP_MAGIC):
        raise BackupError(f"refusing to restore: {source} is not a qms-edge backup (neither an archive nor a database)")
    with (
        DataDirLock.acquire(data_dir, "restore"),
        tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=data_dir) as tmp,
    ):
        staging = Path(tmp)
        manifest = _unpack(source, staging)
        check = _check_staged(staging / DB_NAME, manifest)
        _refuse_to_overwrite(data_dir, staging / DB_NAME, replace=replace, other_branch=other_branch)
        set_aside = _put_database(staging / DB_NAME, data_dir)
        files: list[dict[str, object]] = manifest["files"]  # type: ignore[assignment]
        names = [str(f["path"]) for f in files if f["path"] != DB_NAME and f["path"] not in RUNTIME_STATE]
        for name in names:
            _put_file(staging, data_dir, _safe(name))
        _give_to_owner(data_dir)
    return RestoreResult(check, names, legacy=False, manifest=manifest, set_aside=set_aside)


def _check_staged(snapshot: Path, manifest: dict[str, object]) -> DatabaseCheck:
    """The unpacked database must be intact and end exactly where the manifest says."""
    check = check_database(snapshot)
    if not check.ok:
        raise BackupError(f"refusing to restore: the backup does not verify: {check.problem}")
    log = manifest.get("log")
    if not isinstance(log, dict) or (log.get("last_seq"), log.get("last_hash")) != (check.last_seq, check.last_hash):
        raise BackupError("refusing to restore: the database does not end where the manifest says")
    return check


def _unpack(source: Path, staging: Path) -> dict[str, object]:
    """Read the archive into `staging`, checking it is ours, has no stray or missing member and every checksum."""
    try:
        with tarfile.open(source, "r:gz") as tar:
            members = tar.getmembers()
            by_name = {m.name: m for m in members}
            if MANIFEST not in by_name:
                raise BackupError(f"refusing to restore: {source} is not a qms-edge backup (no {MANIFEST})")
            manifest = _read_manifest(tar, by_name[MANIFEST], source)
            expected = {DATA_PREFIX + str(f["path"]): f for f in manifest["files"]}  # type: ignore[attr-defined]
            stray = sorted(set(by_name) - set(expected) - {MANIFEST})
            missing = sorted(set(expected) - set(by_name))
            if stray or missing:
                raise BackupError(f"refusing to restore: the archive does not match its manifest: {stray or missing}")
            for name, entry in expected.items():
                _stage(tar, by_name[name], entry, staging, _safe(name[len(DATA_PREFIX) :]))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"refusing to restore: the archive is damaged ({exc})") from None
    return manifest


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, source: Path) -> dict[str, object]:
    """The manifest, refused unless it is a qms-edge backup in a format this version reads."""
    raw = tar.extractfile(member)
    try:
        manifest = json.loads(raw.read() if raw else b"")
    except ValueError:
        manifest = None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(files, list):
        raise BackupError(f"refusing to restore: {source} is not a qms-edge backup (foreign manifest)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"refusing to restore: backup format {manifest.get('format_version')} is not readable by this"
            f" qms-edge ({appliance_version()}, format {FORMAT_VERSION}); restore it with the version that wrote it"
        )
    if not any(f.get("path") == DB_NAME for f in manifest["files"]):
        raise BackupError("refusing to restore: the archive has no database")
    return manifest


def _safe(name: str) -> Path:
    """A relative path that stays inside the data dir (no absolute paths, no `..`)."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BackupError(f"refusing to restore: unsafe path in the archive: {name!r}")
    return Path(*pure.parts)


def _stage(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: dict[str, object], staging: Path, rel: Path) -> None:
    """Copy one member out (regular files only) and check its size and sha256 against the manifest."""
    body = tar.extractfile(member) if member.isfile() else None
    if body is None:
        raise BackupError(f"refusing to restore: {member.name} is not a regular file")
    _private_dirs(staging, rel.parent)
    target = staging / rel
    digest, size = hashlib.sha256(), 0
    with _private_file(target) as out:
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry.get("size") or digest.hexdigest() != entry.get("sha256"):
        raise BackupError(f"refusing to restore: {member.name} does not match its checksum in the manifest")


def _private_dirs(root: Path, relative: Path) -> None:
    """Create `root/relative` level by level, each new one 0700 (mkdir's mode would cover only the last level)."""
    current = root
    for part in relative.parts:
        current = current / part
        current.mkdir(mode=DIR_MODE, exist_ok=True)


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[BinaryIO]:
    """A new file created 0600 (not chmod-ed afterwards), flushed to disk when done."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as out:
        yield out
        out.flush()
        os.fsync(out.fileno())


def _refuse_to_overwrite(data_dir: Path, incoming: Path, *, replace: bool, other_branch: bool) -> None:
    """An existing database is replaced only with --yes, and by another branch's only with --other-branch too."""
    if not (data_dir / DB_NAME).exists():
        return
    if not replace:
        raise BackupError(f"{data_dir} already has a database; add --yes to replace it")
    here, there = _branch_of(data_dir / DB_NAME), _branch_of(incoming)
    if here and there and here != there and not other_branch:
        raise BackupError(
            f"refusing to restore: this appliance is branch {here[1]} (tenant {here[0]}) but the backup is of branch"
            f" {there[1]} (tenant {there[0]}); add --other-branch if this box is to become that branch"
        )


def _branch_of(db: Path) -> tuple[str, str] | None:
    """(tenant, branch) of a database's configuration; None when it has none or cannot be read (e.g. corrupt)."""
    try:
        conn = connect(db, readonly=True)
        try:
            config = current_config(conn)
        finally:
            conn.close()
    except (sqlite3.DatabaseError, ValueError):
        return None
    return (config.tenant_id, config.branch_id) if config else None


def _put_database(snapshot: Path, data_dir: Path) -> list[str]:
    """Replace the database's content through SQLite (its WAL and readers stay consistent); a database too damaged
    to open is moved aside first (kept, 0600, for whoever investigates). Returns what was moved aside."""
    try:
        _copy_into(snapshot, data_dir)
    except sqlite3.DatabaseError:
        moved = _set_aside(data_dir)
        _copy_into(snapshot, data_dir)
        return moved
    return []


def _copy_into(snapshot: Path, data_dir: Path) -> None:
    target = open_database(data_dir)
    src = connect(snapshot, readonly=True)
    try:
        src.backup(target)
    finally:
        src.close()
        target.close()


def _set_aside(data_dir: Path) -> list[str]:
    """Rename the damaged database and its -wal/-shm (the old WAL must never meet the new file)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for suffix in ("-wal", "-shm", "-journal", ""):  # the database file last
        path = data_dir / f"{DB_NAME}{suffix}"
        if path.exists():
            path.replace(data_dir / f"{DB_NAME}.damaged-{stamp}{suffix}")
            moved.append(f"{DB_NAME}.damaged-{stamp}{suffix}")
    return moved


def _put_file(staging: Path, data_dir: Path, rel: Path) -> None:
    """Move a checked file into place atomically, 0600, its new directories 0700."""
    _private_dirs(data_dir, rel.parent)
    target = data_dir / rel
    tmp = target.with_name(f"{STAGING_PREFIX}{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    with _private_file(tmp) as out, (staging / rel).open("rb") as src:
        shutil.copyfileobj(src, out, CHUNK)
    tmp.replace(target)


def _restore_legacy(source: Path, data_dir: Path, *, replace: bool, other_branch: bool) -> RestoreResult:
    """An old single-file backup: check its pages and chain, then replace the database only."""
    check = check_database(source)
    if not check.ok:
        raise BackupError(f"refusing to restore: the backup does not verify: {check.problem}")
    with DataDirLock.acquire(data_dir, "restore"):
        _refuse_to_overwrite(data_dir, source, replace=replace, other_branch=other_branch)
        set_aside = _put_database(source, data_dir)
        _give_to_owner(data_dir)
    return RestoreResult(check, [], legacy=True, manifest={}, set_aside=set_aside)


def _give_to_owner(data_dir: Path) -> None:
    """Run as root (sudo qms-edge restore), hand what was restored to the data dir's owner, the appliance's user:
    files root created would be unreadable to the service."""
    if os.geteuid() != 0:
        return
    owner = data_dir.stat()
    if owner.st_uid == 0:
        return
    for root, dirs, names in os.walk(data_dir):
        for name in [*dirs, *names]:
            path = Path(root) / name
            found = path.lstat()
            if (found.st_uid, found.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
