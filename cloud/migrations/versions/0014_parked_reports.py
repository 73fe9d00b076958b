"""Early delivery reports kept in the store (issue 12): a provider's report that arrives before the send it reports on
is recorded waits in `notify_parked_reports` (shared by hub replicas, kept across restarts) instead of one process's
memory."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_parked_reports"
down_revision = "0013_staff_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `notify_parked_reports` (keyed by the report: a retried callback parks nothing twice)."""
    op.create_table(
        "notify_parked_reports",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("provider_message_id", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("code", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("received_at", sa.String(40), nullable=False),
    )
    op.create_index("notify_parked_reports_age", "notify_parked_reports", ["received_at"])


def downgrade() -> None:
    """Drop `notify_parked_reports` (its index goes with it)."""
    op.drop_table("notify_parked_reports")
