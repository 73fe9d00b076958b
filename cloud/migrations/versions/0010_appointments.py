"""Appointments (issue 15): booking policy, calendar entries, bookable services, slots, bookings, tenant keys."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_appointments"
down_revision = "0009_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the appointments area's tables."""
    op.create_table(
        "appt_settings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("region", sa.String(32)),
        sa.Column("checkin_before_minutes", sa.Integer, nullable=False),
        sa.Column("checkin_after_minutes", sa.Integer, nullable=False),
        sa.Column("late_policy", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "appt_calendar",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "appt_services",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("slot_minutes", sa.Integer, nullable=False),
        sa.Column("capacity", sa.Integer),
        sa.Column("counters", sa.Integer, nullable=False),
        sa.Column("mean_service_minutes", sa.Float, nullable=False),
        sa.Column("quota_pct", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "appt_slots",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("starts_at", sa.String(40), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("booked", sa.Integer, nullable=False),
    )
    op.create_table(
        "appt_bookings",
        sa.Column("booking_id", sa.String(16), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.String(40), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(32)),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("checked_in_at", sa.String(40)),
        sa.Column("ticket_id", sa.String(64)),
        sa.Column("confirmed_at", sa.String(40)),
        sa.Column("reminded_at", sa.String(40)),
    )
    op.create_table(
        "appt_keys",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("private_key", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("appt_bookings_day", "appt_bookings", ["tenant_id", "branch_id", "day"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("appt_bookings_day", table_name="appt_bookings")
    op.drop_table("appt_keys")
    op.drop_table("appt_bookings")
    op.drop_table("appt_slots")
    op.drop_table("appt_services")
    op.drop_table("appt_calendar")
    op.drop_table("appt_settings")
