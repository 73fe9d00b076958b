"""Customer notifications (issue 12): tenant policy, provider settings, templates, ticket contacts (purged after a
retention period), the outbox (one row per tenant, branch, ticket, trigger and channel) and its send attempts."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_notify"
down_revision = "0003b_index_order"
branch_labels = None
depends_on = None

TABLES = ("notify_attempts", "notify_outbox", "notify_contacts", "notify_templates", "notify_providers",
          "notify_settings")  # fmt: skip


def upgrade() -> None:
    """Create the notify tables."""
    op.create_table(
        "notify_settings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "notify_providers",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "notify_templates",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("trigger", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("lang", sa.String(8), primary_key=True),
        sa.Column("subject", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("wa_template", sa.String(128)),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "notify_contacts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("phone", sa.String(255)),
        sa.Column("email", sa.String(512)),
        sa.Column("opt_in", sa.Boolean),
        sa.Column("lang", sa.String(8)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("purge_after", sa.String(40), nullable=False),
    )
    op.create_index("notify_contacts_purge", "notify_contacts", ["purge_after"])
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("vars", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(40)),
        sa.Column("lease_until", sa.String(40)),
        sa.Column("provider", sa.String(32)),
        sa.Column("provider_message_id", sa.String(255)),
        sa.Column("reason", sa.Text),
        sa.Column("code", sa.String(64)),
        sa.Column("fallback_of", sa.BigInteger),
        sa.Column("correlation_id", sa.String(128)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.String(40)),
        sa.Column("delivered_at", sa.String(40)),
        sa.UniqueConstraint("tenant_id", "branch_id", "ticket_id", "trigger", "channel", name="notify_outbox_key"),
    )
    op.create_index("notify_outbox_due", "notify_outbox", ["status", "next_attempt_at"])
    op.create_index("notify_outbox_provider_msg", "notify_outbox", ["provider", "provider_message_id"])
    op.create_index("notify_outbox_log", "notify_outbox", ["tenant_id", "created_at"])
    op.create_table(
        "notify_attempts",
        sa.Column("outbox_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40)),
        sa.Column("provider", sa.String(32)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("code", sa.String(64)),
        sa.Column("reason", sa.Text),
    )

    _create_push_tables()


def downgrade() -> None:
    """Drop the notify tables (their indexes go with them)."""
    for table in (*PUSH_TABLES, *TABLES):
        op.drop_table(table)


# --- web push (US-NOTIF-008, brief N2): the subscriptions per ticket -------------------------------------------
PUSH_TABLES = ("notify_push_subscriptions",)


def _create_push_tables() -> None:
    """The web push table (`cloud.notify.tables.push_subscriptions`)."""
    op.create_table(
        "notify_push_subscriptions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("endpoint_id", sa.String(64), primary_key=True),
        sa.Column("subscription", sa.Text, nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("notify_push_subscriptions_endpoint", "notify_push_subscriptions", ["tenant_id", "endpoint_id"])
