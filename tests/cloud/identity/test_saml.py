"""SAML 2.0 sign-in against pysaml2's own IdP, in process, signing with a key made here (signatures by Debian's
xmlsec1): a signed assertion with a mapped role signs in; a tampered assertion, one for another audience, one
answering no request of ours, and a replayed one are refused."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from litestar.testing import TestClient
from saml2 import BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.config import IdPConfig  # type: ignore[import-untyped]
from saml2.metadata import entity_descriptor  # type: ignore[import-untyped]
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED  # type: ignore[import-untyped]
from saml2.server import Server  # type: ignore[import-untyped]

from tests.cloud.identity.conftest import csrf_of, sign_in

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs Debian's xmlsec1")
IDP = "https://idp.acme.example/saml"
ROLES = {"qms-auditors": "auditor", "qms-admins": "tenant_admin"}
AUTHN = {"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"}


def key_and_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed signing key for the IdP."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.acme.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))  # fmt: skip
    key_path, cert_path = directory / "idp.key", directory / "idp.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))  # fmt: skip
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def idp_config(directory: Path, sp_metadata: list[str]) -> IdPConfig:
    key, cert = key_and_cert(directory)
    config = IdPConfig()
    config.load({
        "entityid": IDP, "xmlsec_binary": shutil.which("xmlsec1"), "key_file": str(key), "cert_file": str(cert),
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(f"{IDP}/sso", BINDING_HTTP_REDIRECT)]},
            "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None}},
            "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
        }},
        "metadata": {"inline": sp_metadata},
    })  # fmt: skip
    return config


@pytest.fixture
def saml_hub(client: TestClient, tmp_path: Path) -> tuple[TestClient, Server]:
    """acme's hub configured with the IdP's metadata, and the IdP knowing the hub's SP metadata."""
    sp_metadata = client.get("/sso/acme/saml/metadata").text
    assert "AssertionConsumerService" in sp_metadata
    other_sp = client.get("/sso/globex/saml/metadata").text  # another service provider the IdP also serves
    config = idp_config(tmp_path, [sp_metadata, other_sp])
    metadata = str(entity_descriptor(config))
    sign_in(client, "tina")
    body = {"idp_metadata": metadata, "roles": ROLES, "role_claim": "eduPersonEntitlement", "username_claim": "email"}
    saved = client.put("/api/v1/tenants/acme/sso/saml", json=body, headers={"x-csrftoken": csrf_of(client)})
    assert saved.status_code == 200, saved.text
    client.cookies.clear()
    return client, Server(config=config)


def idp_answer(client: TestClient, idp: Server, groups: list[str], audience: str | None = None) -> dict[str, Any]:
    """Start at the hub, let the IdP read the AuthnRequest and answer it: the form the browser would post."""
    start = client.get("/sso/start?tenant=acme&next=/api/v1/me", follow_redirects=False)
    assert start.status_code == 303
    query = parse_qs(urlsplit(start.headers["location"]).query)
    request = idp.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message
    response = idp.create_authn_response(
        identity={"email": ["sari@acme.example"], "eduPersonEntitlement": groups}, in_response_to=request.id,
        destination=request.assertion_consumer_service_url, sp_entity_id=audience or request.issuer.text,
        userid="sari", name_id=None, authn=AUTHN, sign_assertion=True, sign_response=False,
    )  # fmt: skip
    return {"SAMLResponse": base64.b64encode(str(response).encode()).decode(), "RelayState": query["RelayState"][0]}


def post(client: TestClient, form: dict[str, Any]) -> str:
    answer = client.post("/sso/saml/acs", data=form, follow_redirects=False)
    assert answer.status_code == 303
    return str(answer.headers["location"])


def test_a_signed_assertion_with_a_mapped_role_signs_in(saml_hub: tuple[TestClient, Server]) -> None:
    client, idp = saml_hub
    form = idp_answer(client, idp, ["qms-auditors"])
    assert post(client, form) == "/api/v1/me"
    me = client.get("/api/v1/me").json()
    assert (me["username"], me["role"], me["tenants"], me["auth_method"]) == (
        "sari@acme.example",
        "auditor",
        ["acme"],
        "saml",
    )
    client.cookies.clear()
    assert post(client, form).startswith("/signin?sso_error=")  # the same response again: refused


def test_a_tampered_assertion_is_refused(saml_hub: tuple[TestClient, Server]) -> None:
    client, idp = saml_hub
    form = idp_answer(client, idp, ["qms-auditors"])
    xml = base64.b64decode(form["SAMLResponse"]).decode()
    assert "qms-auditors" in xml
    form["SAMLResponse"] = base64.b64encode(xml.replace("qms-auditors", "qms-admins").encode()).decode()
    assert post(client, form).startswith("/signin?sso_error=")
    assert client.get("/api/v1/me").status_code == 401


def test_an_assertion_for_another_audience_is_refused(saml_hub: tuple[TestClient, Server]) -> None:
    client, idp = saml_hub
    form = idp_answer(client, idp, ["qms-auditors"], audience="http://hub.test/sso/globex/saml/metadata")
    assert post(client, form).startswith("/signin?sso_error=")
    assert client.get("/api/v1/me").status_code == 401


def test_an_unmapped_group_is_refused(saml_hub: tuple[TestClient, Server]) -> None:
    client, idp = saml_hub
    assert "no%20role" in post(client, idp_answer(client, idp, ["staff"]))
