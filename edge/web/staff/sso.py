"""Staff sign-in through the hub's single sign-on (US-AGENT-002), the appliance's half.

`/staff/sso/start` asks the hub (server to server, `QMS_HUB_URL`, signed with the branch's NKey `QMS_NATS_NKEY`: see
`sync.staff_sso`) for a sign-in that returns to this appliance, keeps a pending sign-in (state in an HttpOnly cookie,
a nonce for the hub) and sends the browser to the hub, which goes through the tenant's IdP. `/staff/sso/callback`
takes the pending sign-in (single use), checks the hub's assertion against the hub key pinned in
`<data>/hub-sso.json` (signature, tenant and branch, nonce, 2-minute expiry, jti), and opens the ordinary staff
session of that account (an HQ-managed account of this branch, active here). With the hub unreachable the page says
so; local passwords keep working either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from litestar import Controller, Request, Response, get
from litestar.response import Redirect

from edge.audit import insert as insert_audit
from edge.auth import User, find_user
from edge.staff_watch import STAFF_FILE
from edge.store.datadir import write_private
from edge.tls import CA_FILE, TLS_DIR
from edge.web.deps import appliance
from edge.web.staff.pages import HOME, _safe_next, _secure
from edge.web.staff.session import COOKIE, SESSION_LIFETIME, STAFF_ROLES, client_of, entry, open_session
from sync.staff_sso import SsoMessageRefused, StaffAssertion, StaffSsoRequest, sign_request, verify_assertion

log = logging.getLogger("qms.staff")
PIN_FILE = "hub-sso.json"  # the hub's staff sign-in key (pinned at first use) and the IdP's name
STATE_COOKIE = "qms_sso"
STATE_PATH = "/staff/sso"
PENDING_SECONDS = 300  # a sign-in must come back within this (the IdP's page included)
MAX_PENDING = 1000
HUB_TIMEOUT = httpx.Timeout(5.0)
OFFLINE_NOTICE = 300  # seconds the sign-in page keeps saying the hub was unreachable (a click tries again)
# Refusal codes (from the hub or checked here) -> the message on the sign-in page.
REFUSALS = {
    "offline": "The hub cannot be reached now. Sign in with your password; local accounts keep working.",
    "unknown_account": "Your identity has no staff account at this branch. Ask your branch admin.",
    "disabled_account": "Your staff account is disabled. Ask your branch admin.",
    "no_idp": "Single sign-on is not set up for this organisation.",
    "key_changed": "The hub's sign-in key changed. Ask a technician to check the appliance.",
}
GENERIC_REFUSAL = "Single sign-on did not succeed. Start again or sign in with your password."


class SsoUnavailable(Exception):
    """The sign-in cannot start: `code` is a REFUSALS key."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class StaffSso:
    """The appliance's link to the hub's staff sign-in: settings from the environment and the pending sign-ins."""

    data_dir: Path
    hub: str = ""
    tenant: str = ""
    seed_file: str = ""
    public_url: str = ""  # QMS_PUBLIC_URL: this appliance's address for staff (else the address the browser used)
    pending: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # state digest -> nonce, next, when
    used: dict[str, float] = field(default_factory=dict)  # assertion ids already accepted -> when
    lock: threading.Lock = field(default_factory=threading.Lock)
    unreachable_since: float | None = None  # the last start found the hub down (the page says so until one works)

    @classmethod
    def from_env(cls, data_dir: Path, env: Mapping[str, str] | None = None) -> StaffSso:
        """Settings from `QMS_HUB_URL`, `QMS_TENANT`, `QMS_NATS_NKEY` and `QMS_PUBLIC_URL`."""
        env = os.environ if env is None else env
        hub, public = env.get("QMS_HUB_URL", "").rstrip("/"), env.get("QMS_PUBLIC_URL", "").rstrip("/")
        return cls(data_dir, hub, env.get("QMS_TENANT", ""), env.get("QMS_NATS_NKEY", ""), public)

    @property
    def configured(self) -> bool:
        """Whether this appliance can offer SSO (enrolled with a hub and an NKey)."""
        return bool(self.hub and self.tenant and self.seed_file)

    def pinned(self) -> dict[str, str]:
        """The pinned hub key and IdP name ({} before the first sign-in)."""
        try:
            found = json.loads((self.data_dir / PIN_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def label(self) -> str:
        """The IdP's name for the button."""
        return str(self.pinned().get("idp") or "SSO")

    def _pin(self, public_key: str, idp: str) -> None:
        known = self.pinned().get("public_key")
        if known and known != public_key:
            log.error(
                "the hub's staff sign-in key changed (pinned %s…, offered %s…): refused", known[:8], public_key[:8]
            )
            raise SsoUnavailable("key_changed")
        write_private(self.data_dir / PIN_FILE, json.dumps({"public_key": public_key, "idp": idp[:80]}).encode())

    def _verify(self) -> ssl.SSLContext | bool:
        ca = self.data_dir / TLS_DIR / CA_FILE
        return ssl.create_default_context(cafile=str(ca)) if ca.exists() else True

    async def begin(self, branch_id: str, return_to: str, next_path: str) -> tuple[str, str]:
        """Ask the hub for a sign-in; (the state for the browser's cookie, the hub URL to send it to)."""
        if not self.configured:
            raise SsoUnavailable("no_idp")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        request = StaffSsoRequest(tenant=self.tenant, branch_id=branch_id, return_to=return_to, nonce=nonce,
                                  issued_at=int(time.time()))  # fmt: skip
        try:
            signed = sign_request(request, await asyncio.to_thread(Path(self.seed_file).read_bytes))
            async with httpx.AsyncClient(timeout=HUB_TIMEOUT, verify=self._verify()) as client:
                answer = await client.post(f"{self.hub}/sso/staff/begin", json={"request": signed})
        except (OSError, httpx.HTTPError) as exc:
            log.warning("staff SSO: the hub cannot be reached (%s)", type(exc).__name__)
            self.unreachable_since = time.monotonic()
            raise SsoUnavailable("offline") from None
        self.unreachable_since = None
        if answer.status_code != httpx.codes.OK:
            code = _problem_code(answer)
            log.warning("staff SSO: the hub refused to start (%s %s)", answer.status_code, code)
            raise SsoUnavailable(code if code in REFUSALS else "offline" if answer.status_code >= 500 else "refused")  # noqa: PLR2004
        body = answer.json()
        self._pin(str(body["public_key"]), str(body.get("idp") or ""))
        with self.lock:
            self._sweep()
            self.pending[_digest(state)] = (nonce, next_path, time.monotonic())
        return state, f"{self.hub}{body['go']}"

    def take(self, state: str) -> tuple[str, str] | None:
        """The pending sign-in of a state cookie (nonce, next), removed: each is used once."""
        with self.lock:
            self._sweep()
            found = self.pending.pop(_digest(state), None) if state else None
        return (found[0], found[1]) if found else None

    def check(self, text: str, branch_id: str, nonce: str) -> StaffAssertion:
        """The hub's assertion once it verifies and was never accepted before; raises SsoMessageRefused."""
        public = self.pinned().get("public_key", "")
        claims = verify_assertion(text, bytes.fromhex(public), tenant=self.tenant, branch_id=branch_id, nonce=nonce,
                                  now=int(time.time()))  # fmt: skip
        with self.lock:
            if claims.jti in self.used:
                raise SsoMessageRefused("nonce", "the assertion was already used")
            self.used[claims.jti] = time.monotonic()
        return claims

    def _sweep(self) -> None:
        limit = time.monotonic() - PENDING_SECONDS
        self.pending = {k: v for k, v in self.pending.items() if v[2] > limit}
        self.used = {k: v for k, v in self.used.items() if v > limit}
        while len(self.pending) > MAX_PENDING:  # a flood of starts must not grow memory without bound
            self.pending.pop(next(iter(self.pending)))


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _problem_code(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("code", ""))
    except ValueError:
        return ""


def staff_sso(request: Request[Any, Any, Any]) -> StaffSso:
    """The appliance's StaffSso (made once from the environment)."""
    state = request.app.state
    if "staff_sso" not in state:
        state["staff_sso"] = StaffSso.from_env(Path(appliance(request).service.data_dir))
    found: StaffSso = state["staff_sso"]
    return found


def _back(code: str, next_path: str = "") -> Redirect:
    target = f"/staff/login?sso_error={quote(code)}" + (f"&next={quote(next_path)}" if next_path else "")
    response = Redirect(target, status_code=303)
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
    return response


def _managed(data_dir: Path) -> set[str]:
    """The usernames HQ manages at this branch (edge.staff_watch keeps them)."""
    try:
        return set(json.loads((data_dir / STAFF_FILE).read_text())["usernames"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


class SsoPages(Controller):
    """`/staff/sso/start` and `/staff/sso/callback`."""

    path = STATE_PATH

    @get("/start")
    async def start(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Start a sign-in at the hub and send the browser there (the state cookie binds the way back to it)."""
        sso, app = staff_sso(request), appliance(request)
        next_path = _safe_next(request.query_params.get("next"), "")
        base = sso.public_url or str(request.base_url).rstrip("/")
        try:
            state, target = await sso.begin(app.service.view.state.branch_id, f"{base}{STATE_PATH}/callback", next_path)
        except SsoUnavailable as exc:
            return _back(exc.code, next_path)
        response: Response[Any] = Redirect(target, status_code=303)
        response.set_cookie(STATE_COOKIE, state, max_age=PENDING_SECONDS, path=STATE_PATH, httponly=True,
                            samesite="lax", secure=_secure(request))  # fmt: skip
        return response

    @get("/callback")
    async def callback(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The hub sends the browser back with an assertion (or a refusal code): check it, open the session."""
        sso, app = staff_sso(request), appliance(request)
        pending = sso.take(request.cookies.get(STATE_COOKIE, "")[:100])
        error, text = request.query_params.get("error", ""), request.query_params.get("assertion", "")
        if error:
            return _back(error if error in REFUSALS else "refused", pending[1] if pending else "")
        branch_id = app.service.view.state.branch_id
        if pending is None:  # no pending sign-in in this browser: replayed, expired, or another browser's
            await _audit_refusal(request, "?", "no_pending")
            return _back("refused")
        try:
            claims = sso.check(text, branch_id, pending[0])
        except (SsoMessageRefused, ValueError) as exc:
            await _audit_refusal(request, "?", exc.code if isinstance(exc, SsoMessageRefused) else "malformed")
            return _back("refused", pending[1])
        found = app.service.read(lambda conn: find_user(conn, claims.username))
        user: User | None = found[0] if found else None
        if user is None or claims.username not in _managed(Path(app.service.data_dir)):
            await _audit_refusal(request, claims.username, "unknown_account")
            return _back("unknown_account", pending[1])
        if not user.active or user.role not in STAFF_ROLES:
            await _audit_refusal(request, claims.username, "disabled_account")
            return _back("disabled_account", pending[1])
        return await _open(request, user, claims, pending[1])


async def _audit_refusal(request: Request[Any, Any, Any], username: str, reason: str) -> None:
    app = appliance(request)
    audit = entry(request, username, None, "login_failed", via="sso", reason=reason)
    await asyncio.wrap_future(app.service.submit_store(lambda conn: insert_audit(conn, audit, datetime.now(UTC))))


async def _open(request: Request[Any, Any, Any], user: User, claims: StaffAssertion, next_path: str) -> Response[Any]:
    """The ordinary staff session of `user` (its role and counters as this appliance holds them), audited."""
    app = appliance(request)
    ip, agent = client_of(request)
    now = datetime.now(UTC)
    audit = entry(request, user.username, user.role, "login", via="sso", idp=claims.idp)

    def sign_in(conn: sqlite3.Connection) -> str:
        insert_audit(conn, audit, now)
        return open_session(conn, user.username, ip, agent, now)

    session_id: str = await asyncio.wrap_future(app.service.submit_store(sign_in))
    response: Response[Any] = Redirect(next_path or HOME.get(user.role, "/staff/"), status_code=303)
    response.set_cookie(COOKIE, session_id, max_age=int(SESSION_LIFETIME.total_seconds()), path="/staff",
                        httponly=True, samesite="lax", secure=_secure(request))  # fmt: skip
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
    return response


def login_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What the sign-in page shows of SSO: the button (when this appliance can offer it) and a refusal message."""
    sso = staff_sso(request)
    code = request.query_params.get("sso_error", "")
    if not code and sso.unreachable_since is not None and time.monotonic() - sso.unreachable_since < OFFLINE_NOTICE:
        code = "offline"
    message = REFUSALS.get(code, GENERIC_REFUSAL) if code else ""
    return {"sso_label": sso.label() if sso.configured else "", "sso_error": message, "sso_offline": code == "offline"}
