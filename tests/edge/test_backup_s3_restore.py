"""`qms-edge restore --from-s3` / `qms-edge drill --from-s3`: a technician restoring a dead branch from the S3 store.

Against a real S3 API server (moto's, boto3 over HTTP): a sealed backup the appliance shipped there is restored onto
a blank box with the hub's private key (`--key`) and drilled the same way; without the key the appliance names the
copy, says plainly it cannot open it and prints the hub-side fetch, which works as printed; a public key, another
hub's key, an expired copy and missing settings are each refused in words, with nothing restored and no plain copy
left behind."""

from __future__ import annotations

import re
import shlex
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from edge import backup_ship
from edge.cli import app as edge_app
from tests.edge.conftest import S3_BRANCH, S3_TENANT, s3_shipping_env
from tests.support.appliance import seed_demo


def _tickets(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT ticket_id FROM tickets")}


def _shipped(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch, clock: datetime | None = None) -> str:
    """A branch that shipped one sealed backup to the store; the technician's shell has the store's settings (and,
    like an enrolled appliance's, QMS_TENANT/QMS_BRANCH). The backup's name."""
    data = tmp_path / "qms"
    seed_demo(data)
    env = s3_shipping_env(tmp_path, endpoint)
    status = backup_ship.run_once(backup_ship.ShipSettings.from_env(data, env), clock=clock)
    assert status["s3_error"] is None
    assert status["s3_pending"] == 0
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return str(status["last_backup"])


def _edge(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(edge_app, list(args))
    return done.exit_code, done.output


def test_restore_and_drill_from_s3_with_the_hubs_key(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _shipped(tmp_path, s3, monkeypatch)
    key = str(tmp_path / "hub" / "backup.key")
    blank = tmp_path / "new-box"
    code, out = _edge("restore", "--from-s3", "--key", key, "--data-dir", str(blank))
    assert code == 0, out
    assert f"fetching {name}.qmsseal" in out
    assert "restored " in out
    assert _tickets(blank / "qms.sqlite3") == _tickets(tmp_path / "qms" / "qms.sqlite3")
    assert re.search(r"and \d+ files", out)  # the whole archive came back (not an old database-only backup)

    code, out = _edge("drill", "--from-s3", "--key", key, "--data-dir", str(blank), "--name", f"{name}.qmsseal")
    assert code == 0, out
    assert "restore drill passed" in out
    # The opened (readable) archive lived only in a private scratch dir, gone afterwards.
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.startswith("qms-s3-restore-")]

    code, out = _edge("restore", "--from-s3", "--key", key, "--data-dir", str(blank))
    assert code == 1
    assert "--yes" in out  # the usual refusal over an existing database, after the download


def test_without_the_hubs_key_it_says_so_and_the_printed_hub_fetch_works(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _shipped(tmp_path, s3, monkeypatch)
    blank = tmp_path / "new-box"
    code, out = _edge("restore", "--from-s3", "--data-dir", str(blank), "--yes")
    assert code == 1
    assert f"found {name}.qmsseal" in out
    assert "sealed to the hub's backup key" in out
    assert "cannot open it" in out
    assert not (blank / "qms.sqlite3").exists()
    hub_line = next(line for line in out.splitlines() if "qms-cloud backups fetch --from-s3" in line)
    hub_command = shlex.split(hub_line[hub_line.index("qms-cloud") :])
    assert hub_command[:3] == ["qms-cloud", "backups", "fetch"]
    assert f"--tenant {S3_TENANT} --branch {S3_BRANCH} --name {name}.qmsseal" in hub_line
    then = re.search(r"run: (qms-edge restore .*)$", out, flags=re.MULTILINE)
    assert then is not None, out
    assert then.group(1) == f"qms-edge restore qms-restore.tar.gz --data-dir {blank} --yes"

    # At the hub, the command as printed (plus the hub's key, which the hub has in QMS_HUB_BACKUP_KEY) opens it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMS_HUB_BACKUP_KEY", str(tmp_path / "hub" / "backup.key"))
    fetched = CliRunner().invoke(cloud_app, hub_command[1:])
    assert fetched.exit_code == 0, fetched.output
    code, out = _edge(*shlex.split(then.group(1))[1:])
    assert code == 0, out
    assert _tickets(blank / "qms.sqlite3") == _tickets(tmp_path / "qms" / "qms.sqlite3")

    code, out = _edge("drill", "--from-s3", "--data-dir", str(tmp_path / "qms"))
    assert code == 1
    assert "run: qms-edge drill --backup qms-restore.tar.gz" in out


def test_wrong_keys_expired_copies_and_missing_settings_are_refused_in_words(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shipped(tmp_path, s3, monkeypatch)
    blank = tmp_path / "new-box"
    public = str(tmp_path / "hub" / "backup.pub")  # what the appliance holds (backup-recipient.pem)
    code, out = _edge("restore", "--from-s3", "--key", public, "--data-dir", str(blank))
    assert code == 1
    assert "is a public key" in out
    assert "fetching" not in out  # refused before the download, not after announcing it

    code, out = _edge("restore", "--from-s3", "--key", str(tmp_path / "no-such.key"), "--data-dir", str(blank))
    assert code == 1
    assert "cannot read the key" in out
    assert "fetching" not in out

    other = tmp_path / "other-hub" / "backup.key"
    assert CliRunner().invoke(cloud_app, ["backups", "keygen", "--key", str(other)]).exit_code == 0
    code, out = _edge("restore", "--from-s3", "--key", str(other), "--data-dir", str(blank))
    assert code == 1
    assert "sealed to another key" in out
    assert not (blank / "qms.sqlite3").exists()
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.startswith("qms-s3-restore-")]

    code, out = _edge("restore", "--from-s3", "--name", "qms-nothing.tar.gz.qmsseal", "--data-dir", str(blank))
    assert code == 1
    assert "no unexpired backup named qms-nothing.tar.gz.qmsseal" in out

    monkeypatch.delenv("QMS_BACKUP_S3_BUCKET")
    code, out = _edge("restore", "--from-s3", "--data-dir", str(blank))
    assert code == 1
    assert "needs the store's settings: QMS_BACKUP_S3_BUCKET" in out

    code, out = _edge("restore", "--data-dir", str(blank))
    assert code == 2
    assert "either a backup FILE or --from-s3" in out


def test_an_expired_copy_is_never_restored(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _shipped(tmp_path, s3, monkeypatch, clock=datetime.now(UTC) - timedelta(days=8))  # expired a day ago (7 days)
    code, out = _edge("restore", "--from-s3", "--key", str(tmp_path / "hub" / "backup.key"),
                      "--data-dir", str(tmp_path / "new-box"))  # fmt: skip
    assert code == 1
    assert f"no unexpired backup for {S3_TENANT}/{S3_BRANCH}" in out
    assert "(1 expired there)" in out
    assert not (tmp_path / "new-box" / "qms.sqlite3").exists()
