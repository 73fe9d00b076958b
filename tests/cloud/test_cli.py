"""`qms-cloud`: issuing branch credentials writes a private seed and the nats-server users; listing branches."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.cli import app
from cloud.credentials import public_key_of

runner = CliRunner()


def test_branch_add_issues_an_nkey_and_the_server_users(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    args = ["--db-url", db, "--keys-dir", str(tmp_path / "keys"), "--auth-out", str(tmp_path / "auth.conf")]
    first = runner.invoke(app, ["branch", "add", "acme", "jkt-sudirman", *args])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["branch", "add", "acme", "bdg-dago", *args])
    assert second.exit_code == 0, second.output
    seed = tmp_path / "keys" / "acme.jkt-sudirman.nk"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert seed.read_text().startswith("SU")
    auth = (tmp_path / "auth.conf").read_text()
    assert public_key_of(seed) in auth
    assert '"qms.evt.acme.jkt-sudirman"' in auth
    assert '"_INBOX_acme_bdg-dago.>"' in auth
    assert public_key_of(tmp_path / "keys" / "hub.nk") in auth
    rotated = runner.invoke(app, ["branch", "add", "acme", "jkt-sudirman", *args])
    assert rotated.exit_code == 0
    assert public_key_of(seed) in (tmp_path / "auth.conf").read_text()
    assert (tmp_path / "auth.conf").read_text().count("qms.evt.acme.jkt-sudirman") == 1


def test_branch_users_regenerates_the_server_users_without_rotating_a_key(tmp_path: Path) -> None:
    """A hub upgraded to heartbeats regenerates its users file (now allowing qms.hb.…) with every seed kept: before,
    only `branch add` wrote it, which rotates a branch's key (new seed on the appliance, printed status links 404)."""
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    keys, auth = tmp_path / "keys", tmp_path / "auth.conf"
    args = ["--db-url", db, "--keys-dir", str(keys), "--auth-out", str(auth)]
    assert runner.invoke(app, ["branch", "add", "acme", "jkt-sudirman", *args]).exit_code == 0
    assert runner.invoke(app, ["branch", "add", "beta", "jkt-sudirman", *args]).exit_code == 0
    seeds = {p.name: p.read_text() for p in keys.glob("*.nk")}
    auth.write_text("# a users file from before heartbeats\n")
    result = runner.invoke(app, ["branch", "users", *args])
    assert result.exit_code == 0, result.output
    assert "no key rotated" in result.output
    assert {p.name: p.read_text() for p in keys.glob("*.nk")} == seeds
    text = auth.read_text()
    for tenant in ("acme", "beta"):
        assert public_key_of(keys / f"{tenant}.jkt-sudirman.nk") in text
        assert f'"qms.hb.{tenant}.jkt-sudirman"' in text
    assert public_key_of(keys / "hub.nk") in text


def test_branch_add_refuses_ids_that_are_not_subject_tokens(tmp_path: Path) -> None:
    result = runner.invoke(app, ["branch", "add", "acme", "jkt.sudirman", "--db-url",
                                 f"sqlite:///{tmp_path / 'c.sqlite3'}"])  # fmt: skip
    assert result.exit_code == 1
    assert "cannot be a NATS subject token" in result.output


def test_branch_list_on_an_empty_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["branch", "list", "--db-url", f"sqlite:///{tmp_path / 'c.sqlite3'}"])
    assert result.exit_code == 0
    assert result.output == ""


def test_branch_list_shows_a_branch_from_the_moment_it_is_added(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    args = ["--db-url", db, "--keys-dir", str(tmp_path / "keys"), "--auth-out", str(tmp_path / "auth.conf")]
    for tenant in ("acme", "beta"):  # the same branch id in two tenants: two branches
        added = runner.invoke(app, ["branch", "add", tenant, "jkt-sudirman", *args])
        assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["branch", "list", "--db-url", db])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[0] for line in lines] == ["acme.jkt-sudirman", "beta.jkt-sudirman"]
    assert all("never connected" in line and "events        0" in line for line in lines)
    assert (tmp_path / "keys" / "beta.jkt-sudirman.nk").read_text() != (
        tmp_path / "keys" / "acme.jkt-sudirman.nk"
    ).read_text()


def test_config_push_without_a_nats_server_is_refused_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the push went silently to nats://127.0.0.1:4222 (whatever listened there) and the hub recorded a
    version no branch could see."""
    monkeypatch.delenv("QMS_NATS_URL", raising=False)
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    doc = tmp_path / "config.json"
    doc.write_text("{}")
    result = CliRunner().invoke(app, ["config", "push", "acme", "jkt-sudirman", str(doc), "--db-url", store_url])
    assert result.exit_code == 2
    assert "no NATS server given" in result.output
    assert not (tmp_path / "hub.sqlite3").exists()
