"""The appliance's restore drill on real files (issue 16, E-PLAT-03): tickets are acknowledged by a real
`qms-edge serve`, a backup is written, the live database is corrupted, `qms-edge drill` restores the newest backup
into a scratch dir, verifies it and boots the app on it (the metric `/metrics` exports appears), then the real
`qms-edge restore` puts it back and the branch serves again with every acknowledged ticket. A damaged archive fails
the drill and records no success."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.drill import DRILL_FILE, last_success
from tests.support.appliance import RunningAppliance, run_cli, seed_demo


def _corrupt(db: Path) -> None:
    """Scribble over every page after the header page (an SD card's torn writes)."""
    raw = bytearray(db.read_bytes())
    raw[4096:] = b"\xde\xad\xbe\xef" * ((len(raw) - 4096) // 4)
    db.write_bytes(bytes(raw))
    for side in ("-wal", "-shm"):  # the newest pages lived in the WAL: lost with the card
        db.with_name(db.name + side).unlink(missing_ok=True)


def test_backup_corrupt_drill_restore_and_the_branch_serves_every_acknowledged_ticket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, backups = tmp_path / "qms", tmp_path / "backups"
    backups.mkdir()
    monkeypatch.setenv("QMS_BACKUP_DIR", str(backups))
    seed_demo(data)
    with RunningAppliance(data) as appliance:
        auth = {"Authorization": f"Bearer {appliance.token('admin')}"}
        acknowledged = []
        for i in range(12):
            r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller", "request_id": f"drill-{i}"},
                           headers=auth, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            acknowledged.append(r.json()["ticket_id"])
        made = run_cli("backup", str(backups / "qms-1.tar.gz"), "--data-dir", str(data))
        assert made.returncode == 0, made.stderr
    _corrupt(data / "qms.sqlite3")
    assert run_cli("verify", "--data-dir", str(data)).returncode != 0  # the original is really damaged

    drilled = run_cli("drill", "--data-dir", str(data))
    assert drilled.returncode == 0, drilled.stderr
    assert "restore drill passed: qms-1.tar.gz" in drilled.stdout
    record = json.loads((data / DRILL_FILE).read_text())
    assert record["tickets"] == 12
    assert last_success(data) == record["last_success"]

    restored = run_cli("restore", str(backups / "qms-1.tar.gz"), "--data-dir", str(data), "--yes")
    assert restored.returncode == 0, restored.stderr
    with RunningAppliance(data) as appliance:
        auth = {"Authorization": f"Bearer {appliance.token('admin')}"}
        body = httpx.get(f"{appliance.api}/tickets", headers=auth, timeout=10).json()
        tickets = body["tickets"] if isinstance(body, dict) else body
        assert {t["ticket_id"] for t in tickets} >= set(acknowledged)
        metrics = httpx.get(f"{appliance.base_url}/metrics", headers=auth, timeout=10).text
        drill_samples = [s for f in text_string_to_metric_families(metrics) for s in f.samples
                         if s.name == "qms_restore_drill_last_success_timestamp_seconds"]  # fmt: skip
        assert [s.value for s in drill_samples] == [record["last_success"]]


def test_a_damaged_archive_fails_the_drill_and_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, backups = tmp_path / "qms", tmp_path / "backups"
    backups.mkdir()
    monkeypatch.setenv("QMS_BACKUP_DIR", str(backups))
    seed_demo(data, users=[])
    assert run_cli("backup", str(backups / "good.tar.gz"), "--data-dir", str(data)).returncode == 0
    raw = (backups / "good.tar.gz").read_bytes()
    (backups / "newest.tar.gz").write_bytes(raw[: len(raw) // 2])  # cut short, and the newest
    failed = run_cli("drill", "--data-dir", str(data))
    assert failed.returncode == 1
    assert "restore drill failed: newest.tar.gz" in failed.stderr
    assert last_success(data) is None


def test_a_fetched_backup_drills_where_no_appliance_data_dir_exists(tmp_path: Path) -> None:
    """On the hub host after `qms-cloud backups fetch` (which prints `qms-edge drill --backup FILE` as the next step)
    there is no appliance data dir: the drill passed and then died with a FileNotFoundError writing its record."""
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    assert run_cli("backup", str(tmp_path / "fetched.tar.gz"), "--data-dir", str(data)).returncode == 0
    nowhere = tmp_path / "no-appliance-here"
    drilled = run_cli("drill", "--backup", str(tmp_path / "fetched.tar.gz"), "--data-dir", str(nowhere))
    assert drilled.returncode == 0, drilled.stderr
    assert "restore drill passed: fetched.tar.gz" in drilled.stdout
    assert not nowhere.exists()
