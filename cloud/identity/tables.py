"""The identity area's tables, on the hub's one `metadata` (created by migration `0006_identity`).

Secrets are never stored as given: session ids and API tokens as SHA-256 digests (both are 256-bit random, so a
plain digest suffices), an IdP's client secret only written, never read back to a page or an API answer."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata

__all__ = ["hq_sessions", "hq_tokens", "hq_user_branches", "idp_configs", "metadata", "sso_accounts", "sso_flows"]

# The branches a branch manager / regional manager account may see (its tenant is in hq_users.tenants).
hq_user_branches = sa.Table(
    "hq_user_branches",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
)

# Console sign-in sessions (cookie `qms_session`); the principal is kept as signed in (an SSO user has no account
# row), and changing or disabling an account deletes its sessions.
hq_sessions = sa.Table(
    "hq_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 hex of the cookie value
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("tenants", sa.Text, nullable=False),  # JSON list; ["*"] = every tenant
    sa.Column("branches", sa.Text, nullable=True),  # JSON list of "tenant/branch"; NULL = every branch
    sa.Column("auth_method", sa.String(16), nullable=False),  # session | oidc | saml
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("last_seen_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),  # absolute lifetime
    sa.Column("address", sa.String(64), nullable=False),
)

# API tokens for automation: `qms_<token_id>_<secret>`, shown once; permissions = scopes ∩ the owner's role. The
# owner is an HQ account (`sso_tenant` NULL) or a tenant's SSO user (`sso_accounts` row of (sso_tenant, username)).
hq_tokens = sa.Table(
    "hq_tokens",
    metadata,
    sa.Column("token_id", sa.String(16), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("sso_tenant", sa.String(64), nullable=True),  # set: owned by that tenant's SSO user `username`
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=True),  # narrows the owner's tenants; NULL = all of them
    sa.Column("scopes", sa.Text, nullable=False),  # JSON list of permissions
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("last_used_at", sa.String(40), nullable=True),
    sa.Column("revoked_at", sa.String(40), nullable=True),
)

# Per-tenant identity providers: protocol oidc | saml; `settings` JSON (issuer, client id, metadata, mapping);
# `secret` (the OIDC client secret) is write-only.
idp_configs = sa.Table(
    "idp_configs",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(8), primary_key=True),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# An SSO sign-in under way: the OIDC state (hashed) with its nonce and PKCE verifier, or the SAML request id.
sso_flows = sa.Table(
    "sso_flows",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("protocol", sa.String(8), nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("verifier", sa.String(128), nullable=False),
    sa.Column("next_path", sa.String(500), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

# The SSO users a tenant's IdP has signed in (written at each console sign-in, "just in time"): what their role and
# branch claims said last time (the role is mapped again from them with the IdP's current settings whenever one of
# their API tokens is used), which IdP admitted them, and whether an admin disabled them at the hub.
sso_accounts = sa.Table(
    "sso_accounts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("protocol", sa.String(8), nullable=False),  # the IdP configuration of the last sign-in: oidc | saml
    sa.Column("claims", sa.Text, nullable=False),  # JSON {claim: [values]}: the role and branch claims as last seen
    sa.Column("role", sa.String(32), nullable=False),  # the role of the last sign-in ("" = none mapped)
    sa.Column("first_seen_at", sa.String(40), nullable=False),
    sa.Column("last_sign_in_at", sa.String(40), nullable=False),
    sa.Column("disabled_at", sa.String(40), nullable=True),
)
