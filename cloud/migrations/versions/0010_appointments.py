"""Appointments (issue 15): calendar, slots, bookings, signed check-in QR."""

from __future__ import annotations

revision = "0010_appointments"
down_revision = "0009_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
