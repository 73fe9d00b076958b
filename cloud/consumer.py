"""The cloud's JetStream side: stream and KV bucket setup, and the durable pull consumer that applies events.

Several consumers (tasks in one process, or several processes) share one durable pull consumer: JetStream hands each
message to one of them; the store's per-branch tracking row (locked while applying) keeps the result exactly once
and in order, parking whatever arrives ahead of its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from sqlalchemy.engine import Engine

from cloud.apply import ApplyResult, Incoming, apply_batch
from sync.relay import CONFIG_BUCKET, STREAM, SUBJECT_PREFIX

log = logging.getLogger("qms.cloud.consumer")

DURABLE = "qms-cloud"
DUPLICATE_WINDOW_SECONDS = 3600.0  # JetStream de-dup by Nats-Msg-Id; the store de-dups beyond it
MAX_AGE_SECONDS = 30 * 86400.0  # the cloud store is the record; the stream is a 30-day buffer in front of it


async def ensure_stream(js: Any, *, replicas: int = 1) -> None:
    """Create `QMS_EVENTS` on `qms.evt.>` when missing (file storage, one-hour de-dup window); an existing
    stream (e.g. an R3 one made by the cluster's operator) is left as it is."""
    config = StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
        description="Branch event logs (qms.evt.<tenant>.<branch>), one message per event",
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_config_bucket(js: Any, *, replicas: int = 1) -> Any:
    """The `qms_config` KV bucket (history of 10 versions per branch, direct get for the edges' reads)."""
    try:
        return await js.key_value(CONFIG_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=CONFIG_BUCKET, history=10, replicas=replicas, storage=StorageType.FILE, direct=True)
        )


@dataclass
class ConsumerStats:
    """Counters of one process's consumers (for the console and logs)."""

    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    refused: int = 0
    failures: int = 0
    last_error: str | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, result: ApplyResult) -> None:
        """Fold in one batch's result."""
        self.batches += 1
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.parked += result.parked
        self.refused += result.refused
        self.problems = (self.problems + result.problems)[-50:]


class EventConsumer:
    """`workers` pull loops on the durable consumer, applying batches to the store."""

    def __init__(
        self,
        engine: Engine,
        servers: list[str],
        *,
        workers: int = 1,
        batch: int = 500,
        durable: str = DURABLE,
        connect_options: dict[str, Any] | None = None,
        replicas: int = 1,
    ) -> None:
        self.engine = engine
        self.servers = servers
        self.workers = workers
        self.batch = batch
        self.durable = durable
        self.connect_options = connect_options or {}
        self.replicas = replicas  # R3 on the production cluster: the stream and bucket survive a node loss
        self.stats = ConsumerStats()
        self._nc: NatsClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Connect (retrying in the background until the cloud NATS is up) and start the pull loops."""
        self._tasks = [asyncio.create_task(self._supervise(), name="qms-cloud-consumer")]

    async def stop(self) -> None:
        """Stop pulling; unacknowledged messages are redelivered to another consumer later."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def _supervise(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                self._nc = await nats.connect(
                    servers=self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **self.connect_options
                )
                js = self._nc.jetstream()
                await ensure_stream(js, replicas=self.replicas)
                await ensure_config_bucket(js, replicas=self.replicas)
                config = ConsumerConfig(
                    durable_name=self.durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=30,
                    max_ack_pending=20_000,
                    filter_subject=f"{SUBJECT_PREFIX}.>",
                )
                subs = [
                    await js.pull_subscribe(f"{SUBJECT_PREFIX}.>", durable=self.durable, stream=STREAM, config=config)
                    for _ in range(self.workers)
                ]
                log.info("consuming %s with %d worker(s)", STREAM, self.workers)
                delay = 0.2  # connected: the next outage starts its backoff afresh
                await asyncio.gather(*(self._pull(sub) for sub in subs))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer: %s; retrying in %.1fs", self.stats.last_error, delay)
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _pull(self, sub: Any) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(self.batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            incoming = [Incoming(m.subject, m.data) for m in msgs]
            try:
                result = await asyncio.to_thread(apply_batch, self.engine, incoming)
            except Exception as exc:  # the store is down: leave them for redelivery
                self.stats.failures += 1
                self.stats.last_error = f"store: {type(exc).__name__}: {exc}"
                log.exception("applying a batch failed; it will be redelivered")
                for m in msgs:
                    with contextlib.suppress(Exception):
                        await m.nak(delay=1.0)
                await asyncio.sleep(1.0)
                continue
            self.stats.add(result)
            for problem in result.problems:
                log.warning("replication problem: %s", problem)
            for m in msgs[:-1]:
                await m.ack()
            await msgs[-1].ack_sync()  # the batch's acks are flushed before the next fetch
