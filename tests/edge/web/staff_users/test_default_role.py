"""A new user is an agent unless someone chooses otherwise (least privilege), in the admin form and on the CLI."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from edge.auth import find_user
from edge.cli import app
from tests.edge.web.test_staff import Staff


def test_the_new_user_form_preselects_agent_and_an_edit_keeps_the_users_role(client: Any) -> None:
    admin = Staff(client)
    admin.login("admin")
    form = admin.client.get("/staff/admin/users").text
    selected = re.findall(r'<option value="(\w+)" selected>', form)
    assert selected == ["agent"]
    editing = admin.client.get("/staff/admin/users", params={"edit": "supervisor"}).text
    assert re.findall(r'<option value="(\w+)" selected>', editing) == ["supervisor"]


def test_users_add_without_a_role_makes_an_agent(data_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["users", "add", "carol", "--counters", "1", "--password", "long-enough-1", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "(agent)" in result.output
    with sqlite3.connect(data_dir / "qms.sqlite3") as conn:
        found = find_user(conn, "carol")
    assert found is not None
    assert found[0].role == "agent"
