"""Check-ins coming back from the branch: a `ticket.created` whose customer reference names a booking
(`booking:<id>`, set by the kiosk's check-in) marks the booking checked in, in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from cloud.appointments.booking import mark_checked_in
from sync.contract import TicketCreated

PREFIX = "booking:"


def on_applied(conn: Connection, tenant: str, branch_id: str, applied: Sequence[Any]) -> None:
    """Called by `cloud.apply` for every applied batch of one branch (events in seq order)."""
    for event in applied:
        if isinstance(event, TicketCreated) and event.ticket_id and (event.customer_ref or "").startswith(PREFIX):
            booking_id = (event.customer_ref or "")[len(PREFIX) :]
            mark_checked_in(conn, tenant, branch_id, booking_id, event.ticket_id, event.occurred_at.isoformat())
