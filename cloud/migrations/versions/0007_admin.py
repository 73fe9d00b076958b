"""The HQ console's areas (issue 14): branches, configuration, audit, approvals, device fleet, supervisor."""

from __future__ import annotations

revision = "0007_admin"
down_revision = "0006_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
