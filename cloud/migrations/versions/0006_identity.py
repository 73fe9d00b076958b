"""Identity (issue 14): branch scope of accounts, console sessions, API tokens, per-tenant IdPs, SSO flows; the two
old roles become the new ones (hq_admin of every tenant -> platform_admin, of named tenants -> tenant_admin,
hq_viewer -> auditor)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_identity"
down_revision = "0005_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the identity tables and map the stored roles."""
    op.create_table(
        "hq_user_branches",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "hq_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("tenants", sa.Text, nullable=False),
        sa.Column("branches", sa.Text, nullable=True),
        sa.Column("auth_method", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("last_seen_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_index("ix_hq_sessions_username", "hq_sessions", ["username"])
    op.create_table(
        "hq_tokens",
        sa.Column("token_id", sa.String(16), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("last_used_at", sa.String(40), nullable=True),
        sa.Column("revoked_at", sa.String(40), nullable=True),
    )
    op.create_index("ix_hq_tokens_username", "hq_tokens", ["username"])
    op.create_table(
        "idp_configs",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(8), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "sso_flows",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("verifier", sa.String(128), nullable=False),
        sa.Column("next_path", sa.String(500), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    users = sa.table("hq_users", sa.column("role", sa.String), sa.column("tenants", sa.Text))
    op.execute(sa.update(users).where(users.c.role == "hq_admin", users.c.tenants == '["*"]')
               .values(role="platform_admin"))  # fmt: skip
    op.execute(sa.update(users).where(users.c.role == "hq_admin").values(role="tenant_admin"))
    op.execute(sa.update(users).where(users.c.role == "hq_viewer").values(role="auditor"))


def downgrade() -> None:
    """Map the roles back (a branch manager becomes a viewer of its tenant) and drop the identity tables."""
    users = sa.table("hq_users", sa.column("role", sa.String))
    op.execute(sa.update(users).where(users.c.role.in_(("platform_admin", "tenant_admin"))).values(role="hq_admin"))
    op.execute(sa.update(users).where(users.c.role.in_(("branch_manager", "auditor"))).values(role="hq_viewer"))
    for table in ("sso_flows", "idp_configs", "hq_tokens", "hq_sessions", "hq_user_branches"):
        op.drop_table(table)
