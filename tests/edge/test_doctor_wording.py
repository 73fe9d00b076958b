"""The doctor speaks in plain sentences with absolute paths: no "not configured (not configured)" for a box that
is not paired, no "no backup in backups" when it was started with a relative `--data-dir`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from sync.liveness import RETIRED, describe_link_error
from tests.support.appliance import seed_demo


@pytest.fixture
def relative_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seeded branch in ./qms, run from its parent, with no hub and no backups beside it."""
    seed_demo(tmp_path / "qms")
    monkeypatch.chdir(tmp_path)
    for name in ("QMS_NATS_URL", "QMS_BACKUP_DIR", "QMS_BACKUP_S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QMS_MDNS", "0")
    return tmp_path


def doctor_lines(*args: str) -> dict[str, str]:
    result = CliRunner().invoke(app, ["doctor", "--data-dir", "qms", "--port", "9", *args])
    findings = json.loads(result.output)
    return {f["check"]: f"{f['message']} | {f.get('fix') or ''}" for f in findings}


def test_no_backup_names_the_absolute_folder(relative_box: Path) -> None:
    found = doctor_lines("--json")
    assert "No backup yet: the backup folder" in found["backups"], found["backups"]
    assert str(relative_box / "backups") in found["backups"]
    assert "no backup in backups" not in found["backups"]
    (relative_box / "backups").mkdir()
    found = doctor_lines("--json")
    assert f"No backup yet: {relative_box / 'backups'} has no backup archive" in found["backups"], found["backups"]


def test_an_unpaired_box_is_said_so_once(relative_box: Path) -> None:
    found = doctor_lines("--json")
    assert found["hub link"].startswith("This appliance is not paired with a hub"), found["hub link"]
    assert "not served with this data directory yet" in found["hub link"]
    # as a serving appliance without a hub records it (its own pid: alive)
    link = {"link": "not configured", "link_status": "not configured", "pid": os.getpid()}
    (relative_box / "qms" / "cloud-link.json").write_text(json.dumps(link))
    found = doctor_lines("--json")
    message = found["hub link"]
    assert "not configured (not configured)" not in message
    assert message.startswith("This appliance is not paired with a hub: no hub address (QMS_NATS_URL)"), message


def test_a_retired_branch_is_told_to_ask_hq_not_to_check_the_network(relative_box: Path) -> None:
    """The hub reached us and refuses a credential it took before: the network and QMS_NATS_URL are no remedy."""
    error = describe_link_error(
        None, "nats: 'Authorization Violation'", servers=("nats://hub.example:4222",), tenant="acme",
        branch_id="jkt", seed_file="/var/lib/qms/acme.jkt.nk", accepted_before=True,
    )  # fmt: skip
    assert error.startswith(RETIRED), error
    link = {"link": "down", "link_status": "down since 2026-12-05T06:00:00+00:00", "link_error": error,
            "pid": os.getpid()}  # fmt: skip
    (relative_box / "qms" / "cloud-link.json").write_text(json.dumps(link))
    message, fix = doctor_lines("--json")["hub link"].split(" | ")
    assert RETIRED in message, message
    assert fix.startswith("ask HQ to reactivate the branch"), fix
    assert "qms-edge enrol" in fix
    assert "QMS_NATS_URL" not in fix
    assert "check the network" not in fix
    # a link down for want of the server keeps the network remedy
    link["link_error"] = "cannot reach the cloud at nats://hub.example:4222: connection refused or server down"
    (relative_box / "qms" / "cloud-link.json").write_text(json.dumps(link))
    fix = doctor_lines("--json")["hub link"].split(" | ")[1]
    assert fix.startswith("check the network and the hub address (QMS_NATS_URL)"), fix
