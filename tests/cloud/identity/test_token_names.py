"""API token names with control or format characters (a right-to-left override that reorders what a terminal shows,
NUL, newlines, tabs, zero-width characters, U+2028/9) are refused — over the API as a 400 problem naming `name`, on
the /tokens page, and by the CLI — while other Unicode is kept; a name stored before is listed escaped."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.cli import app as cli
from cloud.identity.tables import hq_tokens
from cloud.store import create_store_engine, transaction
from tests.cloud.identity.conftest import csrf_of, sign_in
from tests.cloud.identity.test_problem_answers import assert_problem

HIDDEN = ["backup\u202etxt.exe", "a\x00b", "two\nlines", "tab\there", "zero\u200bwidth", "line\u2028sep",
          "para\u2029sep", "c1\x85next", "bom\ufeff", "del\x7f", "\u2066isolate\u2069"]  # fmt: skip


@pytest.mark.parametrize("name", HIDDEN)
def test_the_api_refuses_a_name_with_hidden_characters(client: TestClient, name: str) -> None:
    sign_in(client, "tina")
    body = {"name": name, "scopes": ["branches.read"]}
    answer = client.post("/api/v1/tokens", json=body, headers={"x-csrftoken": csrf_of(client)})
    assert_problem(answer, 400)
    problem = answer.json()
    assert (problem["code"], problem["fields"]) == ("invalid_fields", ["name"])
    assert problem["detail"].startswith("name: ")
    assert client.get("/api/v1/tokens").json()["tokens"] == []


def test_other_unicode_is_kept_and_the_page_and_cli_refuse(client: TestClient, identity_store: str) -> None:
    sign_in(client, "tina")
    csrf = csrf_of(client)
    fine = client.post("/api/v1/tokens", json={"name": "Jürgen's 🙂 job — نشر", "scopes": ["branches.read"]},
                       headers={"x-csrftoken": csrf})  # fmt: skip
    assert fine.status_code == 201, fine.text
    assert fine.json()["name"] == "Jürgen's 🙂 job — نشر"
    page = client.post("/tokens?lang=en", data={"name": "cron\u202e", "days": "7", "scopes": ["branches.read"],
                                                "_csrf_token": csrf})  # fmt: skip
    assert page.status_code == 400
    assert "name: no control or format characters (U+202E)" in page.text
    assert "qms_" not in page.text

    runner, db = CliRunner(), ["--db-url", identity_store]
    refused = runner.invoke(cli, ["tokens", "create", "tina", "--name", "nightly\u202egpj.exe", "--scope",
                                  "branches.read", *db])  # fmt: skip
    assert refused.exit_code == 1
    assert "name: no control or format characters (U+202E)" in refused.output
    assert len(client.get("/api/v1/tokens").json()["tokens"]) == 1


def test_a_name_stored_before_is_listed_escaped(identity_store: str) -> None:
    engine = create_store_engine(identity_store)
    with transaction(engine) as conn:  # as an older hub stored it, before such names were refused
        conn.execute(sa.insert(hq_tokens).values(
            token_id="0123456789ab", token_hash="0" * 64, username="tina", name="evil\u202eexe.txt", tenant_id=None,
            scopes=json.dumps(["branches.read"]), created_at="2026-12-01T00:00:00+00:00",
            expires_at="2027-01-01T00:00:00+00:00", sso_tenant=None,
        ))  # fmt: skip
    engine.dispose()
    listed = CliRunner().invoke(cli, ["tokens", "list", "--db-url", identity_store])
    assert listed.exit_code == 0, listed.output
    assert "evil\\u202eexe.txt" in listed.output
    assert "\u202e" not in listed.output
