"""SAML 2.0 sign-in with pysaml2 (signatures checked by Debian's `xmlsec1`): the hub is a service provider per
tenant (entity id `<hub>/sso/<tenant>/saml/metadata`), sends an AuthnRequest by HTTP-Redirect, and accepts only a
response to that request whose assertion is signed by the tenant's IdP and addressed to this hub (audience)."""

from __future__ import annotations

import logging
import shutil
from typing import Any

from saml2 import BINDING_HTTP_POST  # type: ignore[import-untyped]
from saml2.client import Saml2Client  # type: ignore[import-untyped]
from saml2.config import SPConfig  # type: ignore[import-untyped]
from saml2.metadata import entity_descriptor  # type: ignore[import-untyped]

from cloud.identity.oidc import SsoRefused

log = logging.getLogger("qms.cloud.auth")


def entity_id(tenant: str, base: str) -> str:
    """This hub's SAML entity id for `tenant` (the audience its IdP must name)."""
    return f"{base}/sso/{tenant}/saml/metadata"


def _config(tenant: str, base: str, idp_metadata: str | None) -> SPConfig:
    xmlsec = shutil.which("xmlsec1")
    if xmlsec is None:
        raise SsoRefused("SAML needs the xmlsec1 program on the hub (apt-get install xmlsec1)")
    settings: dict[str, Any] = {
        "entityid": entity_id(tenant, base),
        "xmlsec_binary": xmlsec,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(f"{base}/sso/saml/acs", BINDING_HTTP_POST)]},
            "want_assertions_signed": True,  # an unsigned (or re-written) assertion is refused
            "want_response_signed": False,
            "allow_unsolicited": False,  # only answers to our own AuthnRequest (InResponseTo)
            "authn_requests_signed": False,
        }},
    }  # fmt: skip
    if idp_metadata is not None:
        settings["metadata"] = {"inline": [idp_metadata]}
    config = SPConfig()
    config.load(settings)
    return config


def _message_id(state: str) -> str:
    return f"_{state[:40]}"  # an NCName: the AuthnRequest's ID, echoed as InResponseTo


def authn_redirect(idp: Any, base: str, state: str) -> str:
    """The IdP URL (HTTP-Redirect binding) carrying our AuthnRequest; RelayState is the flow's state."""
    try:
        client = Saml2Client(_config(idp.tenant, base, idp.settings.idp_metadata))
        _, info = client.prepare_for_authenticate(relay_state=state, message_id=_message_id(state))
    except SsoRefused:
        raise
    except Exception as exc:  # pysaml2 raises many types for bad metadata
        raise SsoRefused(f"the IdP's SAML metadata is unusable: {type(exc).__name__}") from None
    return str(dict(info["headers"])["Location"])


def accept(idp: Any, base: str, saml_response: str, state: str) -> dict[str, Any]:
    """The attributes of a signed, in-response-to-us, addressed-to-us assertion; raises SsoRefused."""
    client = Saml2Client(_config(idp.tenant, base, idp.settings.idp_metadata))
    try:
        answer = client.parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding={_message_id(state): "/"}
        )
    except Exception as exc:  # signature, audience, time conditions, replay: all refusals
        raise SsoRefused(f"the SAML response is not valid for this hub ({type(exc).__name__})") from None
    if answer is None or answer.assertion is None:
        raise SsoRefused("the SAML response carries no valid assertion (audience or conditions)")
    attributes: dict[str, Any] = dict(answer.get_identity())
    log.info("SAML attributes of tenant %s: %s", idp.tenant, sorted(attributes))
    subject = answer.get_subject()
    if subject is not None and getattr(subject, "text", None):
        attributes.setdefault("sub", subject.text)
    return attributes


def sp_metadata(tenant: str, base: str) -> str:
    """This hub's SP metadata for `tenant` (to give the IdP's administrator)."""
    return str(entity_descriptor(_config(tenant, base, None)))
