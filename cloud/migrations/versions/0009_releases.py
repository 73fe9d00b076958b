"""Fleet software updates (issue 17): signed releases, rollout groups, appliance acks."""

from __future__ import annotations

revision = "0009_releases"
down_revision = "0008_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
