"""Point-in-time recovery of the hub's PostgreSQL into a scratch data dir (issue 16, E-PLAT-03):
`qms-cloud db pitr-restore`.

The production server archives its WAL (`archive_mode = on`, `archive_command` copying each segment into an archive
directory) and a base backup is taken regularly (`pg_basebackup -D <dir> -Fp -X none`, or `-Ft` for `base.tar`);
docs/hub-operations.md has the settings. This module restores a base backup into a new data dir, lets PostgreSQL
replay the archived WAL up to a time (`recovery.signal`, `restore_command`, `recovery_target_time`, promote at the
target), starts it on a port of its own with archiving off (the scratch copy never writes into the production
archive) and waits until recovery has ended. The operator then inspects it (or `pg_dump`s from it) and stops it with
`pg_ctl -D <dir> stop`. It never touches the running server.

Contacts: the WAL archive and base backups hold every row as it was written, contacts included; keep them no longer
than the hub's contact retention allows (see docs/hub-operations.md, "Backups and personal data").
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cloud.ops.backups import HubBackupError, pg_tool

RECOVERY_TIMEOUT = 600.0


@dataclass(frozen=True)
class RecoveredServer:
    """A scratch server recovered to a point in time, running until `pg_ctl -D data_dir stop`."""

    data_dir: Path
    port: int
    socket_dir: Path
    run_as: str | None

    @property
    def libpq(self) -> str:
        """How to connect (through its Unix socket): `psql "<this>"`."""
        return f"host={self.socket_dir} port={self.port} dbname=postgres"


def _run(args: list[str], run_as: str | None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = ["runuser", "-u", run_as, "--", *args] if run_as else args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - our args


def _unpack_base(base: Path, data_dir: Path) -> None:
    """A plain base backup (a data dir with PG_VERSION) is copied; a tar one (base.tar[.gz]) is extracted."""
    if (base / "PG_VERSION").is_file():
        shutil.copytree(base, data_dir, symlinks=True, dirs_exist_ok=True)
        return
    tars = [base / n for n in ("base.tar", "base.tar.gz") if (base / n).is_file()]
    if not tars:
        raise HubBackupError(f"{base} is not a base backup (no PG_VERSION, no base.tar from pg_basebackup -Ft)")
    with tarfile.open(tars[0]) as tar:
        tar.extractall(data_dir, filter="data")


def restore_to_time(
    base: Path, wal_archive: Path, target: datetime, data_dir: Path, port: int, run_as: str | None = None
) -> RecoveredServer:
    """Restore `base` into the new `data_dir`, replay `wal_archive` up to `target` (timezone-aware), start it on
    `port` and wait until it has promoted at the target. HubBackupError when any step fails (its log is quoted)."""
    if target.tzinfo is None:
        raise HubBackupError("the target time needs a time zone (e.g. 2026-12-05T03:10:00+07:00)")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise HubBackupError(f"{data_dir} is not empty: the scratch data dir must be new")
    if run_as is None and os.geteuid() == 0:
        run_as = "postgres"  # PostgreSQL refuses to run as root
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _unpack_base(base, data_dir)
    started_at = _backup_start(data_dir / "backup_label")
    if started_at is not None and target < started_at:  # PostgreSQL would promote at the backup's end, not there
        shutil.rmtree(data_dir)
        raise HubBackupError(
            f"{target.isoformat()} is before the base backup (started {started_at.isoformat()}): use an older one"
        )
    (data_dir / "pg_wal" / "archive_status").mkdir(parents=True, exist_ok=True)
    for stale in ("postmaster.pid", "postmaster.opts", "backup_manifest"):
        (data_dir / stale).unlink(missing_ok=True)
    socket_dir = data_dir
    settings = {
        "restore_command": f"cp '{wal_archive}/%f' '%p'",
        "recovery_target_time": target.isoformat(),
        "recovery_target_action": "promote",
        "archive_mode": "off",  # never into the production archive
        "port": str(port),
        "listen_addresses": "",
        "unix_socket_directories": str(socket_dir),
    }
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# qms-cloud db pitr-restore\n")
        conf.writelines(f"{name} = '{_quoted(value)}'\n" for name, value in settings.items())
    (data_dir / "recovery.signal").touch()
    if run_as:
        info = pwd.getpwnam(run_as)
        for root, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                os.chown(Path(root) / name, info.pw_uid, info.pw_gid, follow_symlinks=False)
        os.chown(data_dir, info.pw_uid, info.pw_gid)
    os.chmod(data_dir, 0o700)
    log = data_dir / "pitr.log"
    started = _run([pg_tool("pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", "600", "start"], run_as, 660)
    if started.returncode != 0:
        raise HubBackupError(f"the scratch server did not start: {_tail(log)}")
    server = RecoveredServer(data_dir, port, socket_dir, run_as)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        done = _run([pg_tool("psql"), server.libpq, "-Atc", "SELECT pg_is_in_recovery()"], run_as)
        if done.returncode == 0 and done.stdout.strip() == "f":
            return server
        if not (data_dir / "postmaster.pid").exists():
            raise HubBackupError(f"recovery stopped: {_tail(log)}")
        time.sleep(0.5)
    raise HubBackupError(f"recovery did not end within {RECOVERY_TIMEOUT:.0f} s: {_tail(log)}")


def _backup_start(label: Path) -> datetime | None:
    """The base backup's `START TIME` from its backup_label (None when absent or in a zone given by name)."""
    try:
        found = re.search(r"^START TIME: (\S+ \S+) (\S+)$", label.read_text(), re.MULTILINE)
    except OSError:
        return None
    if found is None:
        return None
    stamp, zone = found.groups()
    offset = "+00:00" if zone in ("UTC", "GMT") else zone
    if not re.fullmatch(r"[+-]\d\d(:?\d\d)?", offset):
        return None
    try:
        return datetime.fromisoformat(f"{stamp}{offset}")
    except ValueError:
        return None


def stop(server: RecoveredServer) -> None:
    """Stop the scratch server (its data dir stays for inspection until deleted)."""
    _run([pg_tool("pg_ctl"), "-D", str(server.data_dir), "-m", "fast", "-w", "stop"], server.run_as)


def _quoted(value: str) -> str:
    """A value inside a postgresql.conf string ('' stands for ')."""
    return value.replace("'", "''")


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text().strip().splitlines()[-6:])
    except OSError:
        return "(no log)"
