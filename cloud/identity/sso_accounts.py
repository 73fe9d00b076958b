"""The SSO users a tenant's IdP has signed in to the console, kept "just in time" (`sso_accounts`): an SSO user has no
password account, but the hub remembers who signed in, what their role and branch claims said last time and which IdP
configuration admitted them, so that such a user can own API tokens and an admin can disable them at the hub.

The role of an SSO user as currently known is mapped again from the claims of their last sign-in with the IdP's
current settings: a lower role at the next sign-in, a group taken out of the role map, or the IdP configuration that
admitted them removed narrows or stops their tokens on the tokens' next call. The hub cannot see a user removed at the
IdP (no SCIM): disabling them here is how they are shut out before their tokens expire."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.hq_users import HqUser
from cloud.identity import sso
from cloud.identity.oidc import SsoRefused
from cloud.identity.tables import hq_sessions, idp_configs, sso_accounts
from cloud.store import branches, transaction

log = logging.getLogger("qms.cloud.auth")
SSO_METHODS = ("oidc", "saml")


@dataclass(frozen=True)
class SsoAccount:
    """One SSO user of a tenant as the hub knows them."""

    tenant: str
    username: str
    protocol: str
    role: str  # as mapped now from the last sign-in's claims ("" = none: the IdP is gone or no group maps)
    branches: tuple[str, ...]  # a branch manager's branch ids, else ()
    first_seen_at: str
    last_sign_in_at: str
    disabled_at: str | None

    @property
    def active(self) -> bool:
        """Whether the user may act (sign in, use tokens): not disabled, and a role maps."""
        return self.disabled_at is None and bool(self.role)

    def as_user(self) -> HqUser:
        """The user as a token owner: its one tenant, its current role and branches."""
        return HqUser(self.username, self.role, (self.tenant,), self.active, self.first_seen_at, self.last_sign_in_at,
                      tuple((self.tenant, b) for b in self.branches))  # fmt: skip

    def as_dict(self) -> dict[str, object]:
        """JSON form (`GET /api/v1/tenants/{tenant}/sso/users`)."""
        return {**self.__dict__, "branches": list(self.branches), "active": self.active}


def _key(tenant: str, username: str) -> sa.ColumnElement[bool]:
    return sa.and_(sso_accounts.c.tenant_id == tenant, sso_accounts.c.username == username)


def signed_in(engine: Engine, idp: sso.Idp, claims: dict[str, Any], now: datetime) -> sa.Row[Any] | None:
    """Remember a verified sign-in's user and claims (a new row, or the claims, role and IdP of a known one); the
    row as it was before, None for a new user. A user the IdP names without a mapped role is remembered only when
    already known (with role ""), so that their tokens stop; a disabled user's row is left as it is."""
    name = sso.username_of(idp.settings, claims)
    if not name:
        return None
    try:
        role, _ = sso.role_of(idp.tenant, idp.settings, claims)
    except SsoRefused:
        role = ""
    values = {"protocol": idp.protocol, "claims": json.dumps(sso.kept_claims(idp.settings, claims)), "role": role,
              "last_sign_in_at": now.isoformat()}  # fmt: skip
    with transaction(engine) as conn:
        before = conn.execute(sa.select(sso_accounts).where(_key(idp.tenant, name))).first()
        if before is not None and before.disabled_at is None:
            conn.execute(sa.update(sso_accounts).where(_key(idp.tenant, name)).values(**values))
    if before is None and role:
        try:
            with transaction(engine) as conn:
                conn.execute(sa.insert(sso_accounts).values(tenant_id=idp.tenant, username=name,
                                                            first_seen_at=now.isoformat(), **values))  # fmt: skip
        except sa.exc.IntegrityError:  # the same user's first sign-in twice at once: the other one's row stands
            log.info("SSO user %s of %s recorded by a concurrent sign-in", name, idp.tenant)
    return before


def _account(row: sa.Row[Any], idp: sso.Idp | None) -> SsoAccount:
    """The stored user with the role its last claims map to under the IdP's current settings."""
    role, branches = "", tuple[str, ...]()  # none: the IdP that admitted them is gone, or maps none of their groups
    if idp is not None and idp.protocol == row.protocol:
        try:
            mapped, pairs = sso.role_of(row.tenant_id, idp.settings, json.loads(row.claims))
        except SsoRefused:
            pass
        else:
            role, branches = mapped, tuple(sorted(b for _, b in pairs or ()))
    return SsoAccount(row.tenant_id, row.username, row.protocol, role, branches, row.first_seen_at,
                      row.last_sign_in_at, row.disabled_at)  # fmt: skip


def get(engine: Engine, tenant: str, username: str) -> SsoAccount | None:
    """One SSO user with their role as currently known; None when the hub never signed them in."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sso_accounts).where(_key(tenant, username))).first()
    return None if row is None else _account(row, sso.load(engine, tenant, row.protocol))


def list_accounts(engine: Engine, tenant: str) -> list[SsoAccount]:
    """A tenant's SSO users, by name."""
    query = sa.select(sso_accounts).where(sso_accounts.c.tenant_id == tenant).order_by(sso_accounts.c.username)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    idps = {p: sso.load(engine, tenant, p) for p in SSO_METHODS}
    return [_account(r, idps.get(r.protocol)) for r in rows]


def tenant_known(engine: Engine, tenant: str) -> bool:
    """Whether the hub knows `tenant`: a branch of it, an IdP configured for it, or an SSO user of it."""
    queries = [sa.select(branches.c.tenant_id).where(branches.c.tenant_id == tenant).limit(1),
               sa.select(idp_configs.c.tenant_id).where(idp_configs.c.tenant_id == tenant).limit(1),
               sa.select(sso_accounts.c.tenant_id).where(sso_accounts.c.tenant_id == tenant).limit(1)]  # fmt: skip
    with engine.connect() as conn:
        return any(conn.execute(q).first() is not None for q in queries)


def set_disabled(
    engine: Engine, tenant: str, username: str, disabled: bool, now: datetime, actor: str
) -> SsoAccount | None:
    """Disable an SSO user (their console sessions end now; sign-ins and their API tokens are refused) or enable
    them again, audited (`sso_user.disable` / `sso_user.enable`); None when the hub does not know them."""
    with transaction(engine) as conn:
        found = conn.execute(sa.select(sso_accounts.c.disabled_at).where(_key(tenant, username))).first()
        if found is None:
            return None
        if (found.disabled_at is not None) != disabled:
            at = now.isoformat() if disabled else None
            conn.execute(sa.update(sso_accounts).where(_key(tenant, username)).values(disabled_at=at))
            record(conn, actor=actor, action="sso_user.disable" if disabled else "sso_user.enable", tenant=tenant,
                   target=username, at=now)  # fmt: skip
        if disabled:
            conn.execute(sa.delete(hq_sessions).where(
                hq_sessions.c.username == username, hq_sessions.c.auth_method.in_(SSO_METHODS),
                hq_sessions.c.tenants == json.dumps([tenant]),
            ))  # fmt: skip
    return get(engine, tenant, username)


__all__ = ["SSO_METHODS", "SsoAccount", "get", "list_accounts", "set_disabled", "signed_in", "tenant_known"]
