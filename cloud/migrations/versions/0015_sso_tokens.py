"""SSO users can hold API tokens: `sso_accounts` (the SSO users a tenant's IdP signed in, their last claims, disabled
or not) and the owner of an API token may be one of them (`hq_tokens.sso_tenant`; user names as long as an IdP's)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_sso_tokens"
down_revision = "0014_parked_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `sso_accounts`; give `hq_tokens` its `sso_tenant` and 255-character user names."""
    op.create_table(
        "sso_accounts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("claims", sa.Text, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("first_seen_at", sa.String(40), nullable=False),
        sa.Column("last_sign_in_at", sa.String(40), nullable=False),
        sa.Column("disabled_at", sa.String(40), nullable=True),
    )
    with op.batch_alter_table("hq_tokens") as batch:
        batch.alter_column("username", existing_type=sa.String(64), type_=sa.String(255), existing_nullable=False)
        batch.add_column(sa.Column("sso_tenant", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop SSO users' tokens (their owners cannot be told from HQ accounts without `sso_tenant`) and `sso_accounts`."""
    tokens = sa.table("hq_tokens", sa.column("sso_tenant", sa.String))
    op.execute(sa.delete(tokens).where(tokens.c.sso_tenant.is_not(None)))
    with op.batch_alter_table("hq_tokens") as batch:
        batch.drop_column("sso_tenant")
        batch.alter_column("username", existing_type=sa.String(255), type_=sa.String(64), existing_nullable=False)
    op.drop_table("sso_accounts")
