"""The console's sign-in and sign-out: the id/en sign-in page, password sign-in into a server-side session (a new
session id every time: no fixation), back-off after failures (the console's LoginThrottle), sign-out.

The sign-in form itself is protected against login CSRF by a double-submit cookie (`qms_signin`): no session
exists yet to derive a token from."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.utils.scope.state import ScopeState

from cloud.identity import sessions
from cloud.web.console_auth import EVERYONE, ConsoleAuth, HqPrincipal, console_guard

log = logging.getLogger("qms.cloud.auth")
SIGNIN_COOKIE = "qms_signin"
LANG_COOKIE = "qms_lang"
MAX_USERNAME, MAX_PASSWORD = 64, 1024
NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}

WORDS = {
    "id": {
        "title": "Masuk ke konsol HQ", "username": "Nama pengguna", "password": "Kata sandi", "submit": "Masuk",
        "wrong": "Nama pengguna atau kata sandi salah.",
        "locked": "Terlalu banyak percobaan gagal. Coba lagi dalam {minutes} menit.",
        "stale": "Formulir kedaluwarsa. Silakan coba lagi.", "invalid": "Isi nama pengguna dan kata sandi.",
        "signed_out": "Anda telah keluar.", "expired": "Sesi Anda berakhir. Silakan masuk lagi.",
        "sso": "Masuk dengan SSO organisasi", "tenant": "Kode organisasi", "sso_submit": "Lanjut ke SSO",
        "or": "atau", "sso_failed": "Masuk lewat SSO gagal: {reason}",
    },
    "en": {
        "title": "Sign in to the HQ console", "username": "Username", "password": "Password", "submit": "Sign in",
        "wrong": "Wrong username or password.",
        "locked": "Too many failed attempts. Try again in {minutes} minutes.",
        "stale": "The form expired. Please try again.", "invalid": "Enter a username and a password.",
        "signed_out": "You have signed out.", "expired": "Your session ended. Please sign in again.",
        "sso": "Sign in with your organisation's SSO", "tenant": "Organisation code", "sso_submit": "Continue to SSO",
        "or": "or", "sso_failed": "SSO sign-in failed: {reason}",
    },
}  # fmt: skip


def safe_next(target: str | None) -> str:
    """A local path to go back to (never another site: `//evil`, `https://…` and backslashes become `/`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@get("/lang/{lang:str}", include_in_schema=False)
async def switch_language(lang: FromPath[str], next: FromQuery[str | None] = None) -> Response[Any]:
    """Remember the console language (id/en) in a cookie and go back to the page (open to all: sign-in uses it)."""
    response: Response[Any] = Redirect(path=safe_next(next), status_code=303)
    if lang in WORDS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def language(request: Request[Any, Any, Any]) -> str:
    """id (default) or en: ?lang=, else the language cookie."""
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "id"
    return lang if lang in WORDS else "id"


def is_https(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser reached us over HTTPS (directly or through a TLS-terminating proxy): cookies get Secure."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def signin_page(
    request: Request[Any, Any, Any],
    *,
    message: str | None = None,
    notice: str | None = None,
    status: int = 200,
    username: str = "",
) -> Template:
    """The sign-in page with a fresh login-CSRF pair (cookie + hidden field)."""
    lang = language(request)
    token = secrets.token_urlsafe(24)
    words = WORDS[lang]
    context = {"lang": lang, "w": words, "form_token": token, "next": safe_next(request.query_params.get("next")),
               "message": message, "notice": notice, "username": username}  # fmt: skip
    response = Template(template_name="identity/signin.html", context=context, status_code=status, headers=NO_STORE)
    response.set_cookie(SIGNIN_COOKIE, token, path="/signin", httponly=True, samesite="strict",
                        secure=is_https(request), max_age=3600)  # fmt: skip
    return response


@get("/signin", include_in_schema=False)
async def signin_form(request: Request[Any, Any, Any]) -> Template:
    """The sign-in page (open: it is how one gets in)."""
    notice = {"out": "signed_out", "expired": "expired"}.get(request.query_params.get("why", ""))
    failed = request.query_params.get("sso_error")
    words = WORDS[language(request)]
    message = words["sso_failed"].format(reason=failed[:200]) if failed else None
    return signin_page(request, notice=words[notice] if notice else None, message=message)


@post("/signin", include_in_schema=False)
async def signin(request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the password (throttled), start a new session, set its cookie, go to `next`."""
    form = await request.form()
    words = WORDS[language(request)]
    username, password, token = (form.get(k) for k in ("username", "password", "_csrf_token"))
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    if not isinstance(token, str) or not cookie or not hmac.compare_digest(token, cookie):
        return signin_page(request, message=words["stale"], status=403)
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password \
            or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:  # fmt: skip
        return signin_page(request, message=words["invalid"], status=400)
    auth: ConsoleAuth = request.app.state["console_auth"]
    address = request.client.host if request.client else "unknown"
    try:
        principal = await asyncio.to_thread(auth.authenticate, (username, password), address, "session")
    except TooManyRequestsException as exc:
        minutes = max(1, -(-int((exc.headers or {}).get("Retry-After", "60")) // 60))
        return signin_page(request, message=words["locked"].format(minutes=minutes), status=429, username=username)
    except NotAuthorizedException:
        return signin_page(request, message=words["wrong"], status=401, username=username)
    next_path = form.get("next")
    return await start_session(request, principal, safe_next(next_path if isinstance(next_path, str) else None))


async def start_session(request: Request[Any, Any, Any], principal: HqPrincipal, next_path: str) -> Response[Any]:
    """End any session the browser brought (fixation), start a new one for `principal`, redirect to `next_path`."""
    auth: ConsoleAuth = request.app.state["console_auth"]
    response: Response[Any] = Redirect(path=next_path, status_code=303)
    if principal is EVERYONE:  # an open console has nothing to sign in to
        return response
    if old := request.cookies.get(sessions.COOKIE):
        await asyncio.to_thread(sessions.end, auth.engine, old)
    grant = sessions.SessionGrant(principal.username or "", principal.role, principal.tenants, principal.branches,
                                  principal.auth_method)  # fmt: skip
    address = request.client.host if request.client else "unknown"
    raw = await asyncio.to_thread(sessions.start, auth.engine, grant, auth.clock(), auth.policy, address)
    response.set_cookie(sessions.COOKIE, raw, httponly=True, samesite="lax", secure=is_https(request), path="/")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    log.info("console sign-in of %s (%s, %s) from %s", grant.username, grant.role, grant.auth_method, address)
    return response


@post("/signout", guards=[console_guard], include_in_schema=False)
async def signout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End this browser's session (the guard checked its CSRF token) and go back to the sign-in page."""
    auth: ConsoleAuth = request.app.state["console_auth"]
    if raw := request.cookies.get(sessions.COOKIE):
        address = request.client.host if request.client else "unknown"
        await asyncio.to_thread(sessions.end, auth.engine, raw, auth.clock(), address)
    response: Response[Any] = Redirect(path="/signin?why=out", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@get("/api/v1/me", guards=[console_guard])
async def whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Who is signed in, with which permissions, and (for a browser session) the CSRF token scripts send as
    X-CSRFToken on unsafe requests."""
    me: HqPrincipal = request.scope["user"]
    csrf = ScopeState.from_scope(request.scope).csrf_token
    return {**me.as_dict(), "auth_method": me.auth_method, "permissions": sorted(me.permissions()),
            "csrf_token": csrf if isinstance(csrf, str) else None}  # fmt: skip


ROUTES: list[Any] = [switch_language, signin_form, signin, signout, whoami]
