"""Staff and device identities: argon2 password hashes, users table, expiring signed tokens, login back-off."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jwt
import msgspec
from argon2 import PasswordHasher

from edge.store.datadir import ensure_private
from sync.passwords import Passwords

Role = Literal["admin", "supervisor", "agent", "device"]
ROLES: tuple[Role, ...] = ("admin", "supervisor", "agent", "device")
STAFF_TOKEN_SECONDS = 12 * 3600
DEVICE_TOKEN_SECONDS = 7 * 24 * 3600
LOGIN_MAX_FAILURES = 5  # per username
LOGIN_MAX_FAILURES_PER_ADDRESS = 20  # per client address (a shared counter PC must not lock out its colleagues)
LOGIN_WINDOW_SECONDS = 15 * 60
THROTTLE_MAX_KEYS = 10_000

# RFC 9106 "second recommended" profile scaled for a Pi: 3 passes over 32 MiB.
_passwords = Passwords(PasswordHasher(time_cost=3, memory_cost=32 * 1024, parallelism=1))
hash_password = _passwords.hash
check_password = _passwords.check


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A staff member or device account of this branch."""

    username: str
    role: Role
    counters: list[str] = []
    active: bool = True
    token_epoch: int = 0  # bumped by the database on every credential change; tokens of an older epoch are refused


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    username: str
    role: Role
    branch_id: str
    counters: tuple[str, ...] = ()
    generation: int | None = None  # a paired device's pairing generation (re-pairing retires older tokens)
    epoch: int = 0  # the account's token epoch when the token was issued

    @property
    def privileged(self) -> bool:
        """Supervisors and admins act on any counter of the branch."""
        return self.role in ("admin", "supervisor")

    def may_use_counter(self, counter_id: str) -> bool:
        """Agents and devices only act for the counters assigned to them."""
        return self.privileged or counter_id in self.counters


def upsert_user(conn: sqlite3.Connection, username: str, password: str, role: Role, counters: list[str]) -> None:
    """Create or replace a user (run inside the writer's transaction)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    conn.execute(
        "INSERT INTO users (username, password_hash, role, counters, active, created_at) VALUES (?, ?, ?, ?, 1, ?)"
        " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,"
        " counters = excluded.counters, active = 1",
        (
            username,
            hash_password(password),
            role,
            msgspec.json.encode(counters).decode(),
            datetime.now(UTC).isoformat(),
        ),
    )


def find_user(conn: sqlite3.Connection, username: str) -> tuple[User, str] | None:
    """The user and their password hash."""
    row = conn.execute(
        "SELECT username, role, counters, active, password_hash, token_epoch FROM users WHERE username = ?", (username,)
    ).fetchone()
    if row is None:
        return None
    user = User(
        username=row[0], role=row[1], counters=msgspec.json.decode(row[2]), active=bool(row[3]), token_epoch=row[5]
    )
    return user, row[4]


def list_users(conn: sqlite3.Connection) -> list[User]:
    """Every user of the appliance."""
    rows = conn.execute("SELECT username, role, counters, active FROM users ORDER BY username").fetchall()
    return [User(username=r[0], role=r[1], counters=msgspec.json.decode(r[2]), active=bool(r[3])) for r in rows]


def load_secret(data_dir: Path) -> bytes:
    """The appliance's token-signing key, created once (mode 0600) in the data dir."""
    path = data_dir / "token.key"
    if not path.exists() or path.stat().st_size == 0:  # empty: a power cut hit an older version's create-then-write
        _create_secret(data_dir, path)
    return path.read_bytes()


def _create_secret(data_dir: Path, path: Path) -> None:
    """Write a new key whole (0600, synced) and link it into place: never an empty key, never replacing another
    process's fresh key."""
    ensure_private(data_dir)
    tmp = data_dir / f".qms-token.key.{os.getpid()}"  # the .qms- prefix keeps it out of backups
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        if path.stat().st_size == 0:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class TokenIssuer:
    """Issues and verifies HS256 tokens bound to this branch; every token expires."""

    secret: bytes

    def issue(
        self, user: User, branch_id: str, now: float | None = None, *, generation: int | None = None
    ) -> tuple[str, int]:
        """A token for the user and its lifetime in seconds (a paired device's carries its pairing generation)."""
        issued = int(now if now is not None else time.time())
        lifetime = DEVICE_TOKEN_SECONDS if user.role == "device" else STAFF_TOKEN_SECONDS
        claims = {
            "sub": user.username,
            "role": user.role,
            "branch": branch_id,
            "counters": list(user.counters),
            "iat": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_hex(8),
            "ep": user.token_epoch,
        }
        if generation is not None:
            claims["gen"] = generation
        return jwt.encode(claims, self.secret, algorithm="HS256"), lifetime

    def verify(self, token: str) -> Principal:
        """The principal of a valid, unexpired token; raises jwt.InvalidTokenError otherwise."""
        claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]})
        if claims["role"] not in ROLES:
            raise jwt.InvalidTokenError("unknown role")
        generation, epoch = claims.get("gen"), claims.get("ep", 0)
        return Principal(
            claims["sub"], claims["role"], claims.get("branch", ""), tuple(claims.get("counters", [])),
            generation if isinstance(generation, int) else None, epoch if isinstance(epoch, int) else -1,
        )  # fmt: skip


@dataclass
class LoginThrottle:
    """Back-off after repeated failed logins per username and per client address."""

    failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: Any = field(default_factory=threading.Lock, repr=False)  # Any: the web layer's signature models inspect it

    def retry_after(self, *keys: str, now: float | None = None) -> int:
        """Seconds the caller must wait (0: may try)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            recent = self._recent(key, now)
            if len(recent) >= _limit(key):
                wait = max(wait, recent[0] + LOGIN_WINDOW_SECONDS - now)
        return int(wait) + (1 if wait else 0)

    def failed(self, *keys: str, now: float | None = None) -> None:
        """Record a failed attempt."""
        now = time.monotonic() if now is None else now
        if len(self.failures) > THROTTLE_MAX_KEYS:  # random usernames must not grow memory without bound
            self.failures = {k: q for k, q in self.failures.items() if q and q[-1] >= now - LOGIN_WINDOW_SECONDS}
        for key in keys:
            self._recent(key, now).append(now)

    def attempt(self, *keys: str, now: float | None = None) -> Attempt:
        """Reserve one attempt on every key BEFORE the password is checked, atomically with the limit check.

        Concurrent wrong passwords cannot all slip through the check while the (slow) hash runs: each one is counted
        the moment it is let in. A refused attempt (`wait` > 0) reserves nothing; a success releases its reservation.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            wait = self.retry_after(*keys, now=now)
            if not wait:
                self.failed(*keys, now=now)
        return Attempt(self, keys, now, wait)

    def release(self, attempt: Attempt) -> None:
        """A success: the user's failures are forgotten; an address keeps its other attempts (one colleague's
        success must not reset an address that is guessing at other accounts)."""
        with self._lock:
            for key in attempt.keys:
                if key.startswith("user:"):
                    self.failures.pop(key, None)
                elif (recent := self.failures.get(key)) is not None and attempt.at in recent:
                    recent.remove(attempt.at)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self.failures.setdefault(key, deque(maxlen=_limit(key)))
        while recent and recent[0] < now - LOGIN_WINDOW_SECONDS:
            recent.popleft()
        return recent


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt let in (and counted) by the throttle, or refused with `wait` seconds to go."""

    throttle: LoginThrottle
    keys: tuple[str, ...]
    at: float
    wait: int

    def succeeded(self) -> None:
        """The credentials were right: release the reservation."""
        if not self.wait:
            self.throttle.release(self)


def _limit(key: str) -> int:
    """Failures allowed in the window for a throttle key (`user:…` or `ip:…`)."""
    return LOGIN_MAX_FAILURES_PER_ADDRESS if key.startswith("ip:") else LOGIN_MAX_FAILURES
