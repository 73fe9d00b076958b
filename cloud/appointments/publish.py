"""Pushing each branch's bookings of today and tomorrow to the `qms_bookings` KV bucket (key `<tenant>.<branch>`),
the way configuration travels (cloud/config_dist.py): the appliance polls its key and checks people in offline.

The publisher republishes a branch when its document's content changed (a booking, a cancellation, a new day) —
on a nudge from the booking routes and on a timer that also rolls the days over. Several hub replicas may publish
the same content: the branch just keeps the newest revision, so no claim is needed.

A hub started while NATS is down keeps trying and pushes every booking made meanwhile as soon as NATS answers
(cloud/kv_publish.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.tables import appt_services
from cloud.kv_publish import KvPublisher, ensure_bucket
from sync.appointments import BOOKINGS_BUCKET


async def ensure_bookings_bucket(js: Any, *, replicas: int = 1) -> Any:
    """The `qms_bookings` KV bucket, made if missing."""
    return await ensure_bucket(js, BOOKINGS_BUCKET, replicas=replicas)


def _branches(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(appt_services.c.tenant_id, appt_services.c.branch_id)
            .where(appt_services.c.active.is_(True))
            .distinct()
        ).all()
    return [(r.tenant_id, r.branch_id) for r in rows]


def documents(engine: Engine, now: datetime) -> dict[tuple[str, str], bytes]:
    """Every booking branch's current document, encoded."""
    found: dict[tuple[str, str], bytes] = {}
    for tenant, branch_id in _branches(engine):
        with engine.begin() as conn:
            branch = booking.load_branch(conn, tenant, branch_id)
            if branch is None:
                continue
            found[(tenant, branch_id)] = msgspec.json.encode(booking.bookings_document(conn, branch, now))
    return found


class Publisher(KvPublisher):
    """Publishes changed documents every `interval` seconds and whenever `nudge()` is called (a booking changed)."""

    def __init__(
        self, engine: Engine, js: Any, *, interval: float = 30.0, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(engine, js, bucket=BOOKINGS_BUCKET, documents=documents, what="bookings",
                         interval=interval, clock=clock)  # fmt: skip
