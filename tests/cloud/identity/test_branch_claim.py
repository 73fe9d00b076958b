"""A branch manager's branch claim sent as one string (`"bdg-dago, jkt-sudirman"`, or separated by spaces) names the
same branches as a list: through the suite's real OpenID provider and a real pysaml2 IdP, and for the claims the hub
keeps to map the role again later."""

# ruff: noqa: F811  (the OIDC and SAML fixtures are imported from their test modules and requested by name)

from __future__ import annotations

import base64
import shutil
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar.testing import TestClient
from saml2 import BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.server import Server  # type: ignore[import-untyped]

from cloud.identity import sso
from tests.cloud.identity.conftest import csrf_of, sign_in
from tests.cloud.identity.test_oidc import browser_sign_in, provider, sso_client  # noqa: F401
from tests.cloud.identity.test_saml import AUTHN, post, saml_hub  # noqa: F401
from tests.cloud.identity.test_sso_user_names import sso_user

BOTH = ["acme/bdg-dago", "acme/jkt-sudirman"]


@pytest.mark.parametrize("claim", ["bdg-dago, jkt-sudirman", "jkt-sudirman bdg-dago", " bdg-dago,,jkt-sudirman\n",
                                   ["bdg-dago", "jkt-sudirman"], ["bdg-dago,jkt-sudirman"]])  # fmt: skip
def test_an_oidc_branch_claim_as_a_string_or_a_list(sso_client: TestClient, provider: Any, claim: object) -> None:
    sub = sso_user(provider, "mgr@acme.example", ["qms-managers"], claim)
    assert browser_sign_in(sso_client, sub).headers["location"] == "/api/v1/me"
    me = sso_client.get("/api/v1/me").json()
    assert (me["role"], sorted(me["branches"])) == ("branch_manager", BOTH)
    seen = {b["branch_id"] for b in sso_client.get("/api/v1/branches").json()["branches"]}
    assert seen == {"bdg-dago", "jkt-sudirman"}
    sign_in(sso_client, "tina")  # the role as mapped again from the kept claims: the same branches
    users = sso_client.get("/api/v1/tenants/acme/sso/users").json()["users"]
    assert [(u["username"], u["branches"]) for u in users] == [("mgr@acme.example", ["bdg-dago", "jkt-sudirman"])]


def test_a_blank_branch_string_names_no_branch(sso_client: TestClient, provider: Any) -> None:
    sub = sso_user(provider, "nobranch@acme.example", ["qms-managers"], " , ")
    assert "sso_error=" in browser_sign_in(sso_client, sub).headers["location"]
    assert sso.branch_ids(None) == []
    assert sso.branch_ids(7) == []


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs Debian's xmlsec1")
def test_a_saml_branch_attribute_as_one_value(saml_hub: tuple[TestClient, Server]) -> None:
    client, idp = saml_hub
    sign_in(client, "tina")
    shown = client.get("/api/v1/tenants/acme/sso/saml").json()
    body = {"idp_metadata": shown["idp_metadata"], "roles": {"qms-managers": "branch_manager"},
            "role_claim": "eduPersonEntitlement", "username_claim": "email", "branch_claim": "ou"}  # fmt: skip
    assert client.put("/api/v1/tenants/acme/sso/saml", json=body, headers={"x-csrftoken": csrf_of(client)}
                      ).status_code == 200  # fmt: skip
    client.cookies.clear()
    start = client.get("/sso/start?tenant=acme&next=/api/v1/me", follow_redirects=False)
    query = parse_qs(urlsplit(start.headers["location"]).query)
    request = idp.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message
    identity = {"email": ["sari@acme.example"], "eduPersonEntitlement": ["qms-managers"],
                "ou": ["bdg-dago, jkt-sudirman"]}  # fmt: skip
    response = idp.create_authn_response(
        identity=identity, in_response_to=request.id, destination=request.assertion_consumer_service_url,
        sp_entity_id=request.issuer.text, userid="sari", name_id=None, authn=AUTHN, sign_assertion=True,
        sign_response=False,
    )  # fmt: skip
    form = {"SAMLResponse": base64.b64encode(str(response).encode()).decode(), "RelayState": query["RelayState"][0]}
    assert post(client, form) == "/api/v1/me"
    me = client.get("/api/v1/me").json()
    assert (me["auth_method"], me["role"], sorted(me["branches"])) == ("saml", "branch_manager", BOTH)
