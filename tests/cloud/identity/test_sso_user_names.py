"""SSO users whose names a URL path does not carry as they are (`dept/bob`, `%`, `?`, `#`, spaces, ü, a leading
`/`, `//`, `..`), against the real app, store and the suite's real OpenID provider: the tenant admin disables and
enables each of them from the Single sign-on page and over the API (the name percent-encoded in the path, or in the
JSON body), and exactly that user is affected; the CLI lists such names (a bidi override escaped) and says when a
tenant is unknown or has no SSO users."""

# ruff: noqa: F811  (the OIDC fixtures are imported from their test module and requested by name)

from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import quote

import httpx
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.cli import app as cli
from tests.cloud.identity.conftest import csrf_of, sign_in
from tests.cloud.identity.test_oidc import browser_sign_in, issuer_of, provider, sso_client  # noqa: F401
from tests.cloud.identity.test_problem_answers import assert_problem

AWKWARD = ["dept/bob", "100% sure", "who?", "c#dev", "bob smith", "jürgen", "/lead", "a//b/", "x/disable"]
DOTS = [".", ".."]  # HTTP clients resolve these in a path, even percent-encoded: the body form carries them


def sso_user(server: Any, name: str, groups: list[str], branches: object = None) -> str:
    """A provider user whose username claim (`email`) is `name`; their sub."""
    sub = f"sso-{secrets.token_hex(4)}"
    claims: dict[str, object] = {"email": name, "groups": groups}
    if branches is not None:
        claims["branches"] = branches
    assert httpx.put(f"{issuer_of(server)}/users/{sub}", json=claims).status_code == 204
    return sub


def signed_in_users(client: TestClient, server: Any, names: list[str]) -> None:
    """Each name signs in once through the IdP, so the hub knows them."""
    for name in names:
        client.cookies.clear()
        assert browser_sign_in(client, sso_user(server, name, ["qms-admins"])).headers["location"] == "/api/v1/me"
    client.cookies.clear()


def states(client: TestClient) -> dict[str, bool]:
    """Each known SSO user of acme: disabled or not."""
    users = client.get("/api/v1/tenants/acme/sso/users").json()["users"]
    return {u["username"]: u["disabled_at"] is not None for u in users}


def test_any_name_is_disabled_and_enabled_over_the_api(sso_client: TestClient, provider: Any) -> None:
    signed_in_users(sso_client, provider, [*AWKWARD, *DOTS, "lead", "bob", "a/b"])
    sign_in(sso_client, "tina")
    headers = {"x-csrftoken": csrf_of(sso_client)}
    for name in AWKWARD:
        answer = sso_client.post(f"/api/v1/tenants/acme/sso/users/{quote(name, safe='')}/disable", headers=headers)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["username"] == name
    shown = states(sso_client)
    assert {n for n, off in shown.items() if off} == set(AWKWARD)  # "lead", "a/b", "." and ".." untouched
    plain = sso_client.post("/api/v1/tenants/acme/sso/users/dept/bob/enable", headers=headers)  # slash as sent
    assert (plain.status_code, plain.json()["username"], plain.json()["disabled_at"]) == (200, "dept/bob", None)
    for name in AWKWARD[1:]:  # the body form: any name at all
        body = sso_client.post("/api/v1/tenants/acme/sso/users/enable", json={"username": name}, headers=headers)
        assert body.status_code == 200, (name, body.text)
    assert not any(states(sso_client).values())
    for name in DOTS:
        dot = sso_client.post("/api/v1/tenants/acme/sso/users/disable", json={"username": name}, headers=headers)
        assert dot.json()["username"] == name
    assert sorted(n for n, off in states(sso_client).items() if off) == DOTS
    assert sso_client.post("/api/v1/tenants/acme/sso/users/bob/disable", headers=headers).json()["username"] == "bob"

    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/disable", headers=headers), 400)  # no name
    bad = sso_client.post("/api/v1/tenants/acme/sso/users/disable", json={"user": "bob"}, headers=headers)
    assert_problem(bad, 400)
    assert bad.json()["fields"] == ["username"]
    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/bob/delete", headers=headers), 404)
    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/dept%2Fbobby/disable", headers=headers), 404)
    sign_in(sso_client, "gus")  # another tenant's admin: not found, by path or body
    gus = {"x-csrftoken": csrf_of(sso_client)}
    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/dept%2Fbob/disable", headers=gus), 404)
    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/disable", json={"username": "bob"}, headers=gus),
                   404)  # fmt: skip


def test_any_name_is_disabled_and_enabled_from_the_page(sso_client: TestClient, provider: Any) -> None:
    signed_in_users(sso_client, provider, [*AWKWARD, *DOTS, "lead"])
    sign_in(sso_client, "tina")
    csrf = csrf_of(sso_client)
    for name in [*AWKWARD, *DOTS]:
        page = sso_client.get("/sso-settings?tenant=acme&lang=en").text
        assert f'<input type="hidden" name="username" value="{html.escape(name)}">' in page
        done = sso_client.post("/sso-settings/acme/users/disable", data={"_csrf_token": csrf, "username": name},
                               follow_redirects=False)  # fmt: skip
        assert done.status_code == 303, (name, done.text)
    assert {n for n, off in states(sso_client).items() if off} == {*AWKWARD, *DOTS}
    for name in [*AWKWARD, *DOTS]:
        done = sso_client.post("/sso-settings/acme/users/enable", data={"_csrf_token": csrf, "username": name},
                               follow_redirects=False)  # fmt: skip
        assert done.status_code == 303, (name, done.text)
    assert not any(states(sso_client).values())
    assert sso_client.post("/sso-settings/acme/users/disable", data={"_csrf_token": csrf}).status_code == 404
    assert sso_client.post("/sso-settings/acme/users/delete", data={"_csrf_token": csrf, "username": "lead"}
                           ).status_code == 404  # fmt: skip
    assert sso_client.post("/sso-settings/acme/users/disable", data={"_csrf_token": csrf, "username": "nobody"}
                           ).status_code == 404  # fmt: skip


def test_the_cli_lists_names_escaped_and_says_when_there_is_nothing(
    sso_client: TestClient, provider: Any, identity_store: str
) -> None:
    runner, db = CliRunner(), ["--db-url", identity_store]
    empty = runner.invoke(cli, ["sso-users", "list", "acme", *db])  # a tenant with branches, nobody signed in yet
    assert (empty.exit_code, "no SSO users" in empty.output) == (0, True), empty.output
    assert runner.invoke(cli, ["sso-users", "list", "acme", "--json", *db]).output.strip() == "[]"
    for tenant in ("nosuchtenant", ""):
        unknown = runner.invoke(cli, ["sso-users", "list", tenant, *db])
        assert (unknown.exit_code, "no such tenant" in unknown.output) == (1, True), unknown.output
        assert runner.invoke(cli, ["sso-users", "list", tenant, "--json", *db]).exit_code == 1
    signed_in_users(sso_client, provider, ["dept/bob", "eve\u202egnp.exe"])
    listed = runner.invoke(cli, ["sso-users", "list", "acme", *db])
    assert listed.exit_code == 0, listed.output
    assert "dept/bob" in listed.output
    assert "eve\\u202egnp.exe" in listed.output
    assert "\u202e" not in listed.output
    assert "no SSO users" not in listed.output
    assert runner.invoke(cli, ["sso-users", "disable", "acme", "dept/bob", *db]).exit_code == 0
