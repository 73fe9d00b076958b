"""A moved booking tells the customer: booking messages get a `round` (the booking's count of moves when the message
was owed, in the outbox key, so a move owes its "moved" message and the reminder again) and `delivered_at` (the
provider's delivery report); bookings get `round`, `moved_at` and `rescheduled_at`. Existing rows are round 0; a
delivered row's `delivered_at` is its last update (the report that delivered it)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_appt_rounds"
down_revision = "0015_sso_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the rounds and `delivered_at`; the outbox key gains `round`."""
    with op.batch_alter_table("appt_bookings") as batch:
        batch.add_column(sa.Column("round", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("moved_at", sa.String(40), nullable=True))
        batch.add_column(sa.Column("rescheduled_at", sa.String(40), nullable=True))
    with op.batch_alter_table("appt_messages") as batch:
        batch.add_column(sa.Column("round", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("delivered_at", sa.String(40), nullable=True))
        batch.drop_constraint("appt_messages_key", type_="unique")
        batch.create_unique_constraint("appt_messages_key", ["tenant_id", "booking_id", "kind", "channel", "round"])
    messages = sa.table("appt_messages", sa.column("status", sa.String), sa.column("updated_at", sa.String),
                        sa.column("delivered_at", sa.String))  # fmt: skip
    op.execute(messages.update().where(messages.c.status == "delivered").values(delivered_at=messages.c.updated_at))


def downgrade() -> None:
    """Drop the messages of later rounds (the old key admits one per kind and channel), then the columns."""
    messages = sa.table("appt_messages", sa.column("id", sa.BigInteger), sa.column("round", sa.Integer))
    attempts = sa.table("appt_message_attempts", sa.column("message_id", sa.BigInteger))
    later = sa.select(messages.c.id).where(messages.c.round > 0)
    op.execute(sa.delete(attempts).where(attempts.c.message_id.in_(later)))
    op.execute(sa.delete(messages).where(messages.c.round > 0))
    with op.batch_alter_table("appt_messages") as batch:
        batch.drop_constraint("appt_messages_key", type_="unique")
        batch.create_unique_constraint("appt_messages_key", ["tenant_id", "booking_id", "kind", "channel"])
        batch.drop_column("delivered_at")
        batch.drop_column("round")
    with op.batch_alter_table("appt_bookings") as batch:
        batch.drop_column("rescheduled_at")
        batch.drop_column("moved_at")
        batch.drop_column("round")
