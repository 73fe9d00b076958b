"""Fleet software updates (issue 17): signed releases, rollouts per branch (canary, then the rest), reports."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_releases"
down_revision = "0008_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the releases area's tables."""
    op.create_table(
        "releases",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("bundle_dir", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "release_rollouts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("wave", sa.String(16), nullable=False),
        sa.Column("published_at", sa.String(40), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "release_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("running", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("reported_at", sa.String(40), nullable=False),
    )
    op.create_index("release_reports_branch", "release_reports", ["tenant_id", "branch_id", "id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("release_reports_branch", table_name="release_reports")
    op.drop_table("release_reports")
    op.drop_table("release_rollouts")
    op.drop_table("releases")
