"""SSO routes: start a tenant's sign-in (`/sso/start?tenant=`), the OIDC callback and the SAML assertion consumer
(both open: the IdP's signed answer is the proof), the SP metadata, the per-tenant IdP configuration API
(`users.manage`, the secret write-only), and the tenant's SSO users as the hub knows them (list, disable, enable)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Request, Response, delete, get, post, put
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect

from cloud.identity import saml, sso, sso_accounts, staff_sso
from cloud.identity.oidc import OidcClient, SsoRefused
from cloud.identity.permissions import require_tenant, requires
from cloud.identity.sessions import SessionGrant
from cloud.identity.signin import safe_next, start_session
from cloud.identity.sso_limits import per_address
from cloud.web.console_auth import ConsoleAuth, HqPrincipal
from cloud.web.problems import refusal

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
    """Send the browser to its tenant's IdP (OIDC if configured, else SAML); 429 past the address's budget."""
    per_address(request)
    auth = _auth(request)
    idp = await asyncio.to_thread(sso.load, auth.engine, tenant.strip()) if tenant.strip() else None
    if idp is None:
        return _failed("no single sign-on for this organisation code")
    return await _to_idp(request, idp, safe_next(next))


async def _to_idp(request: Request[Any, Any, Any], idp: sso.Idp, next_path: str) -> Response[Any]:
    """Begin a flow with the tenant's IdP and send the browser there."""
    auth = _auth(request)
    state, flow = await asyncio.to_thread(sso.begin, auth.engine, idp.tenant, idp.protocol, next_path, auth.clock())
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


def _oidc_claims(
    auth: ConsoleAuth, client: OidcClient, base: str, flow: sso.Flow, code: str
) -> tuple[sso.Idp, dict[str, Any]]:
    """The tenant's IdP and the claims of the verified ID token an OIDC callback brings; raises SsoRefused."""
    idp = sso.load(auth.engine, flow.tenant, "oidc")
    if idp is None:
        raise SsoRefused("single sign-on was switched off meanwhile")
    settings = idp.settings
    redirect_uri = f"{base}/sso/oidc/callback"
    id_token = client.exchange(settings.issuer, settings.client_id, idp.secret, code, redirect_uri, flow.verifier)
    return idp, client.verify(settings.issuer, settings.client_id, id_token, flow.nonce, auth.clock())


@get("/sso/oidc/callback", include_in_schema=False)
async def oidc_callback(request: Request[Any, Any, Any]) -> Response[Any]:
    """The IdP sends the browser back with a code: exchange it, verify the ID token, map the claims, sign in."""
    query = request.query_params  # `state` is a reserved parameter name in Litestar: read the query directly
    state, code, error = (query.get(k, "") for k in ("state", "code", "error"))
    auth = _auth(request)
    if error or not code or not state:
        log.warning("OIDC sign-in refused: the IdP answered %s", error or "without a code")
        return _failed(f"the identity provider answered {error or 'without a code'}")
    try:
        flow = await asyncio.to_thread(sso.finish, auth.engine, state, "oidc", auth.clock())
    except SsoRefused as exc:
        log.warning("OIDC sign-in refused: %s", exc)
        return _failed(str(exc))
    try:
        idp, claims = await asyncio.to_thread(_oidc_claims, auth, _oidc(request), base_url(request), flow, code)
    except SsoRefused as exc:
        log.warning("OIDC sign-in refused: %s", exc)
        return _refused(flow, str(exc))
    return await _signed_in(request, idp, claims, flow)


def _saml_claims(auth: ConsoleAuth, base: str, flow: sso.Flow, response: object, relay: str) -> tuple[sso.Idp, Any]:
    """The tenant's IdP and the attributes of a posted, verified SAML response; raises SsoRefused."""
    if not isinstance(response, str):
        raise SsoRefused("no SAML response")
    idp = sso.load(auth.engine, flow.tenant, "saml")
    if idp is None:
        raise SsoRefused("single sign-on was switched off meanwhile")
    return idp, saml.accept(idp, base, response, relay)


@post("/sso/saml/acs", include_in_schema=False)
async def saml_acs(request: Request[Any, Any, Any]) -> Response[Any]:
    """The IdP posts the signed SAML response here (its RelayState is our flow's state)."""
    form = await request.form()
    relay, auth = form.get("RelayState"), _auth(request)
    if not isinstance(relay, str) or not relay:
        return _failed("no SAML response")
    try:
        flow = await asyncio.to_thread(sso.finish, auth.engine, relay, "saml", auth.clock())
    except SsoRefused as exc:
        log.warning("SAML sign-in refused: %s", exc)
        return _failed(str(exc))
    try:
        idp, attributes = await asyncio.to_thread(
            _saml_claims, auth, base_url(request), flow, form.get("SAMLResponse"), relay
        )
    except SsoRefused as exc:
        log.warning("SAML sign-in refused: %s", exc)
        return _refused(flow, str(exc))
    return await _signed_in(request, idp, attributes, flow)


def _refused(flow: sso.Flow, reason: str, code: str = "idp") -> Response[Any]:
    """A refused sign-in: back to the console's sign-in page, or to the appliance that asked (a code only)."""
    staff = staff_sso.StaffFlow.decoded(flow.tenant, flow.next_path)
    if staff is None:
        return _failed(reason)
    return Redirect(path=f"{staff.return_to}?{urlencode({'error': code})}", status_code=303)


async def _signed_in(request: Request[Any, Any, Any], idp: sso.Idp, claims: dict[str, Any], flow: sso.Flow
                     ) -> Response[Any]:  # fmt: skip
    """The IdP proved who it is: a console session, or an assertion for the appliance that asked."""
    auth = _auth(request)
    staff = staff_sso.StaffFlow.decoded(flow.tenant, flow.next_path)
    if staff is None:
        before = await asyncio.to_thread(sso_accounts.signed_in, auth.engine, idp, claims, auth.clock())
        if before is not None and before.disabled_at is not None:
            log.warning("%s sign-in of %s (%s) refused: disabled at the hub", idp.protocol.upper(), before.username,
                        flow.tenant)  # fmt: skip
            return _failed("your account is disabled in this console (ask your administrator)")
        try:
            grant = sso.grant_for(flow.tenant, idp.settings, claims, idp.protocol)
        except SsoRefused as exc:
            log.warning("%s sign-in refused: %s", idp.protocol.upper(), exc)
            return _failed(str(exc))
        return await start_session(request, _principal(grant), flow.next_path)
    try:
        key = _staff_key(request)
        token = await asyncio.to_thread(staff_sso.issue_assertion, auth.engine, key, idp, claims, staff, auth.clock())
    except staff_sso.StaffSsoRefused as exc:
        return _refused(flow, str(exc), exc.code)
    return Redirect(path=f"{staff.return_to}?{urlencode({'assertion': token})}", status_code=303)


def _staff_key(request: Request[Any, Any, Any]) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey | None = request.app.state.get("staff_sso_key")
    if key is None:
        key = staff_sso.signing_key(Path(request.app.state["keys_dir"]))
        request.app.state["staff_sso_key"] = key
    return key


class StaffBegin(msgspec.Struct, forbid_unknown_fields=True):
    """An appliance's request to start a staff sign-in (`sync.staff_sso`, signed with its branch NKey)."""

    request: str


_BEGIN_STATUS = {"malformed": 400, "expired": 400, "signature": 403, "no_idp": 404}


@post("/sso/staff/begin", include_in_schema=False, status_code=200)
async def staff_begin(request: Request[Any, Any, Any], data: JSONBody[StaffBegin]) -> dict[str, str]:
    """Server to server from an appliance: keep its signed request as a single-use ticket; answer the path its
    staff member's browser opens, the hub's public key (pinned by the appliance) and the IdP's name."""
    per_address(request)
    auth = _auth(request)
    try:
        ticket, idp = await asyncio.to_thread(staff_sso.accept_request, auth.engine, data.request, auth.clock())
    except staff_sso.StaffSsoRefused as exc:
        log.warning("staff sign-in request refused (%s): %s", exc.code, exc)
        raise ProblemDetailsException(
            status_code=_BEGIN_STATUS.get(exc.code, 400), detail=str(exc), extra={"code": exc.code}
        ) from None
    label = idp.settings.display_name or idp.protocol.upper()
    public = staff_sso.public_hex(await asyncio.to_thread(_staff_key, request))
    return {"go": f"/sso/staff/go?{urlencode({'t': ticket})}", "public_key": public, "idp": label}


@get("/sso/staff/go", include_in_schema=False)
async def staff_go(request: Request[Any, Any, Any], t: FromQuery[str] = "") -> Response[Any]:
    """The staff member's browser arrives with its ticket: on to the tenant's IdP (OIDC if configured, else SAML)."""
    per_address(request)
    auth = _auth(request)
    try:
        staff = await asyncio.to_thread(staff_sso.take_ticket, auth.engine, t, auth.clock())
    except SsoRefused as exc:
        return _failed(str(exc))
    idp = await asyncio.to_thread(sso.load, auth.engine, staff.tenant)
    if idp is None:
        return Redirect(path=f"{staff.return_to}?{urlencode({'error': 'no_idp'})}", status_code=303)
    return await _to_idp(request, idp, staff.encoded())


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


@get("/api/v1/tenants/{tenant:str}/sso/users", guards=[requires("users.manage")], sync_to_thread=True)
def sso_users(request: Request[Any, Any, Any], tenant: FromPath[str]) -> dict[str, Any]:
    """The tenant's SSO users the hub has signed in: role as mapped now, IdP, last sign-in, disabled or not."""
    require_tenant(request.scope["user"], tenant)
    return {"users": [a.as_dict() for a in sso_accounts.list_accounts(_auth(request).engine, tenant)]}


def _set_disabled(request: Request[Any, Any, Any], tenant: str, username: str, disabled: bool) -> dict[str, Any]:
    require_tenant(request.scope["user"], tenant)
    auth = _auth(request)
    actor = request.scope["user"].username or "open"
    account = sso_accounts.set_disabled(auth.engine, tenant, username, disabled, auth.clock(), actor)
    if account is None:
        raise NotFoundException(f"no SSO user {username!r} of {tenant}")
    log.info("SSO user %s of %s %s by %s", username, tenant, "disabled" if disabled else "enabled", actor)
    return account.as_dict()


class SsoUserName(msgspec.Struct, forbid_unknown_fields=True):
    """The SSO user to disable or enable, for names a URL cannot carry exactly (`.`, `..`)."""

    username: str


_USERS = b"/sso/users/"


def _named_in_path(request: Request[Any, Any, Any], rest: str) -> tuple[str, str]:
    """(user name, action) of `…/sso/users/<name>/<action>`: the name is read from the raw path and percent-decoded
    once, so `dept/bob` (or `dept%2Fbob`), `%25`, `%3F`, `%23`, spaces and non-ASCII arrive exactly as sent; the
    routed path would have merged `//` and lost a leading or trailing `/`. ("", action) when no name is in the path."""
    raw: bytes = request.scope.get("raw_path") or b""  # optional in ASGI: then the routed path, as decoded
    if _USERS in raw:
        raw_name, _, raw_action = raw.partition(_USERS)[2].rpartition(b"/")
        return unquote_to_bytes(raw_name).decode("utf-8", "replace"), raw_action.decode("ascii", "replace")
    name, _, action = rest.strip("/").rpartition("/")
    return name, action


@post("/api/v1/tenants/{tenant:str}/sso/users/{rest:path}", guards=[requires("users.manage")], status_code=200)
async def sso_user_state(request: Request[Any, Any, Any], tenant: FromPath[str], rest: FromPath[str]) -> dict[str, Any]:
    """Disable (`…/sso/users/<name>/disable`: their sessions end, sign-ins and API tokens are refused) or enable
    (`…/enable`) an SSO user at the hub; the name percent-encoded in the path, or for any name at all
    `POST …/sso/users/disable` (or `/enable`) with `{"username": …}`."""
    name, action = _named_in_path(request, rest)
    if action not in ("disable", "enable"):
        raise NotFoundException(f"no action {action!r} (disable or enable)")
    if not name:
        try:
            name = msgspec.json.decode(await request.body(), type=SsoUserName).username
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise refusal(400, "invalid_fields", f"username: give {{\"username\": …}} ({exc})",
                          fields=["username"]) from None  # fmt: skip
    return await asyncio.to_thread(_set_disabled, request, tenant, name, action == "disable")


ROUTES: list[Any] = [
    sso_users,
    sso_user_state,
    sso_start,
    oidc_callback,
    saml_acs,
    saml_metadata,
    idp_show,
    idp_save,
    idp_remove,
    staff_begin,
    staff_go,
]
