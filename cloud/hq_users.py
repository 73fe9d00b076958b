"""HQ console accounts: argon2id password hashes, roles, the tenants each account may see (`hq_users`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, cast

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from cloud.store import hq_users, transaction, utcnow_iso
from sync.passwords import Passwords
from sync.relay import check_token

Role = Literal["hq_admin", "hq_viewer"]
ROLES: tuple[Role, ...] = ("hq_admin", "hq_viewer")
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
    role: Role
    tenants: tuple[str, ...]  # ("*",) = every tenant
    active: bool
    created_at: str
    updated_at: str

    @property
    def all_tenants(self) -> bool:
        """Whether the account sees every tenant's branches."""
        return ALL_TENANTS in self.tenants

    def as_dict(self) -> dict[str, object]:
        """JSON form (`qms-cloud users list --json`)."""
        return {**self.__dict__, "tenants": list(self.tenants)}


def check_account(username: str, role: str, tenants: list[str]) -> tuple[str, ...]:
    """The tenants to store for a valid name, role and tenant list; raises AccountRefused with what is wrong."""
    if not _USERNAME.match(username):
        raise AccountRefused(f"username {username!r}: 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise AccountRefused(f"role {role!r}: one of {', '.join(ROLES)}")
    if not tenants:
        raise AccountRefused("give at least one --tenant (hq_admin may give --tenant '*' for every tenant)")
    if ALL_TENANTS in tenants:
        if role != "hq_admin":
            raise AccountRefused("only hq_admin may see every tenant ('*')")
        if len(tenants) > 1:
            raise AccountRefused("'*' already means every tenant: give it alone")
    else:
        for tenant in tenants:
            try:
                check_token("tenant", tenant)
            except ValueError as exc:
                raise AccountRefused(str(exc)) from None
    return tuple(dict.fromkeys(tenants))


def check_new_password(password: str) -> None:
    """Refuse a password that is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountRefused(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


def upsert_user(engine: Engine, username: str, password: str, role: str, tenants: list[str]) -> bool:
    """Create the account, or update its password, role and tenants and enable it again; True when it was new."""
    scope = check_account(username, role, tenants)
    check_new_password(password)
    values = {"password_hash": hash_password(password), "role": role, "tenants": json.dumps(list(scope)),
              "active": True, "updated_at": utcnow_iso()}  # fmt: skip
    with transaction(engine) as conn:
        updated = conn.execute(sa.update(hq_users).where(hq_users.c.username == username).values(**values)).rowcount
        if not updated:
            conn.execute(sa.insert(hq_users).values(username=username, created_at=values["updated_at"], **values))
    return not updated


def disable_user(engine: Engine, username: str) -> bool:
    """Disable an account (its logins are refused from the next request on); False when there is none."""
    with transaction(engine) as conn:
        result = conn.execute(
            sa.update(hq_users).where(hq_users.c.username == username).values(active=False, updated_at=utcnow_iso())
        )
    return bool(result.rowcount)


def _user(row: sa.Row[tuple[object, ...]]) -> HqUser:
    return HqUser(
        username=row.username,
        role=cast("Role", row.role),
        tenants=tuple(json.loads(row.tenants)),
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_users(engine: Engine) -> list[HqUser]:
    """Every account, by name."""
    columns = [c for c in hq_users.c if c.name != "password_hash"]
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(*columns).order_by(hq_users.c.username))]


def login_record(engine: Engine, username: str) -> tuple[bool, HqUser | None, str | None]:
    """For one login: whether any account exists, and the named account with its hash (None, None when unknown)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(hq_users).where(hq_users.c.username == username)).first()
        if row is None:
            any_account = conn.execute(sa.select(hq_users.c.username).limit(1)).first() is not None
            return any_account, None, None
    return True, _user(row), row.password_hash


def has_accounts(engine: Engine) -> bool:
    """Whether any HQ account exists (then only accounts open the console)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(hq_users.c.username).limit(1)).first() is not None
