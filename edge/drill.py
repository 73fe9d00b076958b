"""The appliance's restore drill (issue 16, E-PLAT-03): `qms-edge drill` proves the newest backup can be restored.

A backup nobody ever restored is a hope, not a backup. The drill takes the newest archive (QMS_BACKUP_DIR, default
`<data dir>/../backups`, where `qms-edge backup` writes), restores it into a scratch directory with the same code a
real restore uses (integrity check, hash chain, the log ending where the manifest says), compares the restored log's
row count with the manifest, and boots the appliance's web app on it (`GET /api/v1/health` answers 200, the queue's
projections equal a replay of the log). On success it records the time in `<data dir>/drill.json`, which `/metrics`
exports as `qms_restore_drill_last_success_timestamp_seconds`; a failed drill records nothing there (the alert on
that metric's age fires) and says what failed. The scratch copy is removed either way; the live data is never touched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge.backup import DB_NAME, BackupError, restore_backup
from edge.store.datadir import write_private

BACKUP_DIR_ENV = "QMS_BACKUP_DIR"
DRILL_FILE = "drill.json"


class DrillFailed(Exception):
    """The backup could not be restored, or what came back is not what the manifest promised."""


@dataclass(frozen=True)
class DrillResult:
    """A successful drill: which backup, what came back, when."""

    backup: Path
    events: int
    tickets: int
    finished_at: float


def backups_dir(data_dir: Path) -> Path:
    """Where backups are looked for (beside the data dir, never inside it)."""
    return Path(os.environ.get(BACKUP_DIR_ENV) or data_dir.parent / "backups")


def newest_backup(directory: Path) -> Path:
    """The most recently written archive in `directory`."""
    found = sorted(directory.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DrillFailed(f"no backup archive (*.tar.gz) in {directory}")
    return found[-1]


def run_drill(data_dir: Path, backup: Path | None = None) -> DrillResult:
    """Restore `backup` (default: the newest) into a scratch dir, verify it, boot the app on it; record success."""
    source = backup or newest_backup(backups_dir(data_dir))
    with tempfile.TemporaryDirectory(prefix="qms-drill-") as tmp:
        scratch = Path(tmp) / "qms"
        scratch.mkdir(mode=0o700)
        try:
            restored = restore_backup(source, scratch, replace=False)
        except BackupError as exc:
            raise DrillFailed(f"{source.name}: restore failed: {exc}") from None
        log = restored.manifest.get("log")
        promised = int(log.get("events", -1)) if isinstance(log, dict) else -1
        with sqlite3.connect(f"file:{scratch / DB_NAME}?mode=ro", uri=True) as conn:
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        if events != promised:
            raise DrillFailed(f"{source.name}: {events} events restored, the manifest says {promised}")
        _boot(scratch)
    result = DrillResult(source, events, tickets, time.time())
    record = {"last_success": result.finished_at, "backup": source.name, "events": events, "tickets": tickets}
    if data_dir.is_dir():  # a backup drilled away from any appliance (the hub host after a fetch) records nothing
        write_private(data_dir / DRILL_FILE, json.dumps(record).encode())
    return result


def _boot(scratch: Path) -> None:
    """The appliance's web app starts on the restored data and answers its health check; projections match the log."""
    from litestar.testing import TestClient

    from edge.store import rebuild
    from edge.web.app import Settings, create_app

    with TestClient(create_app(Settings(data_dir=scratch))) as client:
        health = client.get("/api/v1/health")
        if health.status_code != 200:  # noqa: PLR2004
            raise DrillFailed(f"the app on the restored data answered {health.status_code} to its health check")
    with sqlite3.connect(f"file:{scratch / DB_NAME}?mode=ro", uri=True) as conn:
        diffs = rebuild.differences(conn, rebuild.replay(conn))
    if diffs:
        raise DrillFailed(f"restored projections differ from the log: {'; '.join(diffs[:3])}")


def last_success(data_dir: Path) -> float | None:
    """When the last drill succeeded (POSIX seconds), None when never."""
    try:
        value = json.loads((data_dir / DRILL_FILE).read_text())["last_success"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None
