"""Customer notifications (issue 12): templates, policy, outbox, dispatcher, providers."""

from __future__ import annotations

revision = "0004_notify"
down_revision = "0003_liveness_config_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
