"""API tokens against the real app and store: issued once over a signed-in session, stored hashed, limited to their
scopes and tenant, refused when expired, revoked or when the owner is disabled; another user's token id is 404."""

from __future__ import annotations

import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.admin.branches import Profile, save_profile
from cloud.cli import app as cli
from cloud.hq_users import disable_user
from cloud.identity.tables import hq_tokens
from cloud.store import create_store_engine
from tests.cloud.identity.conftest import Clock, audit_trail, csrf_of, sign_in


def issue(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    answer = client.post("/api/v1/tokens", json=body, headers={"x-csrftoken": csrf_of(client)})
    assert answer.status_code == 201, answer.text
    data: dict[str, object] = answer.json()
    return data


def bearer(token: object) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_token_acts_within_its_scopes_and_is_stored_hashed(client: TestClient, identity_store: str) -> None:
    sign_in(client, "root")
    made = issue(client, {"name": "bi export", "scopes": ["branches.read"], "days": 30, "tenant": "globex"})
    raw = str(made["token"])
    assert raw.startswith("qms_")
    listed = client.get("/api/v1/tokens").json()["tokens"]
    assert [t["name"] for t in listed] == ["bi export"]
    assert raw not in str(listed)
    engine = create_store_engine(identity_store)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(hq_tokens)).one()
    engine.dispose()
    assert raw not in str(tuple(stored))
    client.cookies.clear()
    seen = client.get("/api/v1/branches", headers=bearer(raw))
    assert seen.status_code == 200
    assert {b["tenant"] for b in seen.json()["branches"]} == {"globex"}  # narrowed to its one tenant
    assert client.get("/api/v1/tokens", headers=bearer(raw)).status_code == 403  # tokens.manage not in its scopes
    no_csrf_needed = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["branches.read"]}, headers=bearer(raw))
    assert no_csrf_needed.status_code == 403  # refused by scope, not by CSRF: bearer calls are exempt
    assert client.get("/api/v1/branches", headers=bearer(raw + "x")).status_code == 401
    assert client.get("/api/v1/branches", headers=bearer("qms_nope_nope")).status_code == 401


def test_a_token_cannot_exceed_its_owner(client: TestClient) -> None:
    sign_in(client, "tina")
    headers = {"x-csrftoken": csrf_of(client)}
    beyond = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["releases.manage"]}, headers=headers)
    assert beyond.status_code == 400
    assert "may not grant" in beyond.text
    other = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["branches.read"], "tenant": "globex"},
                        headers=headers)  # fmt: skip
    assert other.status_code == 400
    unknown = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["everything"]}, headers=headers)
    assert unknown.status_code == 400
    malformed = client.post(
        "/api/v1/tokens", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert malformed.status_code == 400


def test_expiry_revocation_and_a_disabled_owner(client: TestClient, clock: Clock, identity_store: str) -> None:
    sign_in(client, "tina")
    short = issue(client, {"name": "short", "scopes": ["branches.read"], "days": 1})
    kept = issue(client, {"name": "kept", "scopes": ["branches.read"], "days": 30})
    revoked = issue(client, {"name": "revoked", "scopes": ["branches.read"], "days": 30})
    headers = {"x-csrftoken": csrf_of(client)}
    assert client.delete(f"/api/v1/tokens/{revoked['token_id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/branches", headers=bearer(revoked["token"])).status_code == 401
    sign_in(client, "gus")  # another tenant's admin cannot revoke (or learn of) tina's token
    assert (
        client.delete(f"/api/v1/tokens/{kept['token_id']}", headers={"x-csrftoken": csrf_of(client)}).status_code == 404
    )
    client.cookies.clear()
    clock.advance(days=1, seconds=1)
    assert client.get("/api/v1/branches", headers=bearer(short["token"])).status_code == 401
    assert client.get("/api/v1/branches", headers=bearer(kept["token"])).status_code == 200
    engine = create_store_engine(identity_store)
    disable_user(engine, "tina")
    engine.dispose()
    assert client.get("/api/v1/branches", headers=bearer(kept["token"])).status_code == 401
    trail = [(actor, action) for actor, action, _ in audit_trail(identity_store) if action.startswith("token.")]
    assert trail == [("tina", "token.issue")] * 3 + [("tina", "token.revoke")]


def test_tokens_from_the_cli(identity_store: str) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["tokens", "create", "tina", "--name", "nightly", "--scope", "branches.read",
                               "--days", "7", "--db-url", identity_store])  # fmt: skip
    assert made.exit_code == 0, made.output
    raw = next(w for w in made.output.split() if w.startswith("qms_"))
    listed = runner.invoke(cli, ["tokens", "list", "--db-url", identity_store])
    assert "nightly" in listed.output
    assert raw not in listed.output
    token_id = raw.split("_")[1]
    assert runner.invoke(cli, ["tokens", "revoke", token_id, "--db-url", identity_store]).exit_code == 0
    refused = runner.invoke(cli, ["tokens", "create", "tina", "--name", "x", "--scope", "releases.manage",
                                  "--db-url", identity_store])  # fmt: skip
    assert refused.exit_code == 1
    assert "may not grant" in refused.output


def test_the_tokens_page(client: TestClient) -> None:
    sign_in(client, "tina")
    page = client.get("/tokens?lang=en")
    assert page.status_code == 200
    assert "No tokens yet." in page.text
    assert 'value="releases.manage"' not in page.text  # only what the role may grant is offered
    csrf = csrf_of(client)
    made = client.post(
        "/tokens?lang=en", data={"name": "cron", "days": "7", "scopes": ["branches.read"], "_csrf_token": csrf}
    )
    assert made.status_code == 200
    raw = next(w for w in made.text.replace("<", " ").replace(">", " ").split() if w.startswith("qms_"))
    assert client.get("/tokens").text.count(raw) == 0  # shown once
    assert client.get("/api/v1/branches", headers=bearer(raw)).status_code == 200
    token_id = raw.split("_")[1]
    assert client.post("/tokens", data={"name": "x", "days": "7", "_csrf_token": csrf}).status_code == 400
    revoked = client.post(f"/tokens/{token_id}/revoke", data={"_csrf_token": csrf}, follow_redirects=False)
    assert revoked.status_code == 303
    assert client.get("/api/v1/branches", headers=bearer(raw)).status_code == 401
    forged = client.post("/tokens", data={"name": "x", "days": "7", "scopes": ["branches.read"]})
    assert forged.status_code == 403  # no CSRF token


def test_the_tokens_page_shows_times_in_the_tenants_zone(client: TestClient, identity_store: str) -> None:
    """acme's branches keep Asia/Jayapura: its tokens' times read WIT, not the default WIB."""
    engine = create_store_engine(identity_store)
    with engine.begin() as conn:
        for branch_id in ("jyp-1", "jyp-2"):
            save_profile(conn, Profile("acme", branch_id, branch_id, timezone="Asia/Jayapura"), actor="test",
                         source_ip=None, new=True)  # fmt: skip
    engine.dispose()
    sign_in(client, "tina")
    issue(client, {"name": "cron", "scopes": ["branches.read"], "days": 7, "tenant": "acme"})
    row = client.get("/tokens?lang=en").text.split('data-token="', 1)[1].split("</tr>", 1)[0]
    assert " WIT</td>" in row
    assert "WIB" not in row
