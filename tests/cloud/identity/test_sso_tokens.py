"""API tokens of SSO users, against the real app and store and the suite's real OpenID provider (and pysaml2's IdP):
an SSO tenant admin issues a token from their session and uses it with Bearer; it stays within its scopes, its
owner's role as mapped now and its tenant; a lower role at the next sign-in or a narrower role map narrows it; an
unmapped sign-in, disabling the user at the hub or removing the IdP configuration stops it; it outlives a long time
without sign-in up to its expiry; a password account of the same name neither sees nor revokes it."""

# ruff: noqa: F811  (the OIDC and SAML fixtures are imported from their test modules and requested by name)

from __future__ import annotations

import secrets
import shutil
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from saml2.server import Server  # type: ignore[import-untyped]
from typer.testing import CliRunner

from cloud.cli import app as cli
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from tests.cloud.identity.conftest import PASSWORD, Clock, audit_trail, csrf_of, sign_in
from tests.cloud.identity.test_oidc import ROLES, browser_sign_in, issuer_of, provider, sso_client  # noqa: F401
from tests.cloud.identity.test_problem_answers import assert_problem
from tests.cloud.identity.test_saml import idp_answer, post, saml_hub  # noqa: F401

ADMINS = ["qms-admins"]
ALL_PERMISSIONS_OF_AN_ADMIN = ["branches.read", "tokens.manage", "users.manage", "audit.read"]


def new_user(server: Any, groups: list[str], branches: list[str] | None = None) -> str:
    """A user of the provider with these groups (its admin API: PUT /users/<sub>); their sub."""
    sub = f"sso-{secrets.token_hex(4)}"
    set_claims(server, sub, groups, branches)
    return sub


def set_claims(server: Any, sub: str, groups: list[str], branches: list[str] | None = None) -> None:
    """What the provider says about `sub` at their next sign-in (as the IdP's admin changes their groups)."""
    claims: dict[str, object] = {"email": f"{sub}@acme.example", "groups": groups}
    if branches is not None:
        claims["branches"] = branches
    answer = httpx.put(f"{issuer_of(server)}/users/{sub}", json=claims)
    assert answer.status_code == 204, answer.text


def sso_sign_in(client: TestClient, sub: str) -> None:
    client.cookies.clear()
    assert browser_sign_in(client, sub).headers["location"] == "/api/v1/me"


def issue(client: TestClient, body: dict[str, object]) -> dict[str, Any]:
    answer = client.post("/api/v1/tokens", json=body, headers={"x-csrftoken": csrf_of(client)})
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def bearer(made: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {made['token']}", "accept": "application/json"}


def branch_ids(client: TestClient, made: dict[str, Any]) -> set[tuple[str, str]]:
    answer = client.get("/api/v1/branches", headers=bearer(made))
    assert answer.status_code == 200, answer.text
    return {(b["tenant"], b["branch_id"]) for b in answer.json()["branches"]}


def test_an_sso_admin_issues_a_token_and_uses_it_within_its_scopes_and_tenant(
    sso_client: TestClient, provider: Any, identity_store: str
) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    me = sso_client.get("/api/v1/me").json()
    assert (me["role"], me["auth_method"], "tokens.manage" in me["permissions"]) == ("tenant_admin", "oidc", True)
    made = issue(sso_client, {"name": "nightly", "scopes": ["branches.read", "users.manage"], "days": 30})
    assert (made["username"], made["sso_tenant"], made["tenant_id"]) == (f"{sub}@acme.example", "acme", None)
    assert [t["token_id"] for t in sso_client.get("/api/v1/tokens").json()["tokens"]] == [made["token_id"]]
    sso_client.cookies.clear()
    assert branch_ids(sso_client, made) == {("acme", "jkt-sudirman"), ("acme", "bdg-dago")}  # its one tenant
    assert sso_client.get("/api/v1/tenants/acme/sso/oidc", headers=bearer(made)).status_code == 200
    assert_problem(sso_client.get("/api/v1/tenants/globex/sso/oidc", headers=bearer(made)), 404)  # another tenant
    assert_problem(sso_client.get("/api/v1/tokens", headers=bearer(made)), 403)  # tokens.manage is not in its scopes
    assert_problem(sso_client.get("/admin/audit.csv", headers=bearer(made)), 403)
    trail = audit_trail(identity_store)
    assert (f"{sub}@acme.example", "token.issue", made["token_id"]) in trail

    sso_sign_in(sso_client, sub)
    headers = {"x-csrftoken": csrf_of(sso_client)}
    for body in ({"name": "x", "scopes": ["releases.manage"]},  # beyond tenant_admin
                 {"name": "x", "scopes": ["branches.read"], "tenant": "globex"},  # another tenant
                 {"name": "x", "scopes": ["branches.read"], "days": 0},
                 {"name": "x", "scopes": []},
                 {"name": "x", "scopes": ["branches.read"], "owner": "root"}):  # fmt: skip
        assert_problem(sso_client.post("/api/v1/tokens", json=body, headers=headers), 400)
    revoked = sso_client.delete(f"/api/v1/tokens/{made['token_id']}", headers=headers)
    assert revoked.status_code == 204
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)
    assert (f"{sub}@acme.example", "token.revoke", made["token_id"]) in audit_trail(identity_store)


def test_a_password_account_of_the_same_name_is_another_owner(
    sso_client: TestClient, provider: Any, identity_store: str
) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "sso's", "scopes": ["branches.read"]})
    engine = create_store_engine(identity_store)
    upsert_user(engine, f"{sub}@acme.example", PASSWORD, "tenant_admin", ["globex"])
    engine.dispose()
    sso_client.cookies.clear()
    assert sign_in(sso_client, f"{sub}@acme.example").status_code == 303
    assert sso_client.get("/api/v1/me").json()["auth_method"] == "session"
    assert sso_client.get("/api/v1/tokens").json()["tokens"] == []
    headers = {"x-csrftoken": csrf_of(sso_client)}
    assert_problem(sso_client.delete(f"/api/v1/tokens/{made['token_id']}", headers=headers), 404)
    own = issue(sso_client, {"name": "password's", "scopes": ["branches.read"]})
    assert own["sso_tenant"] is None
    assert branch_ids(sso_client, own) == {("globex", "sby-tunjungan")}
    assert branch_ids(sso_client, made) == {("acme", "jkt-sudirman"), ("acme", "bdg-dago")}


def test_the_role_of_the_next_sign_in_and_the_role_map_narrow_the_token(sso_client: TestClient, provider: Any) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "ops", "scopes": ALL_PERMISSIONS_OF_AN_ADMIN})
    sso_client.cookies.clear()
    assert sso_client.get("/api/v1/tokens", headers=bearer(made)).status_code == 200

    set_claims(provider, sub, ["qms-auditors"])  # the IdP's admin moved them to the auditors
    assert sso_client.get("/api/v1/tokens", headers=bearer(made)).status_code == 200  # the hub has not seen it yet
    sso_sign_in(sso_client, sub)
    sso_client.cookies.clear()
    assert_problem(sso_client.get("/api/v1/tokens", headers=bearer(made)), 403)  # auditor: no tokens.manage
    assert_problem(sso_client.get("/api/v1/tenants/acme/sso/oidc", headers=bearer(made)), 403)
    assert sso_client.get("/admin/audit.csv", headers=bearer(made)).status_code == 200  # scope ∩ auditor
    assert len(branch_ids(sso_client, made)) == 2

    set_claims(provider, sub, ["qms-managers"], ["jkt-sudirman"])
    sso_sign_in(sso_client, sub)
    sso_client.cookies.clear()
    assert branch_ids(sso_client, made) == {("acme", "jkt-sudirman")}  # a branch manager's one branch

    set_claims(provider, sub, ["staff"])  # no mapped group any more: the sign-in is refused and the token stops
    sso_client.cookies.clear()
    assert "sso_error=" in browser_sign_in(sso_client, sub).headers["location"]
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)

    set_claims(provider, sub, ADMINS)
    sso_sign_in(sso_client, sub)
    sso_client.cookies.clear()
    assert sso_client.get("/api/v1/tokens", headers=bearer(made)).status_code == 200  # an admin again

    sign_in(sso_client, "tina")  # acme's admin maps qms-admins to auditor now: no sign-in needed to narrow tokens
    settings = sso_client.get("/api/v1/tenants/acme/sso/oidc").json()
    body = {k: settings[k] for k in ("issuer", "client_id", "role_claim", "branch_claim", "username_claim")}
    saved = sso_client.put("/api/v1/tenants/acme/sso/oidc", json={**body, "roles": {**ROLES, "qms-admins": "auditor"}},
                           headers={"x-csrftoken": csrf_of(sso_client)})  # fmt: skip
    assert saved.status_code == 200, saved.text
    sso_client.cookies.clear()
    assert_problem(sso_client.get("/api/v1/tokens", headers=bearer(made)), 403)
    assert sso_client.get("/admin/audit.csv", headers=bearer(made)).status_code == 200


def test_disabling_the_user_or_removing_the_idp_stops_the_token(
    sso_client: TestClient, provider: Any, identity_store: str
) -> None:
    sub = new_user(provider, ADMINS)
    name = f"{sub}@acme.example"
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "ci", "scopes": ["branches.read"], "tenant": "acme"})
    sso_session = dict(sso_client.cookies)

    sign_in(sso_client, "gus")  # globex's admin neither sees nor disables acme's SSO users
    gus = {"x-csrftoken": csrf_of(sso_client)}
    assert_problem(sso_client.get("/api/v1/tenants/acme/sso/users", headers={"accept": "application/json"}), 404)
    assert_problem(sso_client.post(f"/api/v1/tenants/acme/sso/users/{name}/disable", headers=gus), 404)
    sign_in(sso_client, "tina")
    tina = {"x-csrftoken": csrf_of(sso_client)}
    listed = sso_client.get("/api/v1/tenants/acme/sso/users").json()["users"]
    assert [(u["username"], u["role"], u["protocol"], u["active"]) for u in listed] == [
        (name, "tenant_admin", "oidc", True)
    ]
    assert_problem(sso_client.post("/api/v1/tenants/acme/sso/users/nobody@acme.example/disable", headers=tina), 404)
    disabled = sso_client.post(f"/api/v1/tenants/acme/sso/users/{name}/disable", headers=tina)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)
    sso_client.cookies.clear()
    sso_client.cookies.update(sso_session)
    assert_problem(sso_client.get("/api/v1/me", headers={"accept": "application/json"}), 401)  # session ended
    sso_client.cookies.clear()
    refused = browser_sign_in(sso_client, sub).headers["location"]
    assert "sso_error=" in refused
    assert "disabled" in refused

    sign_in(sso_client, "tina")
    tina = {"x-csrftoken": csrf_of(sso_client)}
    assert sso_client.post(f"/api/v1/tenants/acme/sso/users/{name}/enable", headers=tina).status_code == 200
    assert len(branch_ids(sso_client, made)) == 2
    assert ("tina", "sso_user.disable", name) in audit_trail(identity_store)
    assert ("tina", "sso_user.enable", name) in audit_trail(identity_store)

    assert sso_client.delete("/api/v1/tenants/acme/sso/oidc", headers=tina).status_code == 204
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)  # the IdP that admitted them: gone


def test_a_token_outlives_a_long_time_without_sign_in_until_its_expiry(
    sso_client: TestClient, provider: Any, clock: Clock
) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "yearly", "scopes": ["branches.read"], "days": 366})
    sso_client.cookies.clear()
    clock.advance(days=300)
    assert len(branch_ids(sso_client, made)) == 2
    clock.advance(days=66, seconds=1)
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)


def test_the_tokens_page_of_an_sso_user(sso_client: TestClient, provider: Any) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    page = sso_client.get("/tokens?lang=en")
    assert page.status_code == 200
    assert "No tokens yet." in page.text
    assert 'value="releases.manage"' not in page.text
    csrf = csrf_of(sso_client)
    made = sso_client.post("/tokens?lang=en", data={"name": "cron", "days": "7", "scopes": ["branches.read"],
                                                    "_csrf_token": csrf})  # fmt: skip
    assert made.status_code == 200
    raw = next(w for w in made.text.replace("<", " ").replace(">", " ").split() if w.startswith("qms_"))
    assert len(branch_ids(sso_client, {"token": raw})) == 2
    assert sso_client.post(f"/tokens/{raw.split('_')[1]}/revoke", data={"_csrf_token": csrf},
                           follow_redirects=False).status_code == 303  # fmt: skip
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer({"token": raw})), 401)


def test_an_sso_manager_or_auditor_has_no_tokens(sso_client: TestClient, provider: Any) -> None:
    sso_sign_in(sso_client, new_user(provider, ["qms-auditors"]))
    headers = {"x-csrftoken": csrf_of(sso_client), "accept": "application/json"}
    assert_problem(sso_client.post("/api/v1/tokens", json={"name": "x", "scopes": ["audit.read"]}, headers=headers),
                   403)  # fmt: skip


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs Debian's xmlsec1")
def test_a_saml_user_holds_a_token_until_the_saml_idp_is_removed(
    saml_hub: tuple[TestClient, Server],
) -> None:
    client, idp = saml_hub
    assert post(client, idp_answer(client, idp, ["qms-admins"])) == "/api/v1/me"
    assert client.get("/api/v1/me").json()["auth_method"] == "saml"
    made = issue(client, {"name": "saml ci", "scopes": ["branches.read"]})
    assert (made["username"], made["sso_tenant"]) == ("sari@acme.example", "acme")
    client.cookies.clear()
    assert len(branch_ids(client, made)) == 2
    assert post(client, idp_answer(client, idp, ["qms-auditors"])) == "/api/v1/me"  # still reads branches
    client.cookies.clear()
    assert len(branch_ids(client, made)) == 2
    sign_in(client, "tina")
    assert client.delete("/api/v1/tenants/acme/sso/saml", headers={"x-csrftoken": csrf_of(client)}).status_code == 204
    client.cookies.clear()
    assert_problem(client.get("/api/v1/branches", headers=bearer(made)), 401)


def test_sso_users_from_the_cli(sso_client: TestClient, provider: Any, identity_store: str) -> None:
    sub = new_user(provider, ADMINS)
    name = f"{sub}@acme.example"
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "from cli", "scopes": ["branches.read"]})
    sso_client.cookies.clear()
    runner, db = CliRunner(), ["--db-url", identity_store]
    listed = runner.invoke(cli, ["sso-users", "list", "acme", *db])
    assert listed.exit_code == 0, listed.output
    assert name in listed.output
    assert "tenant_admin" in listed.output
    assert f"{name} (SSO acme)" in runner.invoke(cli, ["tokens", "list", *db]).output
    assert runner.invoke(cli, ["sso-users", "disable", "acme", name, *db]).exit_code == 0
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)
    assert "disabled" in runner.invoke(cli, ["sso-users", "list", "acme", *db]).output
    assert runner.invoke(cli, ["sso-users", "enable", "acme", name, *db]).exit_code == 0
    assert len(branch_ids(sso_client, made)) == 2
    unknown = runner.invoke(cli, ["sso-users", "disable", "globex", name, *db])  # another tenant's user of that name
    assert unknown.exit_code == 1
    assert "no SSO user" in unknown.output


def test_sso_users_on_the_single_sign_on_page(sso_client: TestClient, provider: Any, identity_store: str) -> None:
    sub = new_user(provider, ADMINS)
    name = f"{sub}@acme.example"
    sso_sign_in(sso_client, sub)
    made = issue(sso_client, {"name": "page", "scopes": ["branches.read"]})
    sign_in(sso_client, "tina")
    page = sso_client.get("/sso-settings?lang=en")
    assert page.status_code == 200
    assert f'data-user="{name}"' in page.text
    assert "tenant_admin" in page.text
    csrf = {"_csrf_token": csrf_of(sso_client), "username": name}
    done = sso_client.post("/sso-settings/acme/users/disable", data=csrf, follow_redirects=False)
    assert done.status_code == 303
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(made)), 401)
    page = sso_client.get(done.headers["location"] + "&lang=en")
    assert "User disabled." in page.text
    assert 'action="/sso-settings/acme/users/enable"' in page.text
    assert sso_client.post("/sso-settings/acme/users/enable", data=csrf, follow_redirects=False).status_code == 303
    assert len(branch_ids(sso_client, made)) == 2
    assert sso_client.post("/sso-settings/acme/users/delete", data=csrf).status_code == 404
    sign_in(sso_client, "gus")
    gus = {"_csrf_token": csrf_of(sso_client), "username": name}
    assert sso_client.post("/sso-settings/acme/users/disable", data=gus).status_code == 404
    assert ("tina", "sso_user.disable", name) in audit_trail(identity_store)


def test_an_sso_users_token_with_tokens_manage_issues_and_revokes_their_tokens(
    sso_client: TestClient, provider: Any, identity_store: str
) -> None:
    sub = new_user(provider, ADMINS)
    sso_sign_in(sso_client, sub)
    admin = issue(sso_client, {"name": "provisioner", "scopes": ["tokens.manage", "branches.read"]})
    sso_client.cookies.clear()
    child = sso_client.post(
        "/api/v1/tokens", json={"name": "child", "scopes": ["branches.read"]}, headers=bearer(admin)
    )
    assert child.status_code == 201, child.text
    assert (child.json()["username"], child.json()["sso_tenant"]) == (f"{sub}@acme.example", "acme")
    beyond = sso_client.post("/api/v1/tokens", json={"name": "x", "scopes": ["users.manage"]}, headers=bearer(admin))
    assert_problem(beyond, 400)  # more than the token it was issued with
    listed = sso_client.get("/api/v1/tokens", headers=bearer(admin)).json()["tokens"]
    assert {t["name"] for t in listed} == {"provisioner", "child"}
    assert sso_client.delete(f"/api/v1/tokens/{child.json()['token_id']}", headers=bearer(admin)).status_code == 204
    assert_problem(sso_client.get("/api/v1/branches", headers=bearer(child.json())), 401)
