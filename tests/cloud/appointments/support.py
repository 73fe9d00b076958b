"""Shared set-up for the appointments tests: a branch profile as cloud/admin stores it, and a bookable service."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine

from cloud.admin.tables import branch_profiles
from cloud.appointments import booking
from cloud.store import transaction

HOURS = {d: [["08:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def add_branch(engine: Engine, tenant: str = "acme", branch_id: str = "jkt-01", zone: str = "Asia/Jakarta") -> None:
    """An active branch open 08:00-12:00 on weekdays, with a bookable service `cs` (30-minute slots, 2 places)."""
    with transaction(engine) as conn:
        conn.execute(
            branch_profiles.insert().values(
                tenant_id=tenant, branch_id=branch_id, name="KCP Kuningan", timezone=zone, address="",
                hours=json.dumps(HOURS), areas="[]", status="active", created_at="2026-01-01T00:00:00+00:00",
                updated_at="2026-01-01T00:00:00+00:00",
            )
        )  # fmt: skip
        booking.save_service(conn, tenant, branch_id, "cs", name="Customer service", slot_minutes=30, capacity=2)
