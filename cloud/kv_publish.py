"""Per-branch documents the hub keeps in a NATS KV bucket (key `<tenant>.<branch>`), the way configuration travels:
the appliance reads its own key. Used for today's bookings (`qms_bookings`) and HQ's open anomaly alerts
(`qms_alerts`).

A `KvPublisher` republishes a branch only when its document's content changed (its `generated_at` aside), on a
`nudge()` from whoever changed something and on a timer. Several hub replicas may publish the same content: the branch
keeps the newest revision, so no claim is needed. A hub started while NATS is down (or whose JetStream is not ready
when the link comes up) keeps trying: the bucket is made by the first pass that reaches JetStream, a failed pass is
retried after `RETRY_SECONDS` (doubling up to the interval, logged once per outage), and nothing counts as published
until NATS acknowledged it — so the branches get every change made meanwhile as soon as NATS answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from sqlalchemy.engine import Engine

from cloud.background import Background
from sync.relay import config_key

log = logging.getLogger("qms.cloud.kv")
RETRY_SECONDS = 1.0
Branch = tuple[str, str]
Documents = Callable[[Engine, datetime], dict[Branch, bytes]]


async def ensure_bucket(js: Any, bucket: str, *, replicas: int = 1) -> Any:
    """The KV bucket (direct get for the branches' reads; only the newest value matters), made if missing."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE, direct=True)
        )


def content_digest(raw: bytes) -> str:
    """What an encoded document says, without its `generated_at` (which changes every time)."""
    doc = msgspec.json.decode(raw)
    if isinstance(doc, dict):
        doc.pop("generated_at", None)
    return hashlib.sha256(msgspec.json.encode(doc)).hexdigest()


class KvPublisher(Background):
    """Publishes each branch's changed document to `bucket` every `interval` seconds and whenever `nudge()` is
    called; `documents(engine, now)` reads every branch's current document, encoded."""

    def __init__(
        self,
        engine: Engine,
        js: Any,
        *,
        bucket: str,
        documents: Documents,
        what: str,
        interval: float,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine, self.js, self.bucket, self.documents = engine, js, bucket, documents
        self.what, self.interval = what, interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.published: dict[Branch, str] = {}
        self._wake = asyncio.Event()
        self._bucket: Any = None
        self.task_name = f"qms-{what}-publisher"

    def nudge(self) -> None:
        """Publish soon (something changed)."""
        self._wake.set()

    async def publish_changed(self) -> int:
        """One pass: publish each branch whose content changed; returns how many were published."""
        if self._bucket is None:  # the first pass that reaches JetStream makes the bucket
            self._bucket = await ensure_bucket(self.js, self.bucket)
        docs = await asyncio.to_thread(self.documents, self.engine, self.clock())
        count = 0
        for (tenant, branch_id), raw in docs.items():
            digest = content_digest(raw)
            if self.published.get((tenant, branch_id)) == digest:
                continue
            await self.js.publish(f"$KV.{self.bucket}.{config_key(tenant, branch_id)}", raw)
            self.published[(tenant, branch_id)] = digest
            count += 1
        return count

    async def _run(self) -> None:
        retry = RETRY_SECONDS
        failing = False
        while True:
            self._wake.clear()
            wait = self.interval
            try:
                await self.publish_changed()
                if failing:
                    log.info("%s push works again", self.what)
                failing, retry = False, RETRY_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS, JetStream or the store not there yet: try again soon
                if not failing:
                    log.warning("%s push failed (retrying): %s: %s", self.what, type(exc).__name__, exc)
                failing, wait, retry = True, min(retry, self.interval), min(retry * 2, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
