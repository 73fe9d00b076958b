"""A full data partition, as the appliance's own process meets it: SQLite fails with `disk I/O error` as soon as it
must grow a file (here the read-only side's `-shm`). The commands say the disk is probably full and not to restore a
backup — never a traceback, never "restore the last good backup" for a database that is intact. The full disk is the
process's file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): what a full filesystem returns, without mounting one."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from pathlib import Path

from tests.support.appliance import qms_edge_command, seed_demo


def _on_a_full_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*qms_edge_command(), *args], capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=_on_a_full_disk)  # fmt: skip


def test_a_full_disk_is_named_not_mistaken_for_a_corrupt_database(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    for side in ("qms.sqlite3-wal", "qms.sqlite3-shm"):
        (data / side).unlink(missing_ok=True)

    backup = _run("backup", str(tmp_path / "b.tar.gz"), "--data-dir", str(data))
    assert backup.returncode == 1
    assert "Traceback" not in backup.stderr, backup.stderr
    assert "disk I/O error" in backup.stderr
    assert "partition is probably full" in backup.stderr

    status = _run("status", "--data-dir", str(data))
    assert status.returncode == 1
    assert "partition is probably full" in status.stderr, status.stderr

    doctor = _run("doctor", "--data-dir", str(data), "--json")
    database = next(f for f in json.loads(doctor.stdout) if f["check"] == "database")
    assert database["status"] == "fault"
    assert "restore" not in database["fix"].replace("do not restore", ""), database
    assert "full" in database["fix"]
