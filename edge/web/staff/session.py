"""Staff web sessions: an opaque cookie backed by a revocable server-side row, CSRF tokens, the current staff member."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from edge.audit import AuditEntry
from edge.auth import STAFF_TOKEN_SECONDS, Principal, User, find_user
from edge.web.deps import Appliance, appliance, client_address

COOKIE = "qms_session"
LANG_COOKIE = "qms_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_LIFETIME = timedelta(seconds=STAFF_TOKEN_SECONDS)
# A session left alone this long ends (a desk left open at lunch): `QMS_STAFF_IDLE_MINUTES`, default 30.
SESSION_IDLE = timedelta(minutes=int(os.environ.get("QMS_STAFF_IDLE_MINUTES", "30")))
TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most this often per session
STAFF_ROLES = ("admin", "supervisor", "agent")


class NotSignedIn(Exception):
    """No valid session: the page handler answers with a redirect to the login page."""


class Refused(Exception):
    """The signed-in staff member may not see or do this."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member, re-read from the users table on every request (role changes apply at once)."""

    user: User
    principal: Principal
    session_id: str
    csrf: str

    @property
    def username(self) -> str:
        """Who."""
        return self.user.username

    @property
    def role(self) -> str:
        """Their role."""
        return self.user.role

    def require(self, *roles: str) -> None:
        """Refuse unless the staff member has one of the roles."""
        if self.role not in roles:
            raise Refused("role")

    def require_counter(self, counter_id: str) -> None:
        """Refuse a counter not assigned to an agent (supervisors and admins may use any)."""
        if not self.principal.may_use_counter(counter_id):
            raise Refused("counter")


def session_digest(session_id: str) -> str:
    """Only a hash of the session id is stored: a copy of the database does not yield live cookies."""
    return hashlib.sha256(session_id.encode()).hexdigest()


# A live session: not revoked, within its lifetime, used within the idle timeout (`live_args(now)` fills it in).
LIVE_SESSION = "revoked = 0 AND expires_at > ? AND coalesce(last_seen, created_at) > ?"


def live_args(now: datetime) -> tuple[str, str]:
    """The parameters of `LIVE_SESSION` at `now`."""
    return now.isoformat(), (now - SESSION_IDLE).isoformat()


def csrf_for(app: Appliance, session_id: str) -> str:
    """The session's CSRF token: an HMAC of the session id with the appliance's signing key."""
    return hmac.new(app.issuer.secret, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def client_of(request: Request[Any, Any, Any]) -> tuple[str | None, str | None]:
    """The caller's address and user agent, for the audit trail."""
    return client_address(request), request.headers.get("user-agent")  # a proxy's X-Forwarded-For only if trusted


def entry(
    request: Request[Any, Any, Any], actor: str, role: str | None, action: str, target: str | None = None, **detail: Any
) -> AuditEntry:
    """An audit entry for this request."""
    ip, agent = client_of(request)
    clean = {k: v for k, v in detail.items() if v not in (None, "")}
    return AuditEntry(actor=actor, role=role, action=action, target=target, detail=clean, ip=ip, user_agent=agent)


def open_session(conn: sqlite3.Connection, username: str, ip: str | None, user_agent: str | None, now: datetime) -> str:
    """Create a session row (in the writer's transaction); returns the cookie value."""
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO staff_sessions (session_hash, username, created_at, expires_at, ip, user_agent)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            session_digest(session_id),
            username,
            now.isoformat(),
            (now + SESSION_LIFETIME).isoformat(),
            ip,
            (user_agent or "")[:300],
        ),
    )
    conn.execute("DELETE FROM staff_sessions WHERE expires_at < ?", (now.isoformat(),))
    return session_id


def revoke_session(conn: sqlite3.Connection, session_id: str) -> None:
    """Sign a session out for good (the cookie stops working even if copied)."""
    conn.execute("UPDATE staff_sessions SET revoked = 1 WHERE session_hash = ?", (session_digest(session_id),))


def revoke_user_sessions(conn: sqlite3.Connection, username: str) -> None:
    """Sign a user out everywhere (deactivated, password or role changed)."""
    conn.execute("UPDATE staff_sessions SET revoked = 1 WHERE username = ?", (username,))


def _lookup(conn: sqlite3.Connection, session_id: str, now: datetime) -> tuple[User, datetime] | None:
    """The session's user and when they last did something, for a live session that has not gone idle."""
    sql = (
        "SELECT username, coalesce(last_seen, created_at) FROM staff_sessions"  # noqa: S608 - a constant fragment
        f" WHERE session_hash = ? AND {LIVE_SESSION}"
    )
    row = conn.execute(sql, (session_digest(session_id), *live_args(now))).fetchone()
    found = find_user(conn, row[0]) if row else None
    return (found[0], datetime.fromisoformat(row[1])) if found else None


def _user_initiated(request: Request[Any, Any, Any]) -> bool:
    """A page load or an action, not an open page refreshing itself (its live regions and event stream)."""
    return not request.url.path.endswith("/live") and "text/event-stream" not in request.headers.get("accept", "")


def current_staff(request: Request[Any, Any, Any]) -> Staff | None:
    """The staff member of the request's session cookie, if it is valid and the user is active staff."""
    session_id = request.cookies.get(COOKIE)
    if not session_id or len(session_id) > 100:  # noqa: PLR2004 - token_urlsafe(32) is 43 chars
        return None
    app = appliance(request)
    now = datetime.now(UTC)
    found = app.service.read(lambda conn: _lookup(conn, session_id, now))
    if found is None:
        return None
    user, last_seen = found
    if not user.active or user.role not in STAFF_ROLES:
        return None
    if _user_initiated(request) and now - last_seen > TOUCH_EVERY:
        digest = session_digest(session_id)
        touch = "UPDATE staff_sessions SET last_seen = ? WHERE session_hash = ?"
        app.service.submit_store(lambda conn: conn.execute(touch, (now.isoformat(), digest)))  # fire and forget
    principal = Principal(user.username, user.role, app.service.view.state.branch_id, tuple(user.counters))
    return Staff(user=user, principal=principal, session_id=session_id, csrf=csrf_for(app, session_id))


async def provide_staff(request: Request[Any, Any, Any]) -> Staff:
    """Dependency: the signed-in staff member; otherwise the login page."""
    staff = current_staff(request)
    if staff is None:
        raise NotSignedIn
    return staff


async def check_csrf(request: Request[Any, Any, Any], staff: Staff, form: dict[str, Any] | None = None) -> None:
    """Refuse a state-changing request without the session's CSRF token (header or form field)."""
    sent = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD) or ""
    if not hmac.compare_digest(str(sent), staff.csrf):
        raise Refused("csrf", status=403)


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """A browser POST whose Origin (when sent) is this host: blocks cross-site login forms."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


StaffDep = NamedDependency[Staff]
