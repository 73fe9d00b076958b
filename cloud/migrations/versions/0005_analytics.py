"""Analytics (issue 13): facts, rollups, KPI queries, exports, schedules, anomalies."""

from __future__ import annotations

revision = "0005_analytics"
down_revision = "0004_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
