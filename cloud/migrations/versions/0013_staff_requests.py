"""Staff-account changes go through approvals too (issue 14, US-ADMIN-006): change requests get a `kind`
(`config`, the existing rows, or `staff`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_staff_requests"
down_revision = "0012_appt_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `change_requests.kind` (existing requests are configuration changes)."""
    with op.batch_alter_table("change_requests") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="config"))


def downgrade() -> None:
    """Drop `change_requests.kind`."""
    with op.batch_alter_table("change_requests") as batch:
        batch.drop_column("kind")
