"""Appointments (issue 15): the booking messages' outbox and its attempt log (confirmation and reminder with retries,
dead letters and WhatsApp delivery instead of one direct e-mail)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_appt_messages"
down_revision = "0011_alert_recipients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `appt_messages` and `appt_message_attempts`."""
    op.create_table(
        "appt_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(40)),
        sa.Column("lease_until", sa.String(40)),
        sa.Column("provider", sa.String(32)),
        sa.Column("provider_message_id", sa.String(255)),
        sa.Column("code", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("fallback_of", sa.BigInteger),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.String(40)),
        sa.UniqueConstraint("tenant_id", "booking_id", "kind", "channel", name="appt_messages_key"),
    )
    op.create_index("appt_messages_due", "appt_messages", ["status", "next_attempt_at"])
    op.create_index("appt_messages_booking", "appt_messages", ["tenant_id", "booking_id"])
    op.create_table(
        "appt_message_attempts",
        sa.Column("message_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40)),
        sa.Column("provider", sa.String(32)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("code", sa.String(64)),
        sa.Column("reason", sa.Text),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("appt_message_attempts")
    op.drop_index("appt_messages_booking", table_name="appt_messages")
    op.drop_index("appt_messages_due", table_name="appt_messages")
    op.drop_table("appt_messages")
