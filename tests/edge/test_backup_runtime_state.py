"""A box's runtime status files (last S3 upload, drill, update, certificate renewal, cloud link) say what that box
did: a backup leaves them out and a restore does not put them back, even from an archive made before they were left
out, so a new box never reports the old box's "last S3 success" or "drill passed" as its own."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from typer.testing import CliRunner, Result

from edge.cli import app
from tests.support.appliance import seed_demo

RUNTIME = {
    "backup-ship.json": {"last_success": 1_700_000_000.0, "target": "s3"},
    "drill.json": {"last_success": 1_700_000_000.0},
    "update-status.json": {"ok": True, "version": "9.9.9"},
    "tls/renewal.json": {"renewed_at": 1_700_000_000.0},
    "cloud-link.json": {"link": "up", "pid": 1},
}


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def old_box(tmp_path: Path) -> Path:
    old = tmp_path / "old-box"
    seed_demo(old)
    for rel, body in RUNTIME.items():
        (old / rel).parent.mkdir(parents=True, exist_ok=True)
        (old / rel).write_text(json.dumps(body))
    (old / "branch-note.json").write_text("{}")  # an ordinary file of the data dir: it travels
    return old


def test_a_backup_leaves_the_boxes_runtime_status_out_and_a_new_box_has_none(tmp_path: Path) -> None:
    old = old_box(tmp_path)
    archive = tmp_path / "old.tar.gz"
    assert cli("backup", str(archive), "--data-dir", str(old)).exit_code == 0
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
    assert {f"data/{rel}" for rel in RUNTIME} & names == set()
    assert "data/branch-note.json" in names
    new = tmp_path / "new-box"
    restored = cli("restore", str(archive), "--data-dir", str(new))
    assert restored.exit_code == 0, restored.output
    assert [rel for rel in RUNTIME if (new / rel).exists()] == []
    assert (new / "branch-note.json").is_file()


def _with_runtime_state(archive: Path, out: Path) -> None:
    """The archive as a backup made before runtime state was left out: the files in, listed in the manifest."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]  # type: ignore[union-attr]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, original in members:
            body = original
            if member.name == "manifest.json":
                assert body is not None
                manifest = json.loads(body)
                for rel, content in RUNTIME.items():
                    raw = json.dumps(content).encode()
                    manifest["files"].append({"path": rel, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
                body = json.dumps(manifest).encode()
                member.size = len(body)
            tar.addfile(member, io.BytesIO(body) if body is not None else None)
        for rel, content in RUNTIME.items():
            raw = json.dumps(content).encode()
            info = tarfile.TarInfo(f"data/{rel}")
            info.size, info.mode = len(raw), 0o600
            tar.addfile(info, io.BytesIO(raw))
    out.write_bytes(gzip.compress(buffer.getvalue()))


def test_a_restore_from_an_older_archive_does_not_put_them_back(tmp_path: Path) -> None:
    old = old_box(tmp_path)
    archive = tmp_path / "old.tar.gz"
    assert cli("backup", str(archive), "--data-dir", str(old)).exit_code == 0
    older = tmp_path / "older.tar.gz"
    _with_runtime_state(archive, older)
    new = tmp_path / "new-box"
    restored = cli("restore", str(older), "--data-dir", str(new))
    assert restored.exit_code == 0, restored.output
    assert [rel for rel in RUNTIME if (new / rel).exists()] == []
    assert (new / "branch-note.json").is_file()
