"""The hub's schema as it was before migrations existed (created by `metadata.create_all`), keyed by `branch_id`.

A hub database without `alembic_version` runs this revision too: it creates only the tables that are missing (a hub
last run by an older version may lack the ones added later, which `create_all` used to add at start), keeps the ones
that exist as they are, and is then upgraded from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    """Whether the table is absent (a pre-migration hub keeps the tables it has)."""
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    """Create the pre-migration tables that are missing."""
    if _missing("branches"):
        op.create_table(
            "branches",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("tenant", sa.String(64), nullable=False),
            sa.Column("next_seq", sa.BigInteger, nullable=False),
            sa.Column("last_hash", sa.String(64), nullable=False),
            sa.Column("events", sa.BigInteger, nullable=False),
            sa.Column("duplicates", sa.BigInteger, nullable=False),
            sa.Column("last_event_at", sa.String(40)),
            sa.Column("last_received_at", sa.String(40)),
            sa.Column("config_version", sa.Integer),
            sa.Column("config_rejected_version", sa.Integer),
            sa.Column("config_rejected_reason", sa.Text),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("problem", sa.Text),
            sa.Column("updated_at", sa.String(40), nullable=False),
        )
    if _missing("events"):
        op.create_table(
            "events",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("event_id", sa.String(64), nullable=False),
            sa.Column("type", sa.String(40), nullable=False),
            sa.Column("occurred_at", sa.String(40), nullable=False),
            sa.Column("ticket_id", sa.String(64)),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("received_at", sa.String(40), nullable=False),
        )
        op.create_index("events_type", "events", ["type"])
    if _missing("parked_events"):
        op.create_table(
            "parked_events",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("received_at", sa.String(40), nullable=False),
        )
    if _missing("tickets"):
        op.create_table(
            "tickets",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("ticket_id", sa.String(64), primary_key=True),
            sa.Column("service_id", sa.String(64), nullable=False),
            sa.Column("ticket_number", sa.String(16), nullable=False),
            sa.Column("business_date", sa.String(10), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("updated_at", sa.String(40), nullable=False),
        )
        op.create_index("tickets_status", "tickets", ["branch_id", "status", "service_id"])
    if _missing("ticket_links"):
        op.create_table(
            "ticket_links",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("ticket_id", sa.String(64), primary_key=True),
            sa.Column("queue_order", sa.BigInteger, nullable=False),
            sa.Column("request_id", sa.String(128)),
            sa.Column("lang", sa.String(8)),
            sa.Column("counter_id", sa.String(64)),
        )
        op.create_index("ticket_links_request", "ticket_links", ["branch_id", "request_id"])
    if _missing("number_leases"):
        op.create_table(
            "number_leases",
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("lease_id", sa.String(64), primary_key=True),
            sa.Column("service_id", sa.String(64), nullable=False),
            sa.Column("first_seq", sa.Integer, nullable=False),
            sa.Column("last_seq", sa.Integer, nullable=False),
        )
    if _missing("config_versions"):
        op.create_table(
            "config_versions",
            sa.Column("tenant", sa.String(64), primary_key=True),
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("doc", sa.Text, nullable=False),
            sa.Column("kv_revision", sa.BigInteger),
            sa.Column("created_at", sa.String(40), nullable=False),
        )
    if _missing("branch_credentials"):
        op.create_table(
            "branch_credentials",
            sa.Column("tenant", sa.String(64), primary_key=True),
            sa.Column("branch_id", sa.String(64), primary_key=True),
            sa.Column("public_key", sa.String(64), nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
        )
    if _missing("hq_users"):
        op.create_table(
            "hq_users",
            sa.Column("username", sa.String(64), primary_key=True),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("tenants", sa.Text, nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
            sa.Column("updated_at", sa.String(40), nullable=False),
        )
