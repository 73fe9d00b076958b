"""API tokens (`tokens.manage`), over the API and on the console's /tokens page: list one's own, issue one (the
secret is in that answer or page only), revoke. The caller is an HQ account or a tenant's SSO user (signed in through
OIDC or SAML, or calling with a token of theirs): each sees and revokes only the tokens of that same owner."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_201_CREATED

from cloud.hq_users import HqUser, get_user
from cloud.identity import sso_accounts, tokens
from cloud.identity.permissions import requires
from cloud.identity.signin import language
from cloud.web.console_auth import ConsoleAuth, HqPrincipal
from cloud.web.problems import refusal


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What a new token is for: a name, its permissions, how many days it lives, optionally one tenant."""

    name: str
    scopes: list[str]
    days: int = 90
    tenant: str | None = None


def _auth(request: Request[Any, Any, Any]) -> ConsoleAuth:
    auth: ConsoleAuth = request.app.state["console_auth"]
    return auth


def owner(request: Request[Any, Any, Any]) -> tokens.Owner:
    """Whose tokens the caller manages: its HQ account, or its tenant's SSO user (a session of an OIDC/SAML sign-in,
    or a token such a user owns)."""
    me: HqPrincipal = request.scope["user"]
    if me.auth_method in sso_accounts.SSO_METHODS and me.tenants is not None and len(me.tenants) == 1:
        return tokens.Owner(me.username or "", next(iter(me.tenants)))
    if me.auth_method == "token":
        raw = request.headers.get("authorization", "").partition(" ")[2].strip()
        found = tokens.owner_of(_auth(request).engine, raw)
        if found is not None:
            return found
    return tokens.Owner(me.username or "")


def _owner_user(request: Request[Any, Any, Any], mine: tokens.Owner) -> HqUser | None:
    """The caller's account as a token owner (an SSO user with their role as currently known), None when none."""
    engine = _auth(request).engine
    if mine.sso_tenant is None:
        return get_user(engine, mine.username) if mine.username else None
    account = sso_accounts.get(engine, mine.sso_tenant, mine.username)
    return None if account is None else account.as_user()


@get("/api/v1/tokens", guards=[requires("tokens.manage")], sync_to_thread=True)
def my_tokens(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The caller's API tokens (never their secrets)."""
    return {"tokens": [t.as_dict() for t in tokens.list_tokens(_auth(request).engine, owner=owner(request))]}


@post("/api/v1/tokens", guards=[requires("tokens.manage")], status_code=HTTP_201_CREATED)
async def issue_token(request: Request[Any, Any, Any], data: JSONBody[TokenRequest]) -> dict[str, Any]:
    """Issue a token for the caller's own account; `token` is shown in this answer only."""
    return await _issue(request, data)


async def _issue(request: Request[Any, Any, Any], data: TokenRequest) -> dict[str, Any]:
    """Issue a token for the caller (raises ClientException with what is wrong, a 400 `invalid_fields` problem
    naming the field when it is one)."""
    me: HqPrincipal = request.scope["user"]
    auth = _auth(request)
    mine = await asyncio.to_thread(owner, request)
    user = await asyncio.to_thread(_owner_user, request, mine)
    if user is None and mine.sso_tenant is not None:
        raise ClientException("the hub has no record of this single sign-on: sign out and sign in again")
    if user is None:
        raise ClientException("API tokens belong to HQ accounts (qms-cloud users add); this sign-in has none")
    if me.scopes is not None and not set(data.scopes) <= me.scopes:
        raise ClientException("a token cannot grant more than the token it was issued with")
    try:
        raw, info = await asyncio.to_thread(
            tokens.issue, auth.engine, user, data.name, data.scopes, data.days, auth.clock(), data.tenant,
            sso_tenant=mine.sso_tenant,
        )  # fmt: skip
    except tokens.TokenRefused as exc:
        if exc.field is None:
            raise ClientException(str(exc)) from None
        raise refusal(400, "invalid_fields", str(exc), fields=[exc.field]) from None
    return {**info.as_dict(), "token": raw}


@delete("/api/v1/tokens/{token_id:str}", guards=[requires("tokens.manage")], sync_to_thread=True)
def revoke_token(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Response[None]:
    """Revoke one of the caller's tokens; someone else's or an unknown id is 404."""
    auth, mine = _auth(request), owner(request)
    if not tokens.revoke(auth.engine, token_id, auth.clock(), mine, mine.username):
        raise NotFoundException("no such live token of yours")
    return Response(None, status_code=204)


ROUTES: list[Any] = [my_tokens, issue_token, revoke_token]


WORDS = {
    "id": {"title": "Token API", "intro": "Token untuk otomasi (Authorization: Bearer); hanya ditampilkan sekali.",
           "shown_once": "Salin sekarang — token ini tidak akan ditampilkan lagi:", "name": "Nama", "scopes": "Izin",
           "tenant": "Tenant", "expires": "Berlaku sampai", "last_used": "Terakhir dipakai", "revoke": "Cabut",
           "revoked": "dicabut", "none": "Belum ada token.", "new": "Token baru", "days": "Hari berlaku",
           "create": "Buat token"},
    "en": {"title": "API tokens", "intro": "Tokens for automation (Authorization: Bearer). A token is shown only once.",
           "shown_once": "Copy it now — it will not be shown again:", "name": "Name", "scopes": "Permissions",
           "tenant": "Tenant", "expires": "Expires", "last_used": "Last used", "revoke": "Revoke",
           "revoked": "revoked", "none": "No tokens yet.", "new": "New token", "days": "Days valid",
           "create": "Create token"},
}  # fmt: skip


def _page(request: Request[Any, Any, Any], new_token: str | None = None, error: str | None = None) -> Template:
    me: HqPrincipal = request.scope["user"]
    lang = language(request)
    listed = tokens.list_tokens(_auth(request).engine, owner=owner(request))
    context = {"lang": lang, "w": WORDS[lang], "tokens": listed, "grantable": sorted(me.permissions()),
               "new_token": new_token, "error": error, "active": "tokens"}  # fmt: skip
    return Template(template_name="identity/tokens.html", context=context, headers={"Cache-Control": "no-store"},
                    status_code=400 if error else 200)  # fmt: skip


@get("/tokens", guards=[requires("tokens.manage")], include_in_schema=False)
async def tokens_page(request: Request[Any, Any, Any]) -> Template:
    """The caller's API tokens, and a form for a new one."""
    return await asyncio.to_thread(_page, request)


@post("/tokens", guards=[requires("tokens.manage")], include_in_schema=False)
async def tokens_create_form(request: Request[Any, Any, Any]) -> Template:
    """Issue a token from the form; the page shows it once."""
    form = await request.form()
    name, days = form.get("name"), form.get("days")
    scopes = [s for s in form.getall("scopes") if isinstance(s, str)] if "scopes" in form else []
    try:
        body = TokenRequest(name=name if isinstance(name, str) else "", scopes=scopes,
                            days=int(days) if isinstance(days, str) and days.isdigit() else 0)  # fmt: skip
        made = await _issue(request, body)
    except (ClientException, ProblemDetailsException) as exc:
        return await asyncio.to_thread(_page, request, None, str(exc.detail))
    return await asyncio.to_thread(_page, request, str(made["token"]))


@post("/tokens/{token_id:str}/revoke", guards=[requires("tokens.manage")], include_in_schema=False)
async def tokens_revoke_form(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Response[Any]:
    """Revoke one of the caller's tokens from the page."""
    auth = _auth(request)
    mine = await asyncio.to_thread(owner, request)
    if not await asyncio.to_thread(tokens.revoke, auth.engine, token_id, auth.clock(), mine, mine.username):
        raise NotFoundException("no such live token of yours")
    return Redirect(path="/tokens", status_code=303)


ROUTES += [tokens_page, tokens_create_form, tokens_revoke_form]
