"""`qms-edge` for field technicians (in process, typer's CliRunner): config apply/show, status, verify, rebuild.

(Placed under tests/edge/web/ because this work may only add files there, in tests/e2e/ and tests/support/.)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace
from typer.testing import CliRunner

from edge.cli import app
from edge.demo import demo_config
from edge.engine import commands as c
from edge.service import QueueService
from sync.contract_config import Counter

runner = CliRunner()


def _write_config(path: Path, config: object | None = None) -> Path:
    path.write_bytes(msgspec.json.encode(config or demo_config()))
    return path


def _out(result: object) -> str:
    out = getattr(result, "output", "") or ""
    with contextlib.suppress(ValueError):  # stderr not captured separately
        out += getattr(result, "stderr", "") or ""
    return out


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    config_file = _write_config(tmp_path / "branch.json")
    result = runner.invoke(app, ["config", "apply", str(config_file), "--data-dir", str(data)])
    assert result.exit_code == 0, _out(result)
    return data


def test_config_apply_on_fresh_dir_then_show_status_verify_rebuild(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    config_file = _write_config(tmp_path / "branch.json")
    result = runner.invoke(app, ["config", "apply", str(config_file), "--data-dir", str(data)])
    assert result.exit_code == 0, _out(result)
    assert "version 1" in result.output

    shown = runner.invoke(app, ["config", "show", "--data-dir", str(data)])
    assert shown.exit_code == 0, _out(shown)
    doc = json.loads(shown.output)
    assert doc["version"] == 1
    assert doc == msgspec.to_builtins(replace(demo_config(), version=1))

    status = runner.invoke(app, ["status", "--json", "--data-dir", str(data)])
    assert status.exit_code == 0, _out(status)
    info = json.loads(status.output)
    assert info["branch_id"] == "jkt-sudirman"
    assert info["config_version"] == 1
    assert info["seq"] == 1
    assert sorted(info["counters"]) == ["1", "2", "3", "4", "5", "6"]

    human = runner.invoke(app, ["status", "--data-dir", str(data)])
    assert human.exit_code == 0, _out(human)
    assert "jkt-sudirman" in human.output

    verify = runner.invoke(app, ["verify", "--data-dir", str(data)])
    assert verify.exit_code == 0, _out(verify)
    assert "OK: 1 events" in verify.output

    check = runner.invoke(app, ["rebuild", "--check", "--data-dir", str(data)])
    assert check.exit_code == 0, _out(check)
    assert "identical" in check.output


def test_stale_version_is_refused(configured: Path, tmp_path: Path) -> None:
    stale = _write_config(tmp_path / "stale.json")  # version 0, current is 1
    result = runner.invoke(app, ["config", "apply", str(stale), "--data-dir", str(configured)])
    assert result.exit_code != 0
    message = _out(result)
    assert "version_conflict" in message
    assert "1" in message
    shown = json.loads(runner.invoke(app, ["config", "show", "--data-dir", str(configured)]).output)
    assert shown["version"] == 1

    based = _write_config(tmp_path / "v1.json", replace(demo_config(), version=1, name="Renamed"))
    ok = runner.invoke(app, ["config", "apply", str(based), "--data-dir", str(configured)])
    assert ok.exit_code == 0, _out(ok)
    assert "version 2" in ok.output
    forced = runner.invoke(app, ["config", "apply", str(stale), "--force", "--data-dir", str(configured)])
    assert forced.exit_code == 0, _out(forced)
    assert "version 3" in forced.output


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "bad.json"
    bad.write_text('{"tenant_id": "x", ')
    result = runner.invoke(app, ["config", "apply", str(bad), "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "invalid configuration" in _out(result)
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({**msgspec.to_builtins(demo_config()), "services": "teller"}))
    result = runner.invoke(app, ["config", "apply", str(wrong_type), "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "invalid configuration" in _out(result)


def test_structurally_invalid_config_is_refused_with_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = demo_config()
    broken = replace(config, counters=[*config.counters, Counter(id="9", name="Nine", services=["nope"])])
    result = runner.invoke(app, ["config", "apply", str(_write_config(tmp_path / "b.json", broken)),
                                 "--data-dir", str(data)])  # fmt: skip
    assert result.exit_code == 1
    message = _out(result)
    assert "invalid_config" in message
    assert "nope" in message


def test_commands_without_database_fail_clearly(tmp_path: Path) -> None:
    for args in (["status"], ["verify"], ["config", "show"]):
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "none")])
        assert result.exit_code == 1, args
        assert "no appliance database" in _out(result)


def test_users_add_and_list(configured: Path) -> None:
    result = runner.invoke(app, ["users", "add", "bob", "--role", "agent", "--counters", "1,2",
                                 "--password", "secret-123", "--data-dir", str(configured)])  # fmt: skip
    assert result.exit_code == 0, _out(result)
    listed = runner.invoke(app, ["users", "list", "--data-dir", str(configured)])
    assert listed.exit_code == 0
    assert "bob" in listed.output
    assert "1,2" in listed.output
    short = runner.invoke(app, ["users", "add", "eve", "--password", "short", "--data-dir", str(configured)])
    assert short.exit_code == 1


def test_verify_detects_a_tampered_event(configured: Path) -> None:
    service = QueueService(configured)
    try:
        for _ in range(3):
            service.execute(c.Enqueue(actor="test", service_id="teller"))
    finally:
        service.stop()
    assert runner.invoke(app, ["verify", "--data-dir", str(configured)]).exit_code == 0

    conn = sqlite3.connect(configured / "qms.sqlite3")
    try:
        conn.execute("DROP TRIGGER events_append_only_update")
        (body,) = conn.execute("SELECT body FROM events WHERE seq = 3").fetchone()
        tampered = bytes(body).replace(b"A002", b"A999")
        assert tampered != bytes(body)
        conn.execute("UPDATE events SET body = ? WHERE seq = 3", (tampered,))
        conn.commit()
    finally:
        conn.close()

    result = runner.invoke(app, ["verify", "--data-dir", str(configured)])
    assert result.exit_code == 1
    message = _out(result)
    assert "seq 3" in message
    assert "BROKEN after 2 good events" in message


def test_backup_and_restore_round_trip(configured: Path, tmp_path: Path) -> None:
    service = QueueService(configured)
    try:
        for _ in range(3):
            service.execute(c.Enqueue(service_id="teller"))
    finally:
        service.stop()
    copy = tmp_path / "backup.sqlite3"
    result = runner.invoke(app, ["backup", str(copy), "--data-dir", str(configured)])
    assert result.exit_code == 0, _out(result)
    assert "4 events" in result.output
    again = runner.invoke(app, ["backup", str(copy), "--data-dir", str(configured)])
    assert again.exit_code != 0  # never overwrites

    restored = tmp_path / "restored"
    result = runner.invoke(app, ["restore", str(copy), "--data-dir", str(restored)])
    assert result.exit_code == 0, _out(result)
    status = runner.invoke(app, ["status", "--json", "--data-dir", str(restored)])
    assert json.loads(status.output)["tickets"] == {"waiting": 3}
    refused = runner.invoke(app, ["restore", str(copy), "--data-dir", str(restored)])
    assert refused.exit_code != 0
    assert "--yes" in _out(refused)


def test_restore_refuses_a_tampered_backup(configured: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backup.sqlite3"  # an old single-file backup (archives: tests/edge/test_backup.py)
    source = sqlite3.connect(configured / "qms.sqlite3")
    conn = sqlite3.connect(copy)
    source.backup(conn)
    source.close()
    conn.execute("DROP TRIGGER events_append_only_update")
    # flip the first hex digit (a fixed replacement would leave 1 hash in 16 unchanged)
    conn.execute(
        "UPDATE events SET hash = CASE WHEN substr(hash, 1, 1) = 'f' THEN '0' ELSE 'f' END || substr(hash, 2)"
        " WHERE seq = 1"
    )
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["restore", str(copy), "--data-dir", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "does not verify" in _out(result)


def test_cli_config_and_user_changes_are_audited(configured: Path, tmp_path: Path) -> None:
    config_file = _write_config(tmp_path / "v2.json", replace(demo_config(), version=1, name="Renamed"))
    assert runner.invoke(app, ["config", "apply", str(config_file), "--data-dir", str(configured)]).exit_code == 0
    added = runner.invoke(
        app, ["users", "add", "clerk", "--role", "agent", "--counters", "1", "--password", "longenough1",
              "--data-dir", str(configured)],
    )  # fmt: skip
    assert added.exit_code == 0, _out(added)
    conn = sqlite3.connect(configured / "qms.sqlite3")
    rows = conn.execute("SELECT actor, action, target, seq FROM audit ORDER BY id").fetchall()
    conn.close()
    assert [r[:3] for r in rows[:2]] == [("cli", "config_replace", "config:jkt-sudirman")] * 2  # fixture's, then v2
    assert [r[3] for r in rows[:2]] == [1, 2]  # the config.applied events they produced
    assert rows[2] == ("cli", "user_create", "user:clerk", None)
