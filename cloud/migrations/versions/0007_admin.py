"""The HQ console's areas (issue 14): the hub audit log, branch profiles, enrolment codes, tenant settings
(approvals switch), configuration change requests, the device fleet and
central staff accounts."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_admin"
down_revision = "0006_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the admin area's tables."""
    op.create_table(
        "hub_audit",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("branch_id", sa.String(64)),
        sa.Column("target", sa.String(200)),
        sa.Column("source_ip", sa.String(64)),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("correlation_id", sa.String(128)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("hub_audit_scope", "hub_audit", ["tenant_id", "branch_id", "at"])
    op.create_table(
        "branch_profiles",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("hours", sa.Text, nullable=False),
        sa.Column("areas", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "enrolment_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("used_at", sa.String(40)),
    )
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("approvals", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("base_version", sa.Integer, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", sa.String(40)),
        sa.Column("distributed_version", sa.Integer),
    )
    op.create_index("change_requests_scope", "change_requests", ["tenant_id", "branch_id", "status"])
    op.create_table(
        "fleet_devices",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_seen", sa.String(40)),
        sa.Column("config_version", sa.Integer, nullable=False),
        sa.Column("applied_version", sa.Integer, nullable=False),
        sa.Column("reported_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "staff_accounts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("counters", sa.Text, nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    """Drop the admin area's tables."""
    op.drop_table("staff_accounts")
    op.drop_table("fleet_devices")
    op.drop_index("change_requests_scope", table_name="change_requests")
    for table in ("change_requests", "tenant_settings", "enrolment_codes", "branch_profiles"):
        op.drop_table(table)
    op.drop_index("hub_audit_scope", table_name="hub_audit")
    op.drop_table("hub_audit")
