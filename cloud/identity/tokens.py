"""API tokens for automation: `Authorization: Bearer qms_<id>_<secret>`, per user (optionally narrowed to one of
its tenants), limited to a set of permissions, expiring, stored as a SHA-256 digest and shown once.

A token acts as its owner with at most the owner's current role: disabling the owner or lowering the role takes
effect on the token's next call. The owner is an HQ account, or an SSO user of one tenant (`Owner.sso_tenant`; see
`sso_accounts`: their role is mapped again from their last sign-in's claims with the IdP's current settings)."""

from __future__ import annotations

import hmac
import json
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.hq_users import HqUser, get_user
from cloud.identity import sso_accounts
from cloud.identity.roles import PERMISSIONS, role_allows
from cloud.identity.sessions import digest
from cloud.identity.tables import hq_tokens
from cloud.store import transaction

PREFIX = "qms_"
MAX_DAYS = 366
MAX_NAME = 100


class Owner(NamedTuple):
    """Whose tokens: an HQ account (`sso_tenant` None) or the SSO user `username` of the tenant `sso_tenant`."""

    username: str
    sso_tenant: str | None = None


class TokenRefused(ValueError):
    """A token that cannot be issued as asked (unknown permission, beyond the owner's role, bad expiry); `field`
    names the request's field at fault when it is one (`name`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def hidden_characters(text: str) -> list[str]:
    """The control and format characters in `text` (Unicode Cc, Cf, and the line/paragraph separators U+2028/9),
    as `U+XXXX`: a token's name is shown in lists and terminals, where these would hide or reorder what is seen."""
    found = (c for c in text if unicodedata.category(c) in ("Cc", "Cf") or c in "\u2028\u2029")
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in found))


def shown_name(text: str) -> str:
    """`text` with any control or format character written as an escape (names stored before they were refused)."""
    return "".join(f"\\u{ord(c):04x}" if hidden_characters(c) else c for c in text)


@dataclass(frozen=True)
class TokenInfo:
    """An issued token as listed (never its secret)."""

    token_id: str
    username: str
    name: str
    tenant_id: str | None
    scopes: tuple[str, ...]
    created_at: str
    expires_at: str
    last_used_at: str | None
    revoked: bool
    sso_tenant: str | None = None  # owned by this tenant's SSO user `username`; None = an HQ account

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {**self.__dict__, "scopes": list(self.scopes)}


def issue(
    engine: Engine,
    user: HqUser,
    name: str,
    scopes: list[str],
    days: int,
    now: datetime,
    tenant: str | None = None,
    actor: str | None = None,
    sso_tenant: str | None = None,
) -> tuple[str, TokenInfo]:
    """A new token for `user` (the secret, returned once, and what is stored about it), audited (`token.issue`, by
    `actor`, default the user); `sso_tenant` when `user` is that tenant's SSO user (`sso_accounts.SsoAccount`)."""
    unknown = sorted(set(scopes) - set(PERMISSIONS))
    if unknown:
        raise TokenRefused(f"unknown permission(s): {', '.join(unknown)}")
    if not scopes:
        raise TokenRefused("give at least one permission (--scope)")
    beyond = sorted(p for p in scopes if not role_allows(user.role, p))
    if beyond:
        raise TokenRefused(f"{user.username} ({user.role}) may not grant: {', '.join(beyond)}")
    if not 1 <= days <= MAX_DAYS:
        raise TokenRefused(f"expiry: 1 to {MAX_DAYS} days")
    if not name.strip() or len(name) > MAX_NAME:
        raise TokenRefused(f"name: 1-{MAX_NAME} characters", "name")
    if hidden := hidden_characters(name):
        raise TokenRefused(f"name: no control or format characters ({', '.join(hidden[:5])})", "name")
    if tenant is not None and not user.all_tenants and tenant not in user.tenants:
        raise TokenRefused(f"{user.username} does not see tenant {tenant!r}")
    if not user.active:
        raise TokenRefused(f"{user.username} is disabled")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    raw = f"{PREFIX}{token_id}_{secret}"
    info = TokenInfo(token_id, user.username, name.strip(), tenant, tuple(sorted(set(scopes))), now.isoformat(),
                     (now + timedelta(days=days)).isoformat(), None, False, sso_tenant)  # fmt: skip
    after: dict[str, object] = {"owner": user.username, "name": info.name, "scopes": list(info.scopes),
                                "expires_at": info.expires_at}  # fmt: skip
    if sso_tenant is not None:
        after["owner_sso_tenant"] = sso_tenant
    with transaction(engine) as conn:
        conn.execute(sa.insert(hq_tokens).values(
            token_id=token_id, token_hash=digest(raw), username=user.username, name=info.name, tenant_id=tenant,
            scopes=json.dumps(list(info.scopes)), created_at=info.created_at, expires_at=info.expires_at,
            sso_tenant=sso_tenant,
        ))  # fmt: skip
        record(conn, actor=actor or user.username, action="token.issue", tenant=tenant or sso_tenant,
               target=token_id, at=now, after=after)  # fmt: skip
    return raw, info


def verify(engine: Engine, raw: str, now: datetime) -> tuple[HqUser, TokenInfo] | None:
    """The owner and token for a presented bearer token; None when malformed, unknown, revoked, expired, or its
    owner is gone or disabled (an SSO user also when the IdP configuration that admitted them is gone or no longer
    maps their groups to a role)."""
    if not raw.startswith(PREFIX):
        return None
    token_id, sep, _ = raw[len(PREFIX) :].partition("_")
    if not sep:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(hq_tokens).where(hq_tokens.c.token_id == token_id)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest(raw)):
        return None
    if row.revoked_at is not None or now >= datetime.fromisoformat(row.expires_at):
        return None
    user = _owner(engine, Owner(row.username, row.sso_tenant))
    if user is None or not user.active:
        return None
    if row.last_used_at is None or now - datetime.fromisoformat(row.last_used_at) >= timedelta(minutes=1):
        with transaction(engine) as conn:
            used = sa.update(hq_tokens).where(hq_tokens.c.token_id == token_id)
            conn.execute(used.values(last_used_at=now.isoformat()))
    return user, _info(row)


def _owner(engine: Engine, owner: Owner) -> HqUser | None:
    """The owner as currently known: the HQ account, or the SSO user with their role mapped now."""
    if owner.sso_tenant is None:
        return get_user(engine, owner.username)
    account = sso_accounts.get(engine, owner.sso_tenant, owner.username)
    return None if account is None else account.as_user()


def owner_of(engine: Engine, raw: str) -> Owner | None:
    """Whose token this presented bearer token is (no checks beyond its id: call after `verify`)."""
    token_id = raw[len(PREFIX) :].partition("_")[0] if raw.startswith(PREFIX) else ""
    with engine.connect() as conn:
        row = conn.execute(sa.select(hq_tokens.c.username, hq_tokens.c.sso_tenant).where(
            hq_tokens.c.token_id == token_id)).first()  # fmt: skip
    return None if row is None else Owner(row.username, row.sso_tenant)


def _info(row: sa.Row[tuple[object, ...]]) -> TokenInfo:
    return TokenInfo(row.token_id, row.username, row.name, row.tenant_id, tuple(json.loads(row.scopes)),
                     row.created_at, row.expires_at, row.last_used_at, row.revoked_at is not None,
                     row.sso_tenant)  # fmt: skip


def _of(owner: Owner) -> sa.ColumnElement[bool]:
    sso_tenant = hq_tokens.c.sso_tenant
    kind = sso_tenant.is_(None) if owner.sso_tenant is None else sso_tenant == owner.sso_tenant
    return sa.and_(hq_tokens.c.username == owner.username, kind)


def list_tokens(engine: Engine, username: str | None = None, owner: Owner | None = None) -> list[TokenInfo]:
    """Issued tokens (one owner's; every token named `username`, HQ account or SSO user; or all), newest first."""
    query = sa.select(hq_tokens).order_by(hq_tokens.c.created_at.desc())
    if username is not None:
        query = query.where(hq_tokens.c.username == username)
    if owner is not None:
        query = query.where(_of(owner))
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(query)]


def revoke(engine: Engine, token_id: str, now: datetime, owner: Owner | None = None, actor: str | None = None) -> bool:
    """Revoke a token (only `owner`'s when given), audited (`token.revoke`, filed under the token's tenant, else its
    SSO owner's); False when there is no such live token."""
    query = sa.update(hq_tokens).where(hq_tokens.c.token_id == token_id, hq_tokens.c.revoked_at.is_(None))
    if owner is not None:
        query = query.where(_of(owner))
    returning = query.values(revoked_at=now.isoformat()).returning(hq_tokens.c.tenant_id, hq_tokens.c.sso_tenant)
    with transaction(engine) as conn:
        row = conn.execute(returning).first()
        if row is not None:
            record(conn, actor=actor or (owner.username if owner else "cli"), action="token.revoke",
                   tenant=row.tenant_id or row.sso_tenant, target=token_id, at=now)  # fmt: skip
    return row is not None


__all__ = ["Owner", "TokenInfo", "TokenRefused", "hidden_characters", "issue", "list_tokens", "owner_of", "revoke",
           "shown_name", "verify"]  # fmt: skip
