"""Platform operations at the hub (issue 16): metrics, rate limits, backups received, drills."""

from __future__ import annotations

revision = "0008_ops"
down_revision = "0007_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
