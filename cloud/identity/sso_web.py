"""SSO routes: start a tenant's sign-in (`/sso/start?tenant=`), the OIDC callback and the SAML assertion consumer
(both open: the IdP's signed answer is the proof), the SP metadata, and the per-tenant IdP configuration API
(`users.manage`, the secret write-only)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, delete, get, post, put
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect

from cloud.identity import saml, sso
from cloud.identity.oidc import OidcClient, SsoRefused
from cloud.identity.permissions import require_tenant, requires
from cloud.identity.sessions import SessionGrant
from cloud.identity.signin import safe_next, start_session
from cloud.web.console_auth import ConsoleAuth, HqPrincipal

log = logging.getLogger("qms.cloud.auth")


def _auth(request: Request[Any, Any, Any]) -> ConsoleAuth:
    auth: ConsoleAuth = request.app.state["console_auth"]
    return auth


def _oidc(request: Request[Any, Any, Any]) -> OidcClient:
    client: OidcClient = request.app.state.setdefault("oidc_client", OidcClient())
    return client


def base_url(request: Request[Any, Any, Any]) -> str:
    """The hub's address as the browser sees it (callbacks and the SAML entity id are built on it)."""
    return str(request.base_url).rstrip("/")


def _failed(reason: str) -> Response[Any]:
    return Redirect(path=f"/signin?sso_error={quote(reason)}", status_code=303)


@get("/sso/start", include_in_schema=False)
async def sso_start(
    request: Request[Any, Any, Any], tenant: FromQuery[str] = "", next: FromQuery[str] = "/"
) -> Response[Any]:
    """Send the browser to its tenant's IdP (OIDC if configured, else SAML)."""
    auth = _auth(request)
    idp = await asyncio.to_thread(sso.load, auth.engine, tenant.strip()) if tenant.strip() else None
    if idp is None:
        return _failed("no single sign-on for this organisation code")
    state, flow = await asyncio.to_thread(
        sso.begin, auth.engine, idp.tenant, idp.protocol, safe_next(next), auth.clock()
    )
    try:
        if idp.protocol == "oidc":
            target = await asyncio.to_thread(
                _oidc(request).authorization_url, idp.settings.issuer, idp.settings.client_id,
                f"{base_url(request)}/sso/oidc/callback", idp.settings.scopes, state, flow.nonce, flow.verifier,
            )  # fmt: skip
        else:
            target = saml.authn_redirect(idp, base_url(request), state)
    except SsoRefused as exc:
        return _failed(str(exc))
    return Redirect(path=target, status_code=303)


def _oidc_grant(
    auth: ConsoleAuth, client: OidcClient, base: str, state: str, code: str, error: str
) -> tuple[SessionGrant, str]:
    """The session an OIDC callback proves, and where to go then; raises SsoRefused."""
    if error or not code or not state:
        raise SsoRefused(f"the identity provider answered {error or 'without a code'}")
    flow = sso.finish(auth.engine, state, "oidc", auth.clock())
    idp = sso.load(auth.engine, flow.tenant, "oidc")
    if idp is None:
        raise SsoRefused("single sign-on was switched off meanwhile")
    settings = idp.settings
    redirect_uri = f"{base}/sso/oidc/callback"
    id_token = client.exchange(settings.issuer, settings.client_id, idp.secret, code, redirect_uri, flow.verifier)
    claims = client.verify(settings.issuer, settings.client_id, id_token, flow.nonce, auth.clock())
    return sso.grant_for(flow.tenant, settings, claims, "oidc"), flow.next_path


@get("/sso/oidc/callback", include_in_schema=False)
async def oidc_callback(request: Request[Any, Any, Any]) -> Response[Any]:
    """The IdP sends the browser back with a code: exchange it, verify the ID token, map the claims, sign in."""
    query = request.query_params  # `state` is a reserved parameter name in Litestar: read the query directly
    state, code, error = (query.get(k, "") for k in ("state", "code", "error"))
    try:
        grant, next_path = await asyncio.to_thread(
            _oidc_grant, _auth(request), _oidc(request), base_url(request), state, code, error
        )
    except SsoRefused as exc:
        log.warning("OIDC sign-in refused: %s", exc)
        return _failed(str(exc))
    return await start_session(request, _principal(grant), next_path)


def _saml_grant(auth: ConsoleAuth, base: str, response: object, relay: object) -> tuple[SessionGrant, str]:
    """The session a posted SAML response proves, and where to go then; raises SsoRefused."""
    if not isinstance(response, str) or not isinstance(relay, str):
        raise SsoRefused("no SAML response")
    flow = sso.finish(auth.engine, relay, "saml", auth.clock())
    idp = sso.load(auth.engine, flow.tenant, "saml")
    if idp is None:
        raise SsoRefused("single sign-on was switched off meanwhile")
    attributes = saml.accept(idp, base, response, relay)
    return sso.grant_for(flow.tenant, idp.settings, attributes, "saml"), flow.next_path


@post("/sso/saml/acs", include_in_schema=False)
async def saml_acs(request: Request[Any, Any, Any]) -> Response[Any]:
    """The IdP posts the signed SAML response here (its RelayState is our flow's state)."""
    form = await request.form()
    try:
        grant, next_path = await asyncio.to_thread(
            _saml_grant, _auth(request), base_url(request), form.get("SAMLResponse"), form.get("RelayState")
        )
    except SsoRefused as exc:
        log.warning("SAML sign-in refused: %s", exc)
        return _failed(str(exc))
    return await start_session(request, _principal(grant), next_path)


@get("/sso/{tenant:str}/saml/metadata", include_in_schema=False)
async def saml_metadata(request: Request[Any, Any, Any], tenant: FromPath[str]) -> Response[str]:
    """This hub as a SAML service provider of `tenant` (entity id, assertion consumer URL), for the IdP's admin."""
    return Response(saml.sp_metadata(tenant, base_url(request)), media_type="application/samlmetadata+xml")


def _principal(grant: SessionGrant) -> HqPrincipal:
    return HqPrincipal(grant.username, grant.role, grant.tenants, grant.branches, grant.auth_method)


@get("/api/v1/tenants/{tenant:str}/sso/{protocol:str}", guards=[requires("users.manage")])
async def idp_show(request: Request[Any, Any, Any], tenant: FromPath[str], protocol: FromPath[str]) -> dict[str, Any]:
    """A tenant's IdP settings (never its secret: `client_secret_set` says whether one is stored)."""
    require_tenant(request.scope["user"], tenant)
    idp = await asyncio.to_thread(sso.load, _auth(request).engine, tenant, protocol)
    if idp is None:
        raise NotFoundException(f"no {protocol} sign-on for {tenant}")
    return idp.public()


@put("/api/v1/tenants/{tenant:str}/sso/{protocol:str}", guards=[requires("users.manage")], sync_to_thread=True)
def idp_save(
    request: Request[Any, Any, Any], tenant: FromPath[str], protocol: FromPath[str], data: JSONBody[sso.IdpSettings]
) -> dict[str, Any]:
    """Configure a tenant's IdP (a client secret given replaces the stored one; absent keeps it)."""
    require_tenant(request.scope["user"], tenant)
    auth = _auth(request)
    try:
        idp = sso.save(auth.engine, tenant, protocol, data, auth.clock(), request.scope["user"].username or "open")
    except (SsoRefused, ValueError) as exc:
        raise ClientException(str(exc)) from None
    log.info("SSO %s of tenant %s configured by %s", protocol, tenant, request.scope["user"].username)
    return idp.public()


@delete("/api/v1/tenants/{tenant:str}/sso/{protocol:str}", guards=[requires("users.manage")], sync_to_thread=True)
def idp_remove(request: Request[Any, Any, Any], tenant: FromPath[str], protocol: FromPath[str]) -> Response[None]:
    """Switch a tenant's IdP off (its existing sessions run out on their own)."""
    require_tenant(request.scope["user"], tenant)
    auth = _auth(request)
    if not sso.remove(auth.engine, tenant, protocol, auth.clock(), request.scope["user"].username or "open"):
        raise NotFoundException(f"no {protocol} sign-on for {tenant}")
    return Response(None, status_code=204)


ROUTES: list[Any] = [sso_start, oidc_callback, saml_acs, saml_metadata, idp_show, idp_save, idp_remove]
