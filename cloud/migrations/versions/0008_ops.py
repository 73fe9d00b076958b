"""Platform operations at the hub (issue 16): a parked event keeps its contact key until it is applied.

A sealed `ticket.created` arrives with its contact key in a message header (cloud.ops.pii). When it has to wait in
`parked_events` for a predecessor (several consumers, a gap), the message is acknowledged and its header is gone: the
key is kept beside the parked copy, and deleted with it when the event is applied.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_ops"
down_revision = "0007_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `parked_events.contact_key`."""
    with op.batch_alter_table("parked_events") as batch:
        batch.add_column(sa.Column("contact_key", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop `parked_events.contact_key`."""
    with op.batch_alter_table("parked_events") as batch:
        batch.drop_column("contact_key")
