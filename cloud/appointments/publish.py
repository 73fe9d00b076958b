"""Pushing each branch's bookings of today and tomorrow to the `qms_bookings` KV bucket (key `<tenant>.<branch>`),
the way configuration travels (cloud/config_dist.py): the appliance polls its key and checks people in offline.

The publisher republishes a branch when its document's content changed (a booking, a cancellation, a new day) —
on a nudge from the booking routes and on a timer that also rolls the days over. Several hub replicas may publish
the same content: the branch just keeps the newest revision, so no claim is needed.

A hub started while NATS is down (or whose JetStream is not ready yet when the link comes up) keeps trying: the
bucket is made by the first pass that reaches JetStream, a failed pass is retried after `RETRY_SECONDS` (doubling up
to the interval), and nothing counts as published until NATS acknowledged it — so the branches get every booking
made meanwhile as soon as NATS answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.tables import appt_services
from sync.appointments import BOOKINGS_BUCKET
from sync.relay import config_key

log = logging.getLogger("qms.cloud.appointments")
RETRY_SECONDS = 1.0


async def ensure_bookings_bucket(js: Any, *, replicas: int = 1) -> Any:
    """The `qms_bookings` KV bucket (direct get for the branches' reads; only the newest value matters)."""
    try:
        return await js.key_value(BOOKINGS_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=BOOKINGS_BUCKET, history=1, replicas=replicas, storage=StorageType.FILE, direct=True)
        )


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


def _content(raw: bytes) -> str:
    """The document's digest without its `generated_at` (which changes every time)."""
    doc = msgspec.json.decode(raw)
    doc.pop("generated_at", None)
    return hashlib.sha256(msgspec.json.encode(doc)).hexdigest()


class Publisher:
    """Publishes changed documents every `interval` seconds and whenever `nudge()` is called."""

    def __init__(
        self, engine: Engine, js: Any, *, interval: float = 30.0, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine = engine
        self.js = js
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.published: dict[tuple[str, str], str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._bucket: Any = None

    def nudge(self) -> None:
        """Publish soon (a booking changed)."""
        self._wake.set()

    async def publish_changed(self) -> int:
        """One pass: publish each branch whose content changed; returns how many were published."""
        if self._bucket is None:  # the first pass that reaches JetStream makes the bucket
            self._bucket = await ensure_bookings_bucket(self.js)
        docs = await asyncio.to_thread(documents, self.engine, self.clock())
        count = 0
        for (tenant, branch_id), raw in docs.items():
            digest = _content(raw)
            if self.published.get((tenant, branch_id)) == digest:
                continue
            await self.js.publish(f"$KV.{BOOKINGS_BUCKET}.{config_key(tenant, branch_id)}", raw)
            self.published[(tenant, branch_id)] = digest
            count += 1
        return count

    def start(self) -> None:
        """Run until `stop()`."""
        self._task = asyncio.create_task(self._run(), name="qms-bookings-publisher")

    async def stop(self) -> None:
        """Stop publishing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        retry = RETRY_SECONDS
        failing = False
        while True:
            self._wake.clear()
            wait = self.interval
            try:
                await self.publish_changed()
                if failing:
                    log.info("bookings push works again")
                failing, retry = False, RETRY_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS, JetStream or the store not there yet: try again soon
                if not failing:
                    log.warning("bookings push failed (retrying): %s: %s", type(exc).__name__, exc)
                failing, wait, retry = True, retry, min(retry * 2, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
