"""Who is calling the HQ console or its API, in this order: an API token (`Authorization: Bearer qms_…`), a
sign-in session (cookie `qms_session`, CSRF-checked on every unsafe method), HTTP Basic against `hq_users` (for
scripts, safe methods only: a browser may replay cached Basic credentials on a forged POST), the
`--console-password` fallback while no account exists, or open (no account, no password).

Passwords: argon2id, a short in-memory cache of successful checks, back-off after failures (one LoginThrottle for
the sign-in form and Basic). A browser that is not signed in is sent to /signin instead of a Basic prompt."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote

from litestar.connection import ASGIConnection, Request
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.utils.scope.state import ScopeState
from sqlalchemy.engine import Engine

from cloud.hq_users import HqUser, check_password, login_record
from cloud.identity import sessions, tokens
from cloud.identity.roles import PERMISSIONS, role_allows

log = logging.getLogger("qms.cloud.auth")

LEGACY_USER = "hq"  # the one user of `--console-password`
CACHE_SECONDS = 60.0  # a verified login is re-checked with argon2 after this long
CACHE_MAX_ENTRIES = 1_000
LOGIN_MAX_FAILURES = 5  # per username
LOGIN_MAX_FAILURES_PER_ADDRESS = 20  # per client address (one office behind one NAT must not lock itself out)
LOGIN_WINDOW_SECONDS = 15 * 60
THROTTLE_MAX_KEYS = 10_000
CHALLENGE = {"WWW-Authenticate": 'Basic realm="qms-cloud", charset="UTF-8"'}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrftoken"  # Litestar's name; forms post `_csrf_token` (the templates' csrf_input)
CSRF_FIELD = "_csrf_token"
SESSION_METHODS = frozenset({"session", "oidc", "saml"})  # signed in through the browser: cookie + CSRF


@dataclass(frozen=True)
class HqPrincipal:
    """Who is calling the console or its API: the role, and its scope; `tenants` None = every tenant,
    `branches` None = every branch of those tenants, else (tenant, branch) pairs. An API token narrows the role's
    permissions to its `scopes`."""

    username: str | None
    role: str
    tenants: frozenset[str] | None
    branches: frozenset[tuple[str, str]] | None = None
    auth_method: str = "open"  # open | basic | session | token | oidc | saml
    scopes: frozenset[str] | None = None  # an API token's permissions; None = everything the role grants

    def can(self, permission: str) -> bool:
        """Whether this caller may do `permission` (role, then the token's scopes)."""
        return role_allows(self.role, permission) and (self.scopes is None or permission in self.scopes)

    def permissions(self) -> frozenset[str]:
        """Everything this caller may do."""
        return frozenset(p for p in PERMISSIONS if self.can(p))

    def sees_tenant(self, tenant: str) -> bool:
        """Whether `tenant` is in scope (its id elsewhere answers 404)."""
        return self.tenants is None or tenant in self.tenants

    def sees_branch(self, tenant: str, branch_id: str) -> bool:
        """Whether the branch is in scope (its id elsewhere answers 404)."""
        return self.sees_tenant(tenant) and (self.branches is None or (tenant, branch_id) in self.branches)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the console API's `viewer`)."""
        tenants = sorted(self.tenants) if self.tenants is not None else ["*"]
        body: dict[str, Any] = {"username": self.username, "role": self.role, "tenants": tenants}
        if self.branches is not None:
            body["branches"] = [f"{t}/{b}" for t, b in sorted(self.branches)]
        return body


def principal_of(user: HqUser, auth_method: str) -> HqPrincipal:
    """The principal of an HQ account signed in by `auth_method`."""
    tenants = None if user.all_tenants else frozenset(user.tenants)
    return HqPrincipal(user.username, user.role, tenants, frozenset(user.branches) or None, auth_method)


EVERYONE = HqPrincipal(None, "platform_admin", None)  # an open console (no account, no password)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """The user and password of an `Authorization: Basic …` header, None when absent or malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and a header carrying non-ASCII bytes (Latin-1 text)
        return None
    return (user, password) if sep else None


@dataclass
class LoginThrottle:
    """Back-off after repeated failed logins per username (`user:…`) and per client address (`ip:…`).

    An attempt counts as failed from the moment it starts (and is forgiven if it succeeds), so parallel requests
    cannot all slip in before the first failure is recorded."""

    failures: dict[str, deque[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, *keys: str, now: float | None = None) -> tuple[int, float]:
        """(seconds the caller must wait, 0) when throttled, else (0, the attempt's time) with the attempt counted."""
        now = time.monotonic() if now is None else now
        with self.lock:
            wait = 0.0
            for key in keys:
                recent = self._recent(key, now)
                if len(recent) >= _limit(key):
                    wait = max(wait, recent[0] + LOGIN_WINDOW_SECONDS - now)
            if wait:
                return int(wait) + 1, 0.0
            if len(self.failures) > THROTTLE_MAX_KEYS:  # random usernames must not grow memory without bound
                self.failures = {k: q for k, q in self.failures.items() if q and q[-1] >= now - LOGIN_WINDOW_SECONDS}
            for key in keys:
                self._recent(key, now).append(now)
            return 0, now

    def succeeded(self, user_key: str, address_key: str, at: float) -> None:
        """Forget the username's failures and take back the address's count for this attempt."""
        with self.lock:
            self.failures.pop(user_key, None)
            recent = self.failures.get(address_key)
            if recent is not None and at in recent:
                recent.remove(at)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self.failures.setdefault(key, deque(maxlen=_limit(key)))
        while recent and recent[0] < now - LOGIN_WINDOW_SECONDS:
            recent.popleft()
        return recent


def _limit(key: str) -> int:
    return LOGIN_MAX_FAILURES_PER_ADDRESS if key.startswith("ip:") else LOGIN_MAX_FAILURES


@dataclass
class VerifiedCache:
    """Recently verified (username, password, stored hash) triples, as keyed digests: no password kept in memory,
    and a changed password (new hash) misses the cache."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    expires: dict[bytes, float] = field(default_factory=dict)

    def digest(self, username: str, password: str, stored_hash: str) -> bytes:
        """The cache key of one successful check."""
        message = "\0".join((username, password, stored_hash)).encode()
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def hit(self, digest: bytes, now: float) -> bool:
        """Whether this check succeeded less than CACHE_SECONDS ago."""
        return self.expires.get(digest, 0.0) > now

    def remember(self, digest: bytes, now: float) -> None:
        """Cache a successful check (bounded: expired entries go first, then everything)."""
        if len(self.expires) >= CACHE_MAX_ENTRIES:
            self.expires = {d: t for d, t in self.expires.items() if t > now}
            if len(self.expires) >= CACHE_MAX_ENTRIES:
                self.expires.clear()
        self.expires[digest] = now + CACHE_SECONDS


@dataclass
class ConsoleAuth:
    """The console's gatekeeper: one per app (its cache and throttle live in this process's memory)."""

    engine: Engine
    console_password: str = ""
    cache: VerifiedCache = field(default_factory=VerifiedCache)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    policy: sessions.SessionPolicy = field(default_factory=sessions.SessionPolicy.from_env)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # tests move it

    def resolve(self, authorization: str, session_id: str | None, address: str) -> tuple[HqPrincipal, str | None]:
        """The caller and, for a browser session, its CSRF token; raises 401 or 429."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return self.bearer(value.strip()), None
        if session_id:
            grant = sessions.lookup(self.engine, session_id, self.clock(), self.policy)
            if grant is not None:
                principal = HqPrincipal(grant.username, grant.role, grant.tenants, grant.branches, grant.auth_method)
                return principal, sessions.csrf_token_of(session_id)
        return self.authenticate(basic_credentials(authorization), address), None

    def bearer(self, raw: str) -> HqPrincipal:
        """The principal of an API token: its owner's role and scope, narrowed to the token's permissions/tenant."""
        found = tokens.verify(self.engine, raw, self.clock())
        if found is None:
            raise NotAuthorizedException(
                detail="invalid, expired or revoked API token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        user, token = found
        principal = principal_of(user, "token")
        tenants = principal.tenants if token.tenant_id is None else frozenset({token.tenant_id})
        return HqPrincipal(
            principal.username, principal.role, tenants, principal.branches, "token", frozenset(token.scopes)
        )

    def authenticate(self, credentials: tuple[str, str] | None, address: str, method: str = "basic") -> HqPrincipal:
        """The principal for these credentials (`method`: basic, or session for the sign-in form); raises 401 (with
        a Basic challenge) or 429 (with Retry-After)."""
        username, password = credentials or ("", "")
        any_account, user, stored_hash = login_record(self.engine, username)
        if not any_account:
            return self._fallback(credentials, address, method)
        if credentials is None:
            raise NotAuthorizedException(headers=CHALLENGE)
        now = time.monotonic()
        digest = self.cache.digest(username, password, stored_hash or "")
        if user is not None and user.active and stored_hash and self.cache.hit(digest, now):
            return principal_of(user, method)
        shown = username if user is not None else "<unknown user>"
        keys = (f"user:{username}", f"ip:{address}")
        at = self._attempt(keys, shown, address)
        valid = check_password(stored_hash, password)  # always argon2 work: unknown and disabled users too
        if user is None or not user.active or not valid:
            self._refuse(shown, address, "disabled account" if user is not None and valid else "wrong credentials")
        self.throttle.succeeded(*keys, at)
        self.cache.remember(digest, now)
        return principal_of(user, method)

    def _fallback(self, credentials: tuple[str, str] | None, address: str, method: str = "basic") -> HqPrincipal:
        """No account exists: the shared `--console-password` (user `hq`) if one is set, else an open console."""
        if not self.console_password:
            return EVERYONE
        if credentials is None:
            raise NotAuthorizedException(headers=CHALLENGE)
        username, password = credentials
        shown = LEGACY_USER if username == LEGACY_USER else "<unknown user>"
        keys = (f"user:{username}", f"ip:{address}")
        at = self._attempt(keys, shown, address)
        if username != LEGACY_USER or not hmac.compare_digest(password.encode(), self.console_password.encode()):
            self._refuse(shown, address, "wrong credentials")
        self.throttle.succeeded(*keys, at)
        return HqPrincipal(LEGACY_USER, "platform_admin", None, auth_method=method)

    def _attempt(self, keys: tuple[str, str], shown: str, address: str) -> float:
        wait, at = self.throttle.attempt(*keys)
        if wait:
            log.warning("console login of %s from %s throttled for %d s", shown, address, wait)
            raise TooManyRequestsException(detail="too many failed logins", headers={"Retry-After": str(wait)})
        return at

    @staticmethod
    def _refuse(shown: str, address: str, why: str) -> NoReturn:
        # Never log what was typed as a password; a name that is no account may be a password typed in the wrong box.
        log.warning("console login of %s from %s refused: %s", shown, address, why)
        raise NotAuthorizedException(headers=CHALLENGE)


async def console_guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """HQ staff only: resolve the caller (argon2 and the store run in a worker thread), keep it in `scope["user"]`,
    check the CSRF token of a browser session's unsafe request, and send a browser that is not signed in to /signin."""
    auth: ConsoleAuth = connection.app.state["console_auth"]
    address = connection.client.host if connection.client else "unknown"
    authorization = connection.headers.get("authorization", "")
    method = connection.scope.get("method", "GET")
    try:
        principal, csrf = await asyncio.to_thread(
            auth.resolve, authorization, connection.cookies.get(sessions.COOKIE), address
        )
    except NotAuthorizedException:
        if method in SAFE_METHODS and _wants_html(connection) and not authorization:
            target = connection.url.path + (f"?{connection.url.query}" if connection.url.query else "")
            raise HTTPException(
                status_code=303, headers={"Location": f"/signin?next={quote(target, safe='')}"}
            ) from None
        raise
    if principal.auth_method == "basic" and method not in SAFE_METHODS:
        raise PermissionDeniedException("HTTP Basic is read-only: sign in, or use an API token (Authorization: Bearer)")
    if csrf is not None:
        ScopeState.from_scope(connection.scope).csrf_token = csrf  # the templates' csrf_input / csrf_token()
        if method not in SAFE_METHODS and not hmac.compare_digest(await _presented_csrf(connection), csrf):
            raise PermissionDeniedException("CSRF token missing or wrong: reload the page and try again")
    connection.scope["user"] = principal


def _wants_html(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return "text/html" in connection.headers.get("accept", "")


async def _presented_csrf(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The token the request carries: the X-CSRFToken header, else the form's `_csrf_token` field (the parsed form
    is cached on the scope, so the handler reads it again)."""
    if header := connection.headers.get(CSRF_HEADER):
        return header
    content_type = connection.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await Request(connection.scope, connection.receive).form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""
