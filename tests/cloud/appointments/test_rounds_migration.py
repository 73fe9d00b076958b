"""Migration 0016 (booking message rounds, `delivered_at`) on SQLite and PostgreSQL, from 0014 and from 0015 with rows:
the existing bookings and messages are kept as round 0, a delivered message gets its last update as `delivered_at`,
the outbox key then admits the same kind and channel once per round, and the downgrade drops only later rounds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from cloud.appointments.tables import appt_bookings as bookings
from cloud.appointments.tables import appt_messages as messages
from cloud.store import _alembic, create_store_engine, head_revision, schema_revision, upgrade_schema

BOOKED = "2027-03-01T01:00:00+00:00"
DELIVERED = "2027-03-01T01:05:00+00:00"


def _message(kind: str, status: str, round_: int | None = None) -> dict[str, object]:
    row: dict[str, object] = {"tenant_id": "acme", "branch_id": "jkt-01", "booking_id": "A" * 16, "kind": kind,
                              "channel": "email", "status": status, "attempts": 1, "created_at": BOOKED,
                              "updated_at": DELIVERED if status == "delivered" else BOOKED}  # fmt: skip
    if round_ is not None:
        row["round"] = round_
    return row


@pytest.mark.parametrize("start", ["0014_parked_reports", "0015_sso_tokens"])
def test_rows_of_before_rounds_are_round_zero_and_the_key_takes_the_round(store_url: str, start: str) -> None:
    engine = create_store_engine(store_url, upgrade=False)
    upgrade_schema(engine, start)
    with engine.begin() as conn:
        conn.execute(sa.insert(bookings).values(
            booking_id="A" * 16, tenant_id="acme", branch_id="jkt-01", service_id="cs",
            starts_at="2027-03-03T02:00:00+00:00", day="2027-03-03", status="booked", name="Siti", lang="id",
            created_by="public", created_at=BOOKED, updated_at=BOOKED, confirmed_at=BOOKED))  # fmt: skip
        conn.execute(sa.insert(messages), [_message("confirm", "delivered"), _message("remind", "sent")])
    upgrade_schema(engine)
    assert schema_revision(engine) == head_revision()
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT kind, round, status, delivered_at FROM appt_messages ORDER BY id")).all()
        moved = conn.execute(sa.text("SELECT round, moved_at, rescheduled_at, confirmed_at FROM appt_bookings")).one()
    assert [tuple(r) for r in kept] == [("confirm", 0, "delivered", DELIVERED), ("remind", 0, "sent", None)]
    assert tuple(moved) == (0, None, None, BOOKED)
    with engine.begin() as conn:  # the next round's reminder is a new row; the same round's is not
        conn.execute(sa.insert(messages).values(_message("remind", "pending", 1)))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(messages).values(_message("remind", "pending", 1)))
    with engine.begin() as conn:
        command.downgrade(_alembic(conn), "0015_sso_tokens")
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT kind, status FROM appt_messages ORDER BY id")).all()
    assert [tuple(r) for r in left] == [("confirm", "delivered"), ("remind", "sent")]
    upgrade_schema(engine)  # and up again
    assert schema_revision(engine) == head_revision()
    engine.dispose()
