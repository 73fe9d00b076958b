"""Per-tenant single sign-on: the IdP configuration store (settings readable, the client secret write-only), the
sign-ins under way (state, nonce, PKCE verifier; single use, ten minutes), and the mapping of an IdP's claims or
attributes to a role and branches of that tenant."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.identity.oidc import SsoRefused
from cloud.identity.sessions import SessionGrant, digest
from cloud.identity.tables import idp_configs, sso_flows
from cloud.store import transaction
from sync.relay import check_token

log = logging.getLogger("qms.cloud.auth")
PROTOCOLS = ("oidc", "saml")
FLOW_MINUTES = 10
# What an IdP may grant: never platform_admin (a tenant's IdP speaks for that tenant only). Strongest first.
GRANTABLE = ("tenant_admin", "branch_manager", "auditor")


class IdpSettings(msgspec.Struct, forbid_unknown_fields=True):
    """A tenant's IdP (`PUT /api/v1/tenants/{tenant}/sso/{protocol}`): OIDC issuer/client id or SAML IdP metadata,
    and how its claims (OIDC) or attributes (SAML) map to roles and branches."""

    roles: dict[str, str]  # IdP group/role value -> our role (tenant_admin, branch_manager, auditor)
    issuer: str = ""  # OIDC
    client_id: str = ""  # OIDC
    scopes: str = "openid email profile"
    idp_metadata: str = ""  # SAML: the IdP's metadata XML (its signing certificate, SSO endpoint)
    role_claim: str = "groups"
    branch_claim: str = "branches"  # branch ids (of this tenant) for a branch_manager
    username_claim: str = "email"
    staff_claim: str = "preferred_username"  # names the branch staff account at the appliance (staff sign-in)
    display_name: str = ""  # what the appliance's button says ("Sign in with <display_name>")
    client_secret: str | None = None  # OIDC, write-only: stored apart, never answered


@dataclass(frozen=True)
class Idp:
    """A stored IdP configuration."""

    tenant: str
    protocol: str
    settings: IdpSettings
    secret: str = field(repr=False, default="")

    def public(self) -> dict[str, Any]:
        """What the API shows: the settings without the secret, and whether one is set."""
        shown = msgspec.to_builtins(self.settings)
        shown.pop("client_secret", None)
        return {"tenant": self.tenant, "protocol": self.protocol, **shown, "client_secret_set": bool(self.secret)}


def check_settings(protocol: str, settings: IdpSettings) -> None:
    """Refuse a configuration that cannot work or would grant too much (raises SsoRefused)."""
    if protocol not in PROTOCOLS:
        raise SsoRefused(f"protocol: one of {', '.join(PROTOCOLS)}")
    if protocol == "oidc" and not (settings.issuer.startswith(("https://", "http://")) and settings.client_id):
        raise SsoRefused("OIDC needs issuer (an http(s) URL) and client_id")
    if protocol == "saml" and "EntityDescriptor" not in settings.idp_metadata:
        raise SsoRefused("SAML needs idp_metadata (the IdP's metadata XML)")
    if not settings.roles:
        raise SsoRefused("roles: map at least one IdP group to a role")
    wrong = sorted({r for r in settings.roles.values() if r not in GRANTABLE})
    if wrong:
        raise SsoRefused(f"an IdP may grant only {', '.join(GRANTABLE)} (not {', '.join(wrong)})")


def save(engine: Engine, tenant: str, protocol: str, settings: IdpSettings, now: datetime, actor: str = "cli") -> Idp:
    """Store a tenant's IdP, audited (`sso.configure`, the secret never in the entry); a secret given replaces the
    stored one, an absent one keeps it."""
    check_token("tenant", tenant)
    check_settings(protocol, settings)
    secret, stored = settings.client_secret, msgspec.structs.replace(settings, client_secret=None)
    values: dict[str, Any] = {"settings": msgspec.json.encode(stored).decode(), "enabled": True,
                              "updated_at": now.isoformat()}  # fmt: skip
    if secret is not None:
        values["secret"] = secret
    key = sa.and_(idp_configs.c.tenant_id == tenant, idp_configs.c.protocol == protocol)
    with transaction(engine) as conn:
        if not conn.execute(sa.update(idp_configs).where(key).values(**values)).rowcount:
            conn.execute(sa.insert(idp_configs).values(tenant_id=tenant, protocol=protocol, **values))
        record(conn, actor=actor, action="sso.configure", tenant=tenant, target=protocol, at=now,
               after={**msgspec.to_builtins(stored), "client_secret_changed": secret is not None})  # fmt: skip
    found = load(engine, tenant, protocol)
    assert found is not None  # just written
    return found


def load(engine: Engine, tenant: str, protocol: str | None = None) -> Idp | None:
    """The tenant's IdP (the given protocol, else OIDC before SAML), None when none is configured."""
    query = sa.select(idp_configs).where(idp_configs.c.tenant_id == tenant, idp_configs.c.enabled.is_(True))
    if protocol is not None:
        query = query.where(idp_configs.c.protocol == protocol)
    with engine.connect() as conn:
        rows = sorted(conn.execute(query).all(), key=lambda r: PROTOCOLS.index(r.protocol))
    if not rows:
        return None
    row = rows[0]
    settings = msgspec.json.decode(row.settings, type=IdpSettings)
    return Idp(row.tenant_id, row.protocol, settings, row.secret or "")


def remove(engine: Engine, tenant: str, protocol: str, now: datetime, actor: str = "cli") -> bool:
    """Delete a tenant's IdP, audited (`sso.remove`); False when there was none."""
    with transaction(engine) as conn:
        key = sa.and_(idp_configs.c.tenant_id == tenant, idp_configs.c.protocol == protocol)
        done = bool(conn.execute(sa.delete(idp_configs).where(key)).rowcount)
        if done:
            record(conn, actor=actor, action="sso.remove", tenant=tenant, target=protocol, at=now)
    return done


@dataclass(frozen=True)
class Flow:
    """A sign-in under way."""

    tenant: str
    protocol: str
    nonce: str
    verifier: str
    next_path: str


def begin(engine: Engine, tenant: str, protocol: str, next_path: str, now: datetime) -> tuple[str, Flow]:
    """A new flow: the state to send through the IdP, and what we keep of it (the state itself only hashed)."""
    state = secrets.token_urlsafe(32)
    flow = Flow(tenant, protocol, secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)
    with transaction(engine) as conn:
        conn.execute(
            sa.delete(sso_flows).where(sso_flows.c.created_at < (now - timedelta(minutes=FLOW_MINUTES)).isoformat())
        )
        conn.execute(sa.insert(sso_flows).values(state_hash=digest(state), tenant_id=tenant, protocol=protocol,
                                                 nonce=flow.nonce, verifier=flow.verifier, next_path=next_path,
                                                 created_at=now.isoformat()))  # fmt: skip
    return state, flow


def finish(engine: Engine, state: str, protocol: str, now: datetime) -> Flow:
    """Take the flow of `state` (single use: deleted here); raises SsoRefused when unknown, used or stale."""
    with transaction(engine) as conn:
        row = conn.execute(sa.select(sso_flows).where(sso_flows.c.state_hash == digest(state))).first()
        if row is not None:
            conn.execute(sa.delete(sso_flows).where(sso_flows.c.state_hash == row.state_hash))
    if row is None or row.protocol != protocol:
        raise SsoRefused("unknown or already used sign-in (start again)")
    if now - datetime.fromisoformat(row.created_at) > timedelta(minutes=FLOW_MINUTES):
        raise SsoRefused("the sign-in took too long (start again)")
    return Flow(row.tenant_id, row.protocol, row.nonce, row.verifier, row.next_path)


def _values(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw]
    return []


def branch_ids(raw: object) -> list[str]:
    """The branch ids a branch claim names: a list (an OIDC array, a SAML attribute's values), each item or a single
    string split on commas and whitespace (`"bdg-dago, jkt-sudirman"`), empty pieces dropped."""
    return [b for value in _values(raw) for b in re.split(r"[,\s]+", value) if b]


Branches = frozenset[tuple[str, str]] | None  # a branch manager's (tenant, branch) pairs; None = every branch


def role_of(tenant: str, settings: IdpSettings, claims: dict[str, Any]) -> tuple[str, Branches]:
    """The strongest role the claims' groups map to and, for a branch manager, its branches (None = every branch);
    raises SsoRefused when no group maps to a role or a branch manager names no branch."""
    groups = _values(claims.get(settings.role_claim))
    mapped = {settings.roles[g] for g in groups if g in settings.roles}
    role = next((r for r in GRANTABLE if r in mapped), None)
    if role is None:
        log.info("SSO user of %s without a mapped role; %s=%r", tenant, settings.role_claim, groups[:20])
        raise SsoRefused("your account has no role in this console (ask your administrator)")
    if role != "branch_manager":
        return role, None
    ids = branch_ids(claims.get(settings.branch_claim))
    if not ids:
        raise SsoRefused("a branch manager needs branches (claim missing)")
    return role, frozenset((tenant, b) for b in ids)


def username_of(settings: IdpSettings, claims: dict[str, Any]) -> str:
    """The user an IdP's claims name (the username claim, else `sub`; at most 200 characters), "" when none."""
    name = next(iter(_values(claims.get(settings.username_claim))), "") or str(claims.get("sub", ""))
    return name[:200]


def kept_claims(settings: IdpSettings, claims: dict[str, Any]) -> dict[str, list[str]]:
    """What is remembered of a sign-in's claims to map the role again later: the role and branch claims only."""
    return {name: _values(claims.get(name))[:100] for name in (settings.role_claim, settings.branch_claim)}


def grant_for(tenant: str, settings: IdpSettings, claims: dict[str, Any], protocol: str) -> SessionGrant:
    """The session an IdP's claims/attributes give: the strongest mapped role, a branch manager's branches;
    raises SsoRefused when no group maps to a role, a branch manager names no branch, or no user is named."""
    role, branches = role_of(tenant, settings, claims)
    name = username_of(settings, claims)
    if not name:
        raise SsoRefused("the identity provider named no user")
    return SessionGrant(name, role, frozenset({tenant}), branches, protocol)


__all__ = ["Flow", "Idp", "IdpSettings", "SsoRefused", "begin", "branch_ids", "finish", "grant_for", "kept_claims",
           "load", "remove", "role_of", "save", "username_of"]  # fmt: skip
