"""Staff sign-in for the appliance through the tenant's SAML IdP (pysaml2's own IdP, in process, signed by Debian's
xmlsec1): the hub maps the assertion's `uid` attribute to the branch's central staff account and sends the browser
back to the appliance with an assertion that verifies under the hub's key, for that branch and the appliance's nonce."""

from __future__ import annotations

import base64
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar.testing import TestClient
from saml2 import BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.server import Server  # type: ignore[import-untyped]

from cloud.admin.staff import save as save_staff
from cloud.credentials import issue
from cloud.identity import sso
from cloud.store import create_store_engine, transaction
from sync.staff_sso import StaffSsoRequest, sign_request, verify_assertion
from tests.cloud.identity.conftest import Clock
from tests.cloud.identity.test_saml import AUTHN, saml_hub

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs Debian's xmlsec1")
__all__ = ["saml_hub"]
BACK = "http://10.0.0.5:8080/staff/sso/callback"


def test_a_saml_user_signs_in_at_the_appliance(
    saml_hub: tuple[TestClient, Server], identity_store: str, tmp_path: Path, clock: Clock
) -> None:
    client, idp = saml_hub
    clock.now = datetime.now(UTC)  # the request and the assertion carry real times
    client.app.state["keys_dir"] = tmp_path
    engine = create_store_engine(identity_store)
    seed = issue(engine, tmp_path, "acme", "jkt-sudirman").seed_file.read_bytes()
    stored = sso.load(engine, "acme", "saml")
    assert stored is not None
    sso.save(engine, "acme", "saml", msgspec.structs.replace(stored.settings, staff_claim="uid"), clock.now)
    with transaction(engine) as conn:
        account = {"username": "sari", "role": "supervisor", "counters": [], "password": "sari-password-1",
                   "active": True}  # fmt: skip
        save_staff(conn, "acme", "jkt-sudirman", account, actor="test", source_ip=None)
    engine.dispose()

    request = StaffSsoRequest(tenant="acme", branch_id="jkt-sudirman", return_to=BACK, nonce="n" * 32,
                              issued_at=int(time.time()))  # fmt: skip
    begun = client.post("/sso/staff/begin", json={"request": sign_request(request, seed)}).json()
    to_idp = client.get(str(begun["go"]), follow_redirects=False)
    assert to_idp.status_code == 303, to_idp.text
    query = parse_qs(urlsplit(to_idp.headers["location"]).query)
    authn = idp.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message
    response = idp.create_authn_response(
        identity={"uid": ["sari"], "email": ["sari@acme.example"]}, in_response_to=authn.id,
        destination=authn.assertion_consumer_service_url, sp_entity_id=authn.issuer.text, userid="sari",
        name_id=None, authn=AUTHN, sign_assertion=True, sign_response=False,
    )  # fmt: skip
    form = {"SAMLResponse": base64.b64encode(str(response).encode()).decode(), "RelayState": query["RelayState"][0]}
    back = client.post("/sso/saml/acs", data=form, follow_redirects=False)
    assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(f"{BACK}?assertion="), location
    text = parse_qs(urlsplit(location).query)["assertion"][0]
    claims = verify_assertion(text, bytes.fromhex(str(begun["public_key"])), tenant="acme", branch_id="jkt-sudirman",
                              nonce="n" * 32, now=int(time.time()))  # fmt: skip
    assert (claims.username, claims.role, claims.idp) == ("sari", "supervisor", "saml")
    assert client.get("/api/v1/me").status_code == 401  # no console session came of it
