"""Pushing each branch's open anomaly alerts to its floor: one document per branch in the `qms_alerts` KV bucket
(key `<tenant>.<branch>`, sync/hq_alerts.py), read by the appliance like its configuration.

A branch that ever had an alert gets a document; when its alerts clear, the document's list empties and the floor
stops showing them. The publisher republishes a branch only when the content changed, after every anomaly check
(`nudge`) and on a timer (a replica that starts republishes everything once). Several replicas may publish the same
content: the branch keeps the newest revision, so no claim is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from sqlalchemy.engine import Engine

from cloud.analytics.tables import alerts
from sync.hq_alerts import ALERTS_BUCKET, AlertsDocument, BranchAlert
from sync.relay import config_key

log = logging.getLogger("qms.cloud.analytics.alerts")
Branch = tuple[str, str]


async def ensure_alerts_bucket(js: Any, *, replicas: int = 1) -> Any:
    """The `qms_alerts` KV bucket (direct get for the branches' reads; only the newest value matters)."""
    try:
        return await js.key_value(ALERTS_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=ALERTS_BUCKET, history=1, replicas=replicas, storage=StorageType.FILE, direct=True)
        )


def documents(engine: Engine, now: datetime) -> dict[Branch, AlertsDocument]:
    """The document of every branch with an alert row (open or cleared): its open alerts."""
    found: dict[Branch, list[BranchAlert]] = {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(alerts).order_by(alerts.c.tenant_id, alerts.c.branch_id, alerts.c.service_id))
        for row in rows:
            listed = found.setdefault((row.tenant_id, row.branch_id), [])
            if row.state == "open" and row.opened_at:
                listed.append(BranchAlert(service_id=row.service_id, opened_at=datetime.fromisoformat(row.opened_at),
                                          p90_seconds=float(row.p90_seconds or 0.0),
                                          baseline_seconds=float(row.baseline_seconds or 0.0)))  # fmt: skip
    return {
        (tenant, branch): AlertsDocument(tenant_id=tenant, branch_id=branch, generated_at=now, alerts=listed)
        for (tenant, branch), listed in found.items()
    }


def content(document: AlertsDocument) -> bytes:
    """What a document says, without its `generated_at` (which changes every time)."""
    return msgspec.json.encode(document.alerts)


class AlertPublisher:
    """Publishes changed documents every `interval` seconds and whenever `nudge()` is called."""

    def __init__(
        self, engine: Engine, js: Any, *, interval: float = 60.0, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine, self.js, self.interval = engine, js, interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.published: dict[Branch, bytes] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        """Publish soon (an anomaly check ran)."""
        self._wake.set()

    async def publish_changed(self) -> int:
        """One pass: publish each branch whose open alerts changed; returns how many were published."""
        docs = await asyncio.to_thread(documents, self.engine, self.clock())
        count = 0
        for (tenant, branch), document in docs.items():
            said = content(document)
            if self.published.get((tenant, branch)) == said:
                continue
            await self.js.publish(f"$KV.{ALERTS_BUCKET}.{config_key(tenant, branch)}", msgspec.json.encode(document))
            self.published[(tenant, branch)] = said
            count += 1
        return count

    def start(self) -> None:
        """Run until `stop()`."""
        self._task = asyncio.create_task(self._run(), name="qms-alerts-publisher")

    async def stop(self) -> None:
        """Stop publishing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        retry = 1.0  # after a failed pass (JetStream not ready yet, the store away): 1 s, doubling to the interval
        bucket = False
        while True:
            wait = self.interval
            try:
                if not bucket:
                    await ensure_alerts_bucket(self.js)
                    bucket = True
                await self.publish_changed()
                retry = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS or the store down: the next pass tries again
                log.warning("alerts push failed: %s: %s", type(exc).__name__, exc)
                wait, retry = min(retry, self.interval), retry * 2
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
