"""`qms-edge backup`, `restore` and `verify` on real SQLite files: the whole data dir in one checked archive, and
physical damage (a corrupt page) caught as well as a broken hash chain."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from edge.auth import load_secret
from edge.cli import app
from edge.demo import demo_config
from edge.engine import commands as c
from edge.service import QueueService
from tests.support.appliance import seed_demo

runner = CliRunner()


def _out(result: object) -> str:
    out = getattr(result, "output", "") or ""
    with contextlib.suppress(ValueError):
        out += getattr(result, "stderr", "") or ""
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def branch_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module (hashing the demo passwords is deliberately slow); each test gets its own copy."""
    data = tmp_path_factory.mktemp("template") / "qms"
    seed_demo(data)
    service = QueueService(data)
    try:
        for _ in range(40):
            service.execute(c.Enqueue(actor="test", service_id="teller"))
    finally:
        service.stop()
    load_secret(data)
    (data / "mqtt.json").write_text('{"host": "127.0.0.1", "port": 1883, "password": "s3cret"}')
    pack = data / "voice" / "id"
    pack.mkdir(parents=True)
    (pack / "manifest.json").write_text('{"lang": "id"}')
    (pack / "a.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    return data


@pytest.fixture
def branch(branch_template: Path, tmp_path: Path) -> Path:
    """A configured appliance data dir with tickets, its signing key, MQTT settings and a voice pack."""
    return Path(shutil.copytree(branch_template, tmp_path / "qms"))


def corrupt_a_page(db: Path, table: str = "tickets") -> None:
    """Overwrite the middle of one of `table`'s b-tree leaf pages (not the file header), as a failing SD card does."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    assert pages, f"{table} has no leaf page"
    with db.open("r+b") as f:
        f.seek((pages[len(pages) // 2] - 1) * page_size + page_size // 4)
        f.write(b"\xa5" * (page_size // 2))


def test_verify_and_backup_fail_on_a_corrupt_page(branch: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["verify", "--data-dir", str(branch)]).exit_code == 0
    corrupt_a_page(branch / "qms.sqlite3")

    verified = runner.invoke(app, ["verify", "--data-dir", str(branch)])
    assert verified.exit_code == 1, _out(verified)
    assert "integrity" in _out(verified)
    assert "chain intact" not in _out(verified)

    dest = tmp_path / "b.tar.gz"
    backed = runner.invoke(app, ["backup", str(dest), "--data-dir", str(branch)])
    assert backed.exit_code != 0, _out(backed)
    assert "corrupt" in _out(backed)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "qms"] == []  # no staging leftovers either


def test_verify_reports_a_damaged_event_page_without_a_traceback(branch: Path) -> None:
    corrupt_a_page(branch / "qms.sqlite3", table="events")
    verified = runner.invoke(app, ["verify", "--data-dir", str(branch)])
    assert verified.exit_code == 1
    assert verified.exception is None or isinstance(verified.exception, SystemExit), verified.exception
    assert "integrity" in _out(verified) or "malformed" in _out(verified)


def _archive(path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    return json.loads(members.pop("manifest.json")), members


def test_backup_is_one_private_archive_of_everything_the_appliance_needs(branch: Path, tmp_path: Path) -> None:
    dest = tmp_path / "branch.tar.gz"
    result = runner.invoke(app, ["backup", str(dest), "--data-dir", str(branch)])
    assert result.exit_code == 0, _out(result)
    assert _mode(dest) == 0o600

    manifest, members = _archive(dest)
    assert manifest["format"] == "qms-edge-backup"
    assert manifest["format_version"] == 1
    assert manifest["branch_id"] == "jkt-sudirman"
    assert manifest["tenant_id"] == "demo-bank"
    assert manifest["appliance_version"]
    assert manifest["created_at"]
    log = manifest["log"]
    assert isinstance(log, dict)
    assert log["last_seq"] == 41
    assert len(str(log["last_hash"])) == 64
    files = {f["path"]: f for f in manifest["files"]}  # type: ignore[attr-defined]
    assert set(files) == {"qms.sqlite3", "token.key", "mqtt.json", "voice/id/manifest.json", "voice/id/a.wav"}
    assert set(members) == {f"data/{p}" for p in files}
    for path, entry in files.items():
        body = members[f"data/{path}"]
        assert entry["size"] == len(body)
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert members["data/token.key"] == (branch / "token.key").read_bytes()


def test_restore_on_a_new_box_puts_every_file_back_privately(branch: Path, tmp_path: Path) -> None:
    dest = tmp_path / "branch.tar.gz"
    assert runner.invoke(app, ["backup", str(dest), "--data-dir", str(branch)]).exit_code == 0

    fresh = tmp_path / "new-box"
    result = runner.invoke(app, ["restore", str(dest), "--data-dir", str(fresh)])
    assert result.exit_code == 0, _out(result)
    assert "41" in result.output
    for name in ("token.key", "mqtt.json", "voice/id/manifest.json", "voice/id/a.wav"):
        assert (fresh / name).read_bytes() == (branch / name).read_bytes(), name
        assert _mode(fresh / name) == 0o600, name
    assert _mode(fresh) == 0o700
    assert _mode(fresh / "voice") == 0o700
    assert _mode(fresh / "qms.sqlite3") == 0o600
    status = runner.invoke(app, ["status", "--json", "--data-dir", str(fresh)])
    assert json.loads(status.output)["tickets"] == {"waiting": 40}
    assert runner.invoke(app, ["verify", "--data-dir", str(fresh)]).exit_code == 0

    again = runner.invoke(app, ["restore", str(dest), "--data-dir", str(fresh)])
    assert again.exit_code != 0
    assert "--yes" in _out(again)


def _rewrite(src: Path, dest: Path, change: dict[str, bytes], *, manifest: dict[str, object] | None = None) -> None:
    """Copy an archive, replacing some members' bytes (and optionally the manifest)."""
    with tarfile.open(src, "r:gz") as tar, tarfile.open(dest, "w:gz") as out:
        for member in tar.getmembers():
            body = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json" and manifest is not None:
                body = json.dumps(manifest).encode()
            body = change.get(member.name, body)
            member.size = len(body)
            out.addfile(member, io.BytesIO(body))


def _restore_refused(archive: Path, target: Path) -> str:
    result = runner.invoke(app, ["restore", str(archive), "--yes", "--data-dir", str(target)])
    assert result.exit_code != 0, _out(result)
    return _out(result)


def test_restore_refuses_damaged_foreign_and_tampered_archives(branch: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    assert runner.invoke(app, ["backup", str(good), "--data-dir", str(branch)]).exit_code == 0
    target = tmp_path / "target"
    seed_demo(target)
    before = (target / "qms.sqlite3").read_bytes()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "damaged" in _restore_refused(truncated, target)

    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(good, tampered, {"data/token.key": b"x" * 32})
    assert "checksum" in _restore_refused(tampered, target)

    manifest, _ = _archive(good)
    foreign = tmp_path / "foreign.tar.gz"
    _rewrite(good, foreign, {}, manifest={**manifest, "format": "something-else"})
    assert "not a qms-edge backup" in _restore_refused(foreign, target)

    no_manifest = tmp_path / "plain.tar.gz"
    with tarfile.open(no_manifest, "w:gz") as tar:
        tar.add(branch / "token.key", arcname="token.key")
    assert "not a qms-edge backup" in _restore_refused(no_manifest, target)

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not a qms-edge backup" in _restore_refused(text, target)

    gz = tmp_path / "junk.gz"
    gz.write_bytes(gzip.compress(b"not a tar"))
    assert "damaged" in _restore_refused(gz, target)

    assert (target / "qms.sqlite3").read_bytes() == before  # nothing replaced
    assert not (target / "voice").exists()


def test_an_old_single_file_backup_still_restores(branch: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    source = sqlite3.connect(f"file:{branch / 'qms.sqlite3'}?mode=ro", uri=True)
    target = sqlite3.connect(old)
    source.backup(target)
    target.close()
    source.close()

    restored = tmp_path / "restored"
    result = runner.invoke(app, ["restore", str(old), "--data-dir", str(restored)])
    assert result.exit_code == 0, _out(result)
    assert "token.key" in _out(result)  # says what an old backup did not carry
    status = runner.invoke(app, ["status", "--json", "--data-dir", str(restored)])
    assert json.loads(status.output)["tickets"] == {"waiting": 40}


def test_restore_refuses_an_archive_whose_database_chain_is_broken(branch: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    assert runner.invoke(app, ["backup", str(good), "--data-dir", str(branch)]).exit_code == 0
    manifest, members = _archive(good)
    db = tmp_path / "inner.sqlite3"
    db.write_bytes(members["data/qms.sqlite3"])
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET body = body || x'20' WHERE seq = 5")
    conn.commit()
    conn.close()
    body = db.read_bytes()
    files = [
        {**f, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()} if f["path"] == "qms.sqlite3" else f
        for f in manifest["files"]  # type: ignore[attr-defined]
    ]
    forged = tmp_path / "forged.tar.gz"
    _rewrite(good, forged, {"data/qms.sqlite3": body}, manifest={**manifest, "files": files})
    message = _restore_refused(forged, tmp_path / "target")
    assert "does not verify" in message
    assert "seq 5" in message


def test_restore_does_not_turn_one_branch_into_another_by_accident(branch: Path, tmp_path: Path) -> None:
    archive = tmp_path / "jkt.tar.gz"
    assert runner.invoke(app, ["backup", str(archive), "--data-dir", str(branch)]).exit_code == 0
    other = tmp_path / "bdg"
    seed_demo(other, config=msgspec.structs.replace(demo_config(), branch_id="bdg-dago"))

    message = _restore_refused(archive, other)
    assert "branch bdg-dago" in message
    assert "jkt-sudirman" in message
    assert "--other-branch" in message
    assert not (other / "voice").exists()

    result = runner.invoke(app, ["restore", str(archive), "--yes", "--other-branch", "--data-dir", str(other)])
    assert result.exit_code == 0, _out(result)
    status = runner.invoke(app, ["status", "--json", "--data-dir", str(other)])
    assert json.loads(status.output)["branch_id"] == "jkt-sudirman"


def test_restore_replaces_a_database_too_damaged_to_open(branch: Path, tmp_path: Path) -> None:
    archive = tmp_path / "good.tar.gz"
    assert runner.invoke(app, ["backup", str(archive), "--data-dir", str(branch)]).exit_code == 0
    db = branch / "qms.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with db.open("r+b") as f:
        f.write(b"\x00" * 100)  # the file header itself: SQLite cannot open this file at all
    assert runner.invoke(app, ["verify", "--data-dir", str(branch)]).exit_code == 1

    result = runner.invoke(app, ["restore", str(archive), "--yes", "--data-dir", str(branch)])
    assert result.exit_code == 0, _out(result)
    assert "damaged" in result.output
    assert runner.invoke(app, ["verify", "--data-dir", str(branch)]).exit_code == 0
    kept = [p for p in branch.iterdir() if p.name.startswith("qms.sqlite3.damaged-")]
    assert kept
    assert all(_mode(p) == 0o600 for p in kept)
    inside = branch / "inside.tar.gz"  # a backup written into the data dir itself
    assert runner.invoke(app, ["backup", str(inside), "--data-dir", str(branch)]).exit_code == 0
    manifest, _ = _archive(inside)
    paths = [f["path"] for f in manifest["files"]]  # type: ignore[attr-defined]
    assert not [p for p in paths if "damaged" in p or p == "inside.tar.gz"], paths


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_a_restore_run_as_root_gives_the_files_to_the_data_dirs_owner(branch: Path, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    assert runner.invoke(app, ["backup", str(archive), "--data-dir", str(branch)]).exit_code == 0
    new = tmp_path / "new-box"
    new.mkdir(mode=0o700)
    os.chown(new, 65534, 65534)  # the appliance's own user (here: nobody) made the data dir at install

    result = runner.invoke(app, ["restore", str(archive), "--data-dir", str(new)])
    assert result.exit_code == 0, _out(result)
    owners = {str(p.relative_to(new)): (p.stat().st_uid, p.stat().st_gid) for p in new.rglob("*")}
    assert {name: owner for name, owner in owners.items() if owner != (65534, 65534)} == {}
    assert "voice/id/a.wav" in owners
    assert "qms.sqlite3" in owners


@pytest.mark.parametrize(("damage", "command"), [("page", ["status"]), ("header", ["users", "list"])])
def test_a_command_on_a_corrupt_database_says_so_without_a_traceback(
    branch: Path, damage: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real entry point (`app(...)`, as the `qms-edge` script calls it): one line naming the damage and
    the way out, exit 1 — before, `qms-edge status` on a damaged page printed a 40-line traceback."""
    db = branch / "qms.sqlite3"
    if damage == "page":
        corrupt_a_page(db)
    else:  # the header gone: SQLite says "file is not a database"
        corrupt_a_page(db)
        with db.open("r+b") as f:
            f.write(b"\x00" * 100)
    with pytest.raises(SystemExit) as exited:
        app([*command, "--data-dir", str(branch)], prog_name="qms-edge")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "the database file is corrupt" in err
    assert "qms-edge verify" in err
    assert "qms-edge restore" in err
    assert "Traceback" not in err
