"""The SSO console page (issue 14): a tenant admin configures OIDC and SAML in forms instead of the API; the same
checks (an IdP can never grant platform_admin), the client secret write-only, audited, scoped to the tenant."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from tests.cloud.identity.conftest import audit_trail, sign_in

OIDC = {"display_name": "Acme ID", "issuer": "https://login.acme.example", "client_id": "qms-hub",
        "client_secret": "s3cret-value-xyz", "scopes": "openid email", "roles": "qms-admins = tenant_admin\n",
        "role_claim": "groups", "staff_claim": "preferred_username"}  # fmt: skip


def csrf(page: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_a_tenant_admin_configures_sso_in_the_console(client: TestClient, identity_store: str) -> None:
    sign_in(client, "tina")
    page = client.get("/sso-settings?lang=en")
    assert page.status_code == 200, page.text
    assert "Single sign-on · acme" in page.text
    assert 'data-nav="sso"' in page.text

    bad = client.post("/sso-settings/acme/oidc?lang=en", data={**OIDC, "roles": "admins is root",
                                                                  "_csrf_token": csrf(page.text)})  # fmt: skip
    assert bad.status_code == 400
    assert "Role map" in bad.text
    assert 'value="https://login.acme.example"' in bad.text  # what was typed stays
    assert "s3cret-value-xyz" not in bad.text  # never echoed
    too_much = client.post("/sso-settings/acme/oidc?lang=en", data={**OIDC, "roles": "g = platform_admin",
                                                                       "_csrf_token": csrf(page.text)})  # fmt: skip
    assert too_much.status_code == 400
    assert "may grant only" in too_much.text

    saved = client.post(
        "/sso-settings/acme/oidc", data={**OIDC, "_csrf_token": csrf(page.text)}, follow_redirects=False
    )
    assert saved.status_code == 303
    shown = client.get("/sso-settings?lang=en&done=saved").text
    assert "Saved." in shown
    assert "s3cret-value-xyz" not in shown
    assert "stored — leave empty to keep it" in shown
    assert client.get("/api/v1/tenants/acme/sso/oidc").json()["client_secret_set"] is True
    again = {**OIDC, "client_secret": "", "display_name": "Acme SSO", "_csrf_token": csrf(shown)}
    assert client.post("/sso-settings/acme/oidc", data=again, follow_redirects=False).status_code == 303
    stored = client.get("/api/v1/tenants/acme/sso/oidc").json()
    assert (stored["display_name"], stored["client_secret_set"]) == ("Acme SSO", True)  # empty box kept the secret
    assert [e for e in audit_trail(identity_store) if e[1] == "sso.configure"] == [
        ("tina", "sso.configure", "oidc")
    ] * 2

    removed = client.post("/sso-settings/acme/oidc/remove", data={"_csrf_token": csrf(shown)}, follow_redirects=False)
    assert removed.status_code == 303
    assert client.get("/api/v1/tenants/acme/sso/oidc").status_code == 404

    sign_in(client, "gus")  # globex's admin: acme is not there for him
    assert client.get("/sso-settings?tenant=acme").status_code == 404
    token = csrf(client.get("/sso-settings").text)
    assert client.post("/sso-settings/acme/oidc", data={**OIDC, "_csrf_token": token}).status_code == 404
    sign_in(client, "audi")  # read-only
    assert client.get("/sso-settings").status_code == 403
