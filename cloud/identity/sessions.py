"""Console sign-in sessions, stored server-side: the cookie holds a random id, the table only its SHA-256, so a
copy of the database opens no session, and ending a session (sign-out, account changed or disabled) is a delete.

A session ends after IDLE_MINUTES without a request or ABSOLUTE_HOURS after sign-in, whichever comes first; the
clock is passed in so tests can move it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.identity.tables import hq_sessions
from cloud.store import transaction

log = logging.getLogger("qms.cloud.sessions")

IDLE_MINUTES = 30.0
ABSOLUTE_HOURS = 12.0
TOUCH_SECONDS = 60.0  # last_seen_at is written at most this often (one UPDATE per request would be wasteful)
COOKIE = "qms_session"


@dataclass(frozen=True)
class SessionGrant:
    """Who a session belongs to, as stored at sign-in (an SSO user has no account row to read again)."""

    username: str
    role: str
    tenants: frozenset[str] | None
    branches: frozenset[tuple[str, str]] | None
    auth_method: str


IDLE_ENV, ABSOLUTE_ENV = "QMS_HUB_SESSION_IDLE_MINUTES", "QMS_HUB_SESSION_HOURS"
SWEEP_ENV, SWEEP_SECONDS = "QMS_HUB_SESSION_SWEEP_SECONDS", 300.0  # how often expired sessions are deleted; 0 = never


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions live: idle minutes and absolute hours."""

    idle: timedelta = timedelta(minutes=IDLE_MINUTES)
    absolute: timedelta = timedelta(hours=ABSOLUTE_HOURS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SessionPolicy:
        """The policy from QMS_HUB_SESSION_IDLE_MINUTES / QMS_HUB_SESSION_HOURS (a bad value fails at start-up)."""
        env = os.environ if env is None else env
        values = []
        for name, default in ((IDLE_ENV, IDLE_MINUTES), (ABSOLUTE_ENV, ABSOLUTE_HOURS)):
            try:
                value = float(env.get(name, default))
            except ValueError:
                raise ValueError(f"{name}: a number, not {env[name]!r}") from None
            if value <= 0:
                raise ValueError(f"{name}: must be above 0")
            values.append(value)
        return cls(timedelta(minutes=values[0]), timedelta(hours=values[1]))


def digest(raw: str) -> str:
    """The stored form of a session id or token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def csrf_token_of(raw: str) -> str:
    """The session's CSRF token: derived from the (HttpOnly) session id, so another site can neither read nor guess
    it, and a new session (sign-in) has a new one."""
    return hashlib.sha256(b"qms-csrf\0" + raw.encode()).hexdigest()


def start(engine: Engine, grant: SessionGrant, now: datetime, policy: SessionPolicy, address: str) -> str:
    """A new session for `grant`, audited (`console.sign_in`) in the same transaction; returns the cookie value
    (never stored)."""
    raw = secrets.token_urlsafe(32)
    tenants = ["*"] if grant.tenants is None else sorted(grant.tenants)
    branches = None if grant.branches is None else json.dumps([f"{t}/{b}" for t, b in sorted(grant.branches)])
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(hq_sessions).values(
                id_hash=digest(raw), username=grant.username, role=grant.role, tenants=json.dumps(tenants),
                branches=branches, auth_method=grant.auth_method, created_at=now.isoformat(),
                last_seen_at=now.isoformat(), expires_at=(now + policy.absolute).isoformat(), address=address[:64],
            )
        )  # fmt: skip
        record(conn, actor=grant.username, action="console.sign_in", tenant=_one(grant.tenants), source_ip=address,
               after={"role": grant.role, "method": grant.auth_method, "tenants": tenants}, at=now)  # fmt: skip
    return raw


def _one(tenants: frozenset[str] | None) -> str | None:
    """The tenant an audit entry is filed under: the account's one tenant, else none (several or all)."""
    return next(iter(tenants)) if tenants is not None and len(tenants) == 1 else None


def lookup(engine: Engine, raw: str, now: datetime, policy: SessionPolicy) -> SessionGrant | None:
    """The live session's grant (its idle clock restarted), None when unknown, idle too long or past its lifetime
    (such a row is deleted)."""
    key = digest(raw)
    with engine.connect() as conn:
        row = conn.execute(sa.select(hq_sessions).where(hq_sessions.c.id_hash == key)).first()
    if row is None:
        return None
    last_seen = datetime.fromisoformat(row.last_seen_at)
    if now >= datetime.fromisoformat(row.expires_at) or now - last_seen >= policy.idle:
        end(engine, raw)
        return None
    if (now - last_seen).total_seconds() >= TOUCH_SECONDS:
        with transaction(engine) as conn:
            touch = sa.update(hq_sessions).where(hq_sessions.c.id_hash == key)
            conn.execute(touch.values(last_seen_at=now.isoformat()))
    tenants = json.loads(row.tenants)
    branches = None if row.branches is None else json.loads(row.branches)
    return SessionGrant(
        username=row.username,
        role=row.role,
        tenants=None if tenants == ["*"] else frozenset(tenants),
        branches=None if branches is None else frozenset(_pair(b) for b in branches),
        auth_method=row.auth_method,
    )


def _pair(text: str) -> tuple[str, str]:
    tenant, _, branch = text.partition("/")
    return tenant, branch


def end(engine: Engine, raw: str, now: datetime | None = None, address: str | None = None) -> None:
    """End one session; with `now` it is a sign-out and audited (`console.sign_out`)."""
    with transaction(engine) as conn:
        row = conn.execute(sa.delete(hq_sessions).where(hq_sessions.c.id_hash == digest(raw)).returning(
            hq_sessions.c.username, hq_sessions.c.tenants)).first()  # fmt: skip
        if row is not None and now is not None:
            tenants = json.loads(row.tenants)
            record(conn, actor=row.username, action="console.sign_out", source_ip=address, at=now,
                   tenant=tenants[0] if len(tenants) == 1 and tenants != ["*"] else None)  # fmt: skip


def sweep(engine: Engine, now: datetime, policy: SessionPolicy) -> int:
    """Delete every expired or idle session; the number deleted."""
    idle_before = (now - policy.idle).isoformat()
    with transaction(engine) as conn:
        result = conn.execute(
            sa.delete(hq_sessions).where(
                sa.or_(hq_sessions.c.expires_at <= now.isoformat(), hq_sessions.c.last_seen_at <= idle_before)
            )
        )
    return int(result.rowcount or 0)


def alive(engine: Engine, raw: str, now: datetime, policy: SessionPolicy) -> bool:
    """Whether the session is still live, without restarting its idle clock (a live page's background stream asks
    this: watching must not keep an unattended session open)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(hq_sessions.c.last_seen_at, hq_sessions.c.expires_at).where(hq_sessions.c.id_hash == digest(raw))
        ).first()
    if row is None:
        return False
    return now < datetime.fromisoformat(row.expires_at) and now - datetime.fromisoformat(row.last_seen_at) < policy.idle


def sweep_seconds(env: Mapping[str, str] | None = None) -> float:
    """QMS_HUB_SESSION_SWEEP_SECONDS (default 300; 0 = no sweep); a bad value fails at start-up."""
    text = (os.environ if env is None else env).get(SWEEP_ENV, str(SWEEP_SECONDS))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{SWEEP_ENV}: a number, not {text!r}") from None
    if value < 0:
        raise ValueError(f"{SWEEP_ENV}: 0 or more")
    return value


async def sweep_every(engine: Engine, clock: Callable[[], datetime], policy: SessionPolicy, seconds: float) -> None:
    """Run `sweep` now and every `seconds` until cancelled. Every replica may run it: the DELETE of expired rows
    claims nothing and is the same whoever runs it. A failed round (store away) is logged and the next one tried."""
    while True:
        try:
            swept = await asyncio.to_thread(sweep, engine, clock(), policy)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("expired console sessions not swept: %s", type(exc).__name__)
        else:
            if swept:
                log.info("swept %d expired console sessions", swept)
        await asyncio.sleep(seconds)
