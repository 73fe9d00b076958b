"""Backup and restore next to a real `qms-edge serve`: backup is allowed while serving; restore, rewriting projections
and a second server on the same data dir are refused (the serving process's flock); a SIGKILL-ed server leaves no
stale lock."""

from __future__ import annotations

import json
import stat
import tarfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from edge.cli import app
from edge.web.board.cli import board_urls
from tests.support.appliance import RunningAppliance, event_rows, free_port, mint_token, run_cli, seed_demo


@pytest.fixture(autouse=True)
def _no_mdns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_MDNS", "0")


def cli(*args: str) -> Result:
    """`qms-edge ARGS` in this process (the appliance under test is the separate process)."""
    return CliRunner().invoke(app, list(args))


def _issue(appliance: RunningAppliance) -> str:
    r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"}, headers=appliance.headers("agent1"),
                   timeout=10)  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["ticket_number"])


def test_restore_and_a_second_server_are_refused_while_the_appliance_serves(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    archive = tmp_path / "before.tar.gz"
    appliance = RunningAppliance(data).start()
    try:
        first = _issue(appliance)
        backed = cli("backup", str(archive), "--data-dir", str(data))
        assert backed.exit_code == 0, backed.output
        with tarfile.open(archive, "r:gz") as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest["log"]["last_seq"] == httpx.get(f"{appliance.api}/health", timeout=5).json()["seq"]
        second = _issue(appliance)
        log_before = event_rows(data)

        refused = cli("restore", str(archive), "--yes", "--data-dir", str(data))
        assert refused.exit_code != 0
        assert appliance.proc is not None
        assert f"the appliance is running (pid {appliance.proc.pid})" in refused.output, refused.output
        assert "systemctl stop qms-edge" in refused.output
        assert event_rows(data) == log_before  # nothing replaced
        assert _issue(appliance) not in (first, second)  # the running appliance is unaffected

        rewrite = cli("rebuild", "--data-dir", str(data))  # rewriting projections under a live writer: refused
        assert rewrite.exit_code != 0
        assert f"the appliance is running (pid {appliance.proc.pid})" in rewrite.output, rewrite.output
        assert cli("rebuild", "--check", "--data-dir", str(data)).exit_code == 0  # comparing only is fine

        port = free_port()  # a real second process: it must not get as far as serving
        twin = run_cli("serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port), timeout=30)
        assert twin.returncode != 0
        assert f"the appliance is running (pid {appliance.proc.pid})" in twin.stderr, twin.stderr
    finally:
        appliance.kill()  # SIGKILL: the kernel drops the flock with the process

    restored = cli("restore", str(archive), "--yes", "--data-dir", str(data))
    assert restored.exit_code == 0, restored.output
    assert [row[0] for row in event_rows(data)][-1] == manifest["log"]["last_seq"]


def test_a_new_box_restored_from_the_archive_accepts_the_old_boxes_tokens_and_board_urls(tmp_path: Path) -> None:
    old = tmp_path / "old-box"
    seed_demo(old)
    token = mint_token(old, "agent1")  # signed with the old box's token.key, like every device token and board URL
    (board,) = [u for u in board_urls(old, "http://x") if "area=lantai-1" in u]
    archive = tmp_path / "old-box.tar.gz"
    assert cli("backup", str(archive), "--data-dir", str(old)).exit_code == 0

    new = tmp_path / "new-box"
    restored = cli("restore", str(archive), "--data-dir", str(new))
    assert restored.exit_code == 0, restored.output
    with RunningAppliance(new) as appliance:
        listed = httpx.get(f"{appliance.api}/tickets", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200, listed.text
        shown = httpx.get(board.replace("http://x", appliance.base_url), timeout=10)
        assert shown.status_code == 200, shown.text
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in new.iterdir() if p.is_file()}
        assert {"qms.sqlite3", "qms.sqlite3-wal", "qms.sqlite3-shm", "token.key", "qms-edge.lock"} <= set(modes)
        assert {name: oct(mode) for name, mode in modes.items() if mode != 0o600} == {}
        assert stat.S_IMODE(new.stat().st_mode) == 0o700


def test_a_restored_box_does_not_report_the_old_boxes_cloud_link(tmp_path: Path) -> None:
    """cloud-link.json is the running appliance's own state (with its pid): a box restored from a backup taken while
    another appliance served must not show that appliance's link as its own while nothing serves on it."""
    old = tmp_path / "old-box"
    seed_demo(old)
    archive = tmp_path / "old-box.tar.gz"
    with RunningAppliance(old) as appliance:
        assert (old / "cloud-link.json").is_file()  # written by the serving process, with its pid
        assert cli("backup", str(archive), "--data-dir", str(old)).exit_code == 0
        new = tmp_path / "new-box"
        assert cli("restore", str(archive), "--data-dir", str(new)).exit_code == 0
        shown = cli("status", "--json", "--data-dir", str(new))
        assert shown.exit_code == 0, shown.output
        link = json.loads(shown.output)["link"]
        assert appliance.proc is not None
        assert link.get("pid") != appliance.proc.pid, link
        assert link["link"] == "unknown", link  # nothing has served on the new box yet
    with tarfile.open(archive, "r:gz") as tar:
        assert "data/cloud-link.json" not in tar.getnames()
