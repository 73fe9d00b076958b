"""API tokens over the API (`tokens.manage`): list one's own, issue one (the secret is in that answer only), revoke."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from cloud.hq_users import get_user
from cloud.identity import tokens
from cloud.identity.permissions import requires
from cloud.web.console_auth import ConsoleAuth, HqPrincipal


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What a new token is for: a name, its permissions, how many days it lives, optionally one tenant."""

    name: str
    scopes: list[str]
    days: int = 90
    tenant: str | None = None


def _auth(request: Request[Any, Any, Any]) -> ConsoleAuth:
    auth: ConsoleAuth = request.app.state["console_auth"]
    return auth


@get("/api/v1/tokens", guards=[requires("tokens.manage")], sync_to_thread=True)
def my_tokens(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The caller's API tokens (never their secrets)."""
    me: HqPrincipal = request.scope["user"]
    return {"tokens": [t.as_dict() for t in tokens.list_tokens(_auth(request).engine, me.username or "")]}


@post("/api/v1/tokens", guards=[requires("tokens.manage")], status_code=HTTP_201_CREATED)
async def issue_token(request: Request[Any, Any, Any], data: JSONBody[TokenRequest]) -> dict[str, Any]:
    """Issue a token for the caller's own account; `token` is shown in this answer only."""
    me: HqPrincipal = request.scope["user"]
    auth = _auth(request)
    user = await asyncio.to_thread(get_user, auth.engine, me.username or "") if me.username else None
    if user is None:
        raise ClientException("API tokens belong to HQ accounts (qms-cloud users add); this sign-in has none")
    if me.scopes is not None and not set(data.scopes) <= me.scopes:
        raise ClientException("a token cannot grant more than the token it was issued with")
    try:
        raw, info = await asyncio.to_thread(
            tokens.issue, auth.engine, user, data.name, data.scopes, data.days, auth.clock(), data.tenant
        )
    except tokens.TokenRefused as exc:
        raise ClientException(str(exc)) from None
    return {**info.as_dict(), "token": raw}


@delete("/api/v1/tokens/{token_id:str}", guards=[requires("tokens.manage")], sync_to_thread=True)
def revoke_token(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Response[None]:
    """Revoke one of the caller's tokens; someone else's or an unknown id is 404."""
    me: HqPrincipal = request.scope["user"]
    auth = _auth(request)
    if not tokens.revoke(auth.engine, token_id, auth.clock(), me.username or ""):
        raise NotFoundException("no such live token of yours")
    return Response(None, status_code=204)


ROUTES: list[Any] = [my_tokens, issue_token, revoke_token]
