"""Analytics: a tenant's own anomaly alert recipients (issue 13), instead of its scheduled reports' addresses."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_alert_recipients"
down_revision = "0010_appointments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `alert_recipients` (JSON list of addresses; NULL = none set) to the tenant's analytics settings."""
    with op.batch_alter_table("analytics_tenant_settings") as batch:
        batch.add_column(sa.Column("alert_recipients", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("analytics_tenant_settings") as batch:
        batch.drop_column("alert_recipients")
