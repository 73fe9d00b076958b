"""`qms-cloud users`: add (prompted or given password), list (table, JSON), disable, re-add; what is refused; the
commands are documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer.main
from typer.testing import CliRunner

from cloud.cli import app
from cloud.hq_users import check_password
from cloud.store import create_store_engine, hq_users

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# The README is a front door; commands are documented in it or in docs/ (the HQ admin guide).
README = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
PASSWORD = "correct-horse-battery"


def stored(db: str) -> dict[str, sa.Row[tuple[object, ...]]]:
    engine = create_store_engine(db)
    with engine.connect() as conn:
        rows = {r.username: r for r in conn.execute(sa.select(hq_users))}
    engine.dispose()
    return rows


def test_add_list_disable_round_trip(tmp_path: Path) -> None:
    db = ["--db-url", f"sqlite:///{tmp_path / 'cloud.sqlite3'}"]
    added = runner.invoke(app, ["users", "add", "ana", "--role", "auditor", "--tenant", "acme", "--tenant", "globex",
                                "--password", PASSWORD, *db])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "user ana added: auditor, tenants acme, globex" in added.output
    prompted = runner.invoke(app, ["users", "add", "root", "--role", "platform_admin", "--tenant", "*", *db],
                             input=f"{PASSWORD}-2\n{PASSWORD}-2\n")  # fmt: skip
    assert prompted.exit_code == 0, prompted.output
    assert f"{PASSWORD}-2" not in prompted.output  # not echoed
    table = runner.invoke(app, ["users", "list", *db])
    assert table.exit_code == 0
    assert [line.split()[:3] for line in table.output.splitlines()] == [
        ["ana", "auditor", "active"], ["root", "platform_admin", "active"]]  # fmt: skip
    listed = json.loads(runner.invoke(app, ["users", "list", "--json", *db]).output)
    assert [(u["username"], u["role"], u["tenants"], u["active"]) for u in listed] == [
        ("ana", "auditor", ["acme", "globex"], True), ("root", "platform_admin", ["*"], True)]  # fmt: skip
    rows = stored(db[1])
    assert rows["ana"].password_hash.startswith("$argon2id$")
    assert check_password(rows["root"].password_hash, f"{PASSWORD}-2")
    for output in (table.output, json.dumps(listed)):
        assert PASSWORD not in output
        assert "$argon2" not in output

    disabled = runner.invoke(app, ["users", "disable", "ana", *db])
    assert disabled.exit_code == 0
    assert not stored(db[1])["ana"].active
    assert "disabled" in runner.invoke(app, ["users", "list", *db]).output.splitlines()[0]
    readded = runner.invoke(app, ["users", "add", "ana", "--role", "hq_viewer", "--tenant", "acme",
                                  "--password", "another-password", *db])  # fmt: skip
    assert readded.exit_code == 0
    assert "user ana updated" in readded.output
    again = stored(db[1])["ana"]
    assert again.active
    assert json.loads(again.tenants) == ["acme"]
    assert check_password(again.password_hash, "another-password")
    assert not check_password(again.password_hash, PASSWORD)
    assert again.created_at == rows["ana"].created_at
    assert runner.invoke(app, ["users", "disable", "nobody", *db]).exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ana", "--role", "hq_viewer", "--tenant", "acme", "--password", "short"], "at least 10 characters"),
        (["ana", "--role", "hq_viewer", "--password", PASSWORD], "at least one --tenant"),
        (["ana", "--role", "hq_viewer", "--tenant", "*", "--password", PASSWORD], "only platform_admin"),
        (["ana", "--role", "branch_manager", "--tenant", "acme", "--password", PASSWORD], "at least one --branch"),
        (
            ["ana", "--role", "branch_manager", "--tenant", "acme", "--branch", "globex/sby", "--password", PASSWORD],
            "belong to its one --tenant",
        ),
        (
            ["ana", "--role", "auditor", "--tenant", "acme", "--branch", "acme/jkt", "--password", PASSWORD],
            "only a branch_manager",
        ),
        (["ana", "--role", "platform_admin", "--tenant", "acme", "--password", PASSWORD], "give --tenant '*'"),
        (["ana", "--role", "boss", "--tenant", "acme", "--password", PASSWORD], "role 'boss'"),
        (["ana", "--role", "hq_viewer", "--tenant", "a.b", "--password", PASSWORD], "cannot be a NATS subject"),
        (["a:b", "--role", "hq_viewer", "--tenant", "acme", "--password", PASSWORD], "username 'a:b'"),
    ],
)
def test_add_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    result = runner.invoke(app, ["users", "add", *args, "--db-url", db])
    assert result.exit_code == 1
    assert message in result.output
    assert stored(db) == {}


def test_legacy_roles_and_a_branch_manager(tmp_path: Path) -> None:
    db = ["--db-url", f"sqlite:///{tmp_path / 'cloud.sqlite3'}"]
    legacy = runner.invoke(app, ["users", "add", "old", "--role", "hq_admin", "--tenant", "acme", "--password",
                                 PASSWORD, *db])  # fmt: skip
    assert "user old added: tenant_admin, tenants acme" in legacy.output
    branches = ["--branch", "acme/jkt-sudirman", "--branch", "acme/bdg-dago"]
    manager = runner.invoke(app, ["users", "add", "rina", "--role", "branch_manager", "--tenant", "acme", *branches,
                                  "--password", PASSWORD, *db])  # fmt: skip
    assert manager.exit_code == 0, manager.output
    assert "branch_manager, tenants acme, branches acme/jkt-sudirman, acme/bdg-dago" in manager.output
    listed = {u["username"]: u for u in json.loads(runner.invoke(app, ["users", "list", "--json", *db]).output)}
    assert listed["rina"]["branches"] == ["acme/bdg-dago", "acme/jkt-sudirman"]
    assert listed["old"]["branches"] == []


def test_a_prompted_password_that_is_too_short_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    result = runner.invoke(app, ["users", "add", "ana", "--role", "hq_viewer", "--tenant", "acme", "--db-url", db],
                           input="short\nshort\n")  # fmt: skip
    assert result.exit_code == 1
    assert "at least 10 characters" in result.output


def test_the_users_commands_are_documented() -> None:
    group = typer.main.get_group(app)
    names = set(getattr(group.commands["users"], "commands", {}))
    assert names == {"add", "list", "disable"}
    for name in names:
        assert f"qms-cloud users {name}" in README
