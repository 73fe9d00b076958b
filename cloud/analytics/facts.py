"""Ticket facts and rollups at the hub: applied events → one fact row per ticket, in the consumer's transaction
(issue 13)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection


def on_applied(conn: Connection, tenant: str, branch_id: str, applied: Sequence[Any]) -> None:
    """Called by `cloud.apply` for every applied batch of one branch, inside its transaction (events in seq order;
    typed `sync.contract` events, or `cloud.apply.UnknownEvent` for types this hub does not know)."""
