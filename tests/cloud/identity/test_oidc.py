"""OIDC sign-in against a real local OpenID provider (oidc-provider-mock, started here on a free port): a tenant's
IdP configured over the API (secret write-only), code + PKCE through the browser's redirects, the claim-mapped role
and branches, refusal of an unmapped user, a replayed callback, a wrong nonce, a wrong audience, a tampered or
expired ID token, and the provider rotating its signing key."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from oidc_provider_mock import User, run_server_in_thread  # type: ignore[import-untyped]

from cloud.identity.oidc import OidcClient, SsoRefused
from cloud.identity.tables import sso_flows
from cloud.store import create_store_engine, transaction
from tests.cloud.identity.conftest import Clock, audit_trail, csrf_of, sign_in

USERS = [
    User(sub="alice", claims={"email": "alice@acme.example", "groups": ["qms-auditors", "staff"]}),
    User(sub="bob", claims={"email": "bob@acme.example", "groups": ["qms-managers"], "branches": ["jkt-sudirman"]}),
    User(sub="eve", claims={"email": "eve@acme.example", "groups": ["staff"]}),
]
ROLES = {"qms-auditors": "auditor", "qms-managers": "branch_manager", "qms-admins": "tenant_admin"}


@pytest.fixture(scope="module")
def provider() -> Iterator[Any]:
    """The OpenID provider: nonce required, ID tokens valid for 60 s."""
    with run_server_in_thread(
        require_nonce=True, user_claims=USERS, access_token_max_age=timedelta(seconds=60)
    ) as server:
        yield server


def issuer_of(server: Any) -> str:
    return f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_client(client: TestClient, clock: Clock, provider: Any) -> TestClient:
    """The hub with acme's OIDC configured by its tenant admin; the clock at real time (tokens carry real times)."""
    clock.now = datetime.now(UTC)
    sign_in(client, "tina")
    body = {"issuer": issuer_of(provider), "client_id": "qms-hub", "client_secret": "hub-client-secret", "roles": ROLES}
    saved = client.put("/api/v1/tenants/acme/sso/oidc", json=body, headers={"x-csrftoken": csrf_of(client)})
    assert saved.status_code == 200, saved.text
    assert "hub-client-secret" not in saved.text
    client.cookies.clear()
    return client


def authorize(location: str, sub: str) -> str:
    """The provider's consent form, answered as `sub`: the redirect back to the hub (with code and state)."""
    answer = httpx.post(location, data={"sub": sub}, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def browser_sign_in(client: TestClient, sub: str) -> httpx.Response:
    start = client.get("/sso/start?tenant=acme&next=/api/v1/me", follow_redirects=False)
    assert start.status_code == 303
    back = urlsplit(authorize(start.headers["location"], sub))
    assert back.path == "/sso/oidc/callback"
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def test_the_idp_settings_hide_the_secret_and_stay_in_their_tenant(sso_client: TestClient, identity_store: str) -> None:
    sign_in(sso_client, "tina")
    answer = sso_client.get("/api/v1/tenants/acme/sso/oidc")
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    print(shown)
    assert shown["client_secret_set"] is True
    assert "hub-client-secret" not in json.dumps(shown)
    sign_in(sso_client, "gus")  # globex's admin
    assert sso_client.get("/api/v1/tenants/acme/sso/oidc").status_code == 404
    sign_in(sso_client, "audi")  # acme's auditor: no users.manage
    assert sso_client.get("/api/v1/tenants/acme/sso/oidc").status_code == 403
    sign_in(sso_client, "tina")
    grant_all = {"issuer": "http://x", "client_id": "c", "roles": {"g": "platform_admin"}}
    refused = sso_client.put(
        "/api/v1/tenants/acme/sso/oidc", json=grant_all, headers={"x-csrftoken": csrf_of(sso_client)}
    )
    assert refused.status_code == 400
    assert [e for e in audit_trail(identity_store) if e[1] == "sso.configure"] == [("tina", "sso.configure", "oidc")]


def test_sign_in_with_a_claim_mapped_role(sso_client: TestClient) -> None:
    done = browser_sign_in(sso_client, "alice")
    assert done.status_code == 303
    assert done.headers["location"] == "/api/v1/me"
    me = sso_client.get("/api/v1/me").json()
    assert (me["username"], me["role"], me["tenants"], me["auth_method"]) == (
        "alice@acme.example",
        "auditor",
        ["acme"],
        "oidc",
    )
    assert sso_client.post("/api/v1/tokens", json={}, headers={"x-csrftoken": me["csrf_token"]}).status_code == 403


def test_a_branch_manager_gets_the_branches_of_its_claim(sso_client: TestClient) -> None:
    assert browser_sign_in(sso_client, "bob").status_code == 303
    me = sso_client.get("/api/v1/me").json()
    assert me["role"] == "branch_manager"
    assert me["branches"] == ["acme/jkt-sudirman"]
    assert {b["branch_id"] for b in sso_client.get("/api/v1/branches").json()["branches"]} == {"jkt-sudirman"}


def test_an_unmapped_user_and_a_replayed_callback_are_refused(sso_client: TestClient) -> None:
    refused = browser_sign_in(sso_client, "eve")
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/signin?sso_error=")
    assert sso_client.get("/api/v1/me").status_code == 401
    start = sso_client.get("/sso/start?tenant=acme", follow_redirects=False)
    back = urlsplit(authorize(start.headers["location"], "alice"))
    assert sso_client.get(f"{back.path}?{back.query}", follow_redirects=False).headers["location"] == "/"
    sso_client.cookies.clear()
    replay = sso_client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert replay.headers["location"].startswith("/signin?sso_error=")
    assert sso_client.get("/api/v1/me").status_code == 401
    assert (
        sso_client.get("/sso/start?tenant=globex", follow_redirects=False)
        .headers["location"]
        .startswith("/signin?sso_error=")
    )


def test_a_changed_nonce_is_refused(sso_client: TestClient, identity_store: str) -> None:
    start = sso_client.get("/sso/start?tenant=acme", follow_redirects=False)
    engine = create_store_engine(identity_store)
    with transaction(engine) as conn:
        conn.execute(sa.update(sso_flows).values(nonce="not-the-nonce-sent"))
    engine.dispose()
    back = urlsplit(authorize(start.headers["location"], "alice"))
    refused = sso_client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert "sso_error=" in refused.headers["location"]
    assert "nonce" in refused.headers["location"]


def id_token_for(provider: Any, client: OidcClient, sub: str, nonce: str) -> str:
    """A real ID token from the provider (code + PKCE, as the hub does it)."""
    issuer, verifier, redirect = issuer_of(provider), secrets.token_urlsafe(48), "http://hub.test/sso/oidc/callback"
    location = client.authorization_url(issuer, "qms-hub", redirect, "openid email", "s", nonce, verifier)
    code = parse_qs(urlsplit(authorize(location, sub)).query)["code"][0]
    return client.exchange(issuer, "qms-hub", "secret", code, redirect, verifier)


def test_id_token_checks(provider: Any) -> None:
    client, issuer, now = OidcClient(), issuer_of(provider), datetime.now(UTC)
    token = id_token_for(provider, client, "alice", "n-1")
    assert client.verify(issuer, "qms-hub", token, "n-1", now)["groups"] == ["qms-auditors", "staff"]
    with pytest.raises(SsoRefused, match="aud"):
        client.verify(issuer, "another-client", token, "n-1", now)
    with pytest.raises(SsoRefused, match="nonce"):
        client.verify(issuer, "qms-hub", token, "n-2", now)
    with pytest.raises(SsoRefused, match="iss"):
        _verify_as_other_issuer(client, issuer, token)
    with pytest.raises(SsoRefused, match=r"exp|expired"):
        client.verify(issuer, "qms-hub", token, "n-1", now + timedelta(minutes=5))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["qms-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SsoRefused, match="signature"):
        client.verify(issuer, "qms-hub", f"{header}.{forged}.{signature}", "n-1", now)


def _verify_as_other_issuer(client: OidcClient, issuer: str, token: str) -> None:
    """The same keys trusted under another issuer name: the token's `iss` no longer matches."""
    client.discovered["http://other.example"] = client.discovered[issuer]
    client.keys["http://other.example"] = client.keys[issuer]
    client.verify("http://other.example", "qms-hub", token, "n-1", datetime.now(UTC))


def test_the_provider_rotating_its_key(provider: Any) -> None:
    client, issuer = OidcClient(), issuer_of(provider)
    before = id_token_for(provider, client, "alice", "n-1")
    client.verify(issuer, "qms-hub", before, "n-1", datetime.now(UTC))  # the key set is now cached
    storage = _provider_storage(provider)
    from authlib.jose import RSAKey  # type: ignore[import-untyped]  # the provider's own key type

    storage.jwk = RSAKey.generate_key(is_private=True)
    cached = client.keys[issuer]
    after = id_token_for(provider, client, "alice", "n-2")
    assert client.verify(issuer, "qms-hub", after, "n-2", datetime.now(UTC))["sub"] == "alice"
    assert client.keys[issuer] is not cached  # the new key was fetched, not trusted blindly
    with pytest.raises(SsoRefused, match="signature"):
        client.verify(issuer, "qms-hub", before, "n-1", datetime.now(UTC))  # the retired key no longer verifies


def _provider_storage(server: Any) -> Any:
    """The running provider's key store (it offers no API to rotate; its request hook holds it)."""
    for hook in server.app.before_request_funcs[None]:
        for cell in hook.__closure__ or ():
            if type(cell.cell_contents).__name__ == "Storage":
                return cell.cell_contents
    raise AssertionError("no provider storage")
