"""HQ console accounts: argon2id password hashes, roles, the tenants (and for branch managers the branches) each
account may see (`hq_users`, `hq_user_branches`); changing or disabling an account ends its console sessions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from cloud.identity.roles import LEGACY_ROLES, ROLES
from cloud.identity.tables import hq_sessions, hq_user_branches
from cloud.store import hq_users, transaction, utcnow_iso
from sync.passwords import Passwords
from sync.relay import check_token

ALL_TENANTS = "*"
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")  # no ':' (HTTP Basic splits on it), nothing to escape in logs

# argon2-cffi's defaults: RFC 9106's low-memory profile (3 passes over 64 MiB, 4 lanes), ~0.1 s on the hub.
_passwords = Passwords(PasswordHasher())
hash_password = _passwords.hash
check_password = _passwords.check


class AccountRefused(ValueError):
    """An account that cannot be stored as given (name, role, tenants, password)."""


@dataclass(frozen=True)
class HqUser:
    """An HQ console account, without its password hash."""

    username: str
    role: str
    tenants: tuple[str, ...]  # ("*",) = every tenant
    active: bool
    created_at: str
    updated_at: str
    branches: tuple[tuple[str, str], ...] = ()  # a branch manager's (tenant, branch) pairs; () = every branch

    @property
    def all_tenants(self) -> bool:
        """Whether the account sees every tenant's branches."""
        return ALL_TENANTS in self.tenants

    def as_dict(self) -> dict[str, object]:
        """JSON form (`qms-cloud users list --json`)."""
        return {**self.__dict__, "tenants": list(self.tenants), "branches": [f"{t}/{b}" for t, b in self.branches]}


class Scope(NamedTuple):
    """A valid account's role (the new name for a legacy one), tenants and branches."""

    role: str
    tenants: tuple[str, ...]
    branches: tuple[tuple[str, str], ...]


def check_account(username: str, role: str, tenants: list[str], branches: list[str] | None = None) -> Scope:
    """The role, tenants and branches (`tenant/branch`) to store for a valid account; raises AccountRefused with
    what is wrong. A legacy role is accepted under its new name (hq_viewer -> auditor, hq_admin -> tenant_admin,
    or platform_admin with '*')."""
    if not _USERNAME.match(username):
        raise AccountRefused(f"username {username!r}: 1-64 letters, digits, '.', '_', '@' or '-'")
    if role in LEGACY_ROLES:
        role = "platform_admin" if role == "hq_admin" and tenants == [ALL_TENANTS] else LEGACY_ROLES[role]
    if role not in ROLES:
        raise AccountRefused(f"role {role!r}: one of {', '.join(ROLES)}")
    if not tenants:
        raise AccountRefused("give at least one --tenant (platform_admin gives --tenant '*' for every tenant)")
    if ALL_TENANTS in tenants:
        if role != "platform_admin":
            raise AccountRefused("only platform_admin may see every tenant ('*')")
        if len(tenants) > 1:
            raise AccountRefused("'*' already means every tenant: give it alone")
    elif role == "platform_admin":
        raise AccountRefused("platform_admin sees every tenant: give --tenant '*'")
    else:
        for tenant in tenants:
            _token("tenant", tenant)
    pairs = tuple(dict.fromkeys(_branch_pair(b) for b in branches or []))
    if role == "branch_manager":
        if not pairs:
            raise AccountRefused("a branch_manager needs at least one --branch TENANT/BRANCH")
        if len(tenants) != 1 or any(t != tenants[0] for t, _ in pairs):
            raise AccountRefused("a branch_manager's branches all belong to its one --tenant")
    elif pairs:
        raise AccountRefused(f"only a branch_manager is limited to branches ({role} sees whole tenants)")
    return Scope(role, tuple(dict.fromkeys(tenants)), pairs)


def _token(kind: str, value: str) -> None:
    try:
        check_token(kind, value)
    except ValueError as exc:
        raise AccountRefused(str(exc)) from None


def _branch_pair(text: str) -> tuple[str, str]:
    tenant, sep, branch = text.partition("/")
    if not sep:
        raise AccountRefused(f"branch {text!r}: give it as TENANT/BRANCH")
    _token("tenant", tenant)
    _token("branch", branch)
    return tenant, branch


def check_new_password(password: str) -> None:
    """Refuse a password that is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountRefused(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


def upsert_user(
    engine: Engine, username: str, password: str, role: str, tenants: list[str], branches: list[str] | None = None
) -> bool:
    """Create the account, or update its password, role, tenants and branches and enable it again (its console
    sessions end: they carry the old scope); True when it was new."""
    scope = check_account(username, role, tenants, branches)
    check_new_password(password)
    values = {"password_hash": hash_password(password), "role": scope.role, "tenants": json.dumps(list(scope.tenants)),
              "active": True, "updated_at": utcnow_iso()}  # fmt: skip
    with transaction(engine) as conn:
        updated = conn.execute(sa.update(hq_users).where(hq_users.c.username == username).values(**values)).rowcount
        if not updated:
            conn.execute(sa.insert(hq_users).values(username=username, created_at=values["updated_at"], **values))
        conn.execute(sa.delete(hq_user_branches).where(hq_user_branches.c.username == username))
        if scope.branches:
            rows = [{"username": username, "tenant_id": t, "branch_id": b} for t, b in scope.branches]
            conn.execute(sa.insert(hq_user_branches), rows)
        conn.execute(sa.delete(hq_sessions).where(hq_sessions.c.username == username))
    return not updated


def disable_user(engine: Engine, username: str) -> bool:
    """Disable an account: its sessions end now, its logins and API tokens are refused; False when there is none."""
    with transaction(engine) as conn:
        result = conn.execute(
            sa.update(hq_users).where(hq_users.c.username == username).values(active=False, updated_at=utcnow_iso())
        )
        conn.execute(sa.delete(hq_sessions).where(hq_sessions.c.username == username))
    return bool(result.rowcount)


def _user(row: sa.Row[tuple[object, ...]], branches: list[tuple[str, str]]) -> HqUser:
    return HqUser(
        username=row.username,
        role=row.role,
        tenants=tuple(json.loads(row.tenants)),
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
        branches=tuple(sorted(branches)),
    )


def _branches_of(conn: sa.Connection, username: str | None = None) -> dict[str, list[tuple[str, str]]]:
    query = sa.select(hq_user_branches)
    if username is not None:
        query = query.where(hq_user_branches.c.username == username)
    found: dict[str, list[tuple[str, str]]] = {}
    for row in conn.execute(query):
        found.setdefault(row.username, []).append((row.tenant_id, row.branch_id))
    return found


def list_users(engine: Engine) -> list[HqUser]:
    """Every account, by name."""
    columns = [c for c in hq_users.c if c.name != "password_hash"]
    with engine.connect() as conn:
        branches = _branches_of(conn)
        rows = conn.execute(sa.select(*columns).order_by(hq_users.c.username)).all()
    return [_user(r, branches.get(r.username, [])) for r in rows]


def get_user(engine: Engine, username: str) -> HqUser | None:
    """One account (without its hash), None when there is none."""
    return login_record(engine, username)[1]


def login_record(engine: Engine, username: str) -> tuple[bool, HqUser | None, str | None]:
    """For one login: whether any account exists, and the named account with its hash (None, None when unknown)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(hq_users).where(hq_users.c.username == username)).first()
        if row is None:
            any_account = conn.execute(sa.select(hq_users.c.username).limit(1)).first() is not None
            return any_account, None, None
        branches = _branches_of(conn, username).get(username, [])
    return True, _user(row, branches), row.password_hash


def has_accounts(engine: Engine) -> bool:
    """Whether any HQ account exists (then only accounts open the console)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(hq_users.c.username).limit(1)).first() is not None
