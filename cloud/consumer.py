"""The cloud's JetStream side: stream and KV bucket setup, and the durable pull consumer that applies events.

Several consumers (tasks in one process, or several processes) share one durable pull consumer: JetStream hands each
message to one of them; the store's per-branch tracking row (locked while applying) keeps the result exactly once
and in order, parking whatever arrives ahead of its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from sqlalchemy.engine import Engine

from cloud.apply import ApplyResult, Incoming, apply_batch, subject_branch
from cloud.ops import pii
from cloud.store import utcnow_iso, writer_turn
from sync.observability import NATS_CORRELATION_HEADER, event_correlations, valid_correlation_id
from sync.relay import CONFIG_BUCKET, STREAM, SUBJECT_PREFIX, error_text

log = logging.getLogger("qms.cloud.consumer")

DURABLE = "qms-cloud"
FETCH_TIMEOUT_SECONDS = 5.0  # one idle pull's wait (QMS_CLOUD_FETCH_TIMEOUT); messages end it at once
JS_API = "$JS.API"  # the hub's JetStream API prefix (no domain)
PULL_GRACE_SECONDS = 1.0  # a standing pull request silent this long past its expiry is taken as lost (a reconnect)
STORE_BACKOFF_MAX_SECONDS = 30.0
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
    """Counters of one process's consumers (for health, the console and logs)."""

    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    refused: int = 0
    failures: int = 0  # batches the store could not apply (left unacknowledged, redelivered)
    last_error: str | None = None
    problems: list[str] = field(default_factory=list)
    connects: int = 0  # sessions set up (connect + stream + durable consumer); more than 1 = the loop restarted
    disconnects: int = 0  # the NATS client lost its connection (it reconnects by itself)
    fetches: int = 0
    idle_fetches: int = 0  # fetches that found nothing: normal when the branches are quiet
    ack_failures: int = 0
    nats_connected: bool = False
    nats_down_since: str | None = None  # UTC, RFC 3339: the link has been down since then (None while up)
    nats_error: str | None = None  # the NATS client's last error while the link is down (e.g. connection refused)
    store_failing_since: str | None = None  # the store refused the newest batch; None once a batch applied again

    def add(self, result: ApplyResult) -> None:
        """Fold in one batch's result."""
        self.batches += 1
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.parked += result.parked
        self.refused += result.refused
        self.problems = (self.problems + result.problems)[-50:]


class StandingPull:
    """One worker's pull on the durable consumer that hands over whatever has arrived, never waiting to fill a batch.

    nats-py's `fetch(n)`, once idle, lingers until all n messages came or its timeout ran out: at 100 events/s and
    n = 500 an event waited up to the whole fetch timeout (5 s) before it was applied. Here one request for up to
    `batch` messages stands at the server, which delivers each event as it is stored; `take()` returns as soon as
    one is here, with every other one already here. The request is renewed when used up, ended by the server
    (404/408/409) or silent past its expiry (lost in a reconnect)."""

    def __init__(self, nc: NatsClient, durable: str, batch: int, expires: float) -> None:
        self.nc = nc
        self.subject = f"{JS_API}.CONSUMER.MSG.NEXT.{STREAM}.{durable}"
        self.batch = batch
        self.expires = max(expires, 1.0)
        self.inbox = nc.new_inbox()
        self._sub: Any = None
        self._left = 0  # messages the standing request may still bring
        self._renew_by = 0.0  # monotonic: past this, the request is gone even if the server never said so

    async def start(self) -> None:
        """Subscribe to the inbox the server delivers to."""
        self._sub = await self.nc.subscribe(self.inbox)

    def renew(self) -> None:
        """Ask again at the next `take()` (after a reconnect the server may have forgotten the request)."""
        self._left = 0

    async def _request(self) -> None:
        self._left = self.batch
        self._renew_by = time.monotonic() + self.expires + PULL_GRACE_SECONDS
        body = {"batch": self.batch, "expires": int(self.expires * 1e9)}
        await self.nc.publish(self.subject, json.dumps(body).encode(), reply=self.inbox)

    async def take(self, quiet: float) -> list[Msg]:
        """The messages that have arrived (at least one), or none after `quiet` seconds without any."""
        msgs: list[Msg] = []
        deadline = time.monotonic() + quiet
        while not msgs:
            now = time.monotonic()
            if self._left <= 0 or now >= self._renew_by:
                await self._request()
            if now >= deadline:
                return msgs
            try:
                msg = await self._sub.next_msg(timeout=min(deadline, self._renew_by) - now)
            except NatsTimeoutError:
                continue
            self._keep(msg, msgs)
        while len(msgs) < self.batch and self._sub.pending_msgs > 0:  # already here: no waiting
            self._keep(await self._sub.next_msg(timeout=1.0), msgs)
        return msgs

    def _keep(self, msg: Msg, msgs: list[Msg]) -> None:
        status = (msg.headers or {}).get("Status")
        if not status:
            self._left -= 1
            msgs.append(msg)
        elif status != "100":  # not an idle heartbeat: the request ended (expired, or nothing to wait for)
            self._left = 0
            if status == "409":  # ended (server shutdown, consumer deleted, leader changed, too many waiting): afresh
                raise PullEnded((msg.headers or {}).get("Description") or "409")


class PullEnded(Exception):
    """The server ended the standing pull request with a 409 (e.g. "Server Shutdown", consumer deleted, leader
    changed): the supervisor reconnects and sets the consumer up. Not a refusal of our connection, and logged as what
    it is (the NATS outage's own refusal is logged once beside it)."""


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
        fetch_timeout: float = FETCH_TIMEOUT_SECONDS,
    ) -> None:
        self.engine = engine
        self.servers = servers
        self.workers = workers
        self.batch = batch
        self.durable = durable
        self.connect_options = connect_options or {}
        self.replicas = replicas  # R3 on the production cluster: the stream and bucket survive a node loss
        self.fetch_timeout = fetch_timeout  # how long one pull waits for messages when the branches are quiet
        self._store_backoff = 0.0
        self.stats = ConsumerStats()
        self._nc: NatsClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pulls: list[StandingPull] = []
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
                    servers=self.servers,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                    **self.connect_options,
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
                try:
                    await js.consumer_info(STREAM, self.durable)
                except NotFoundError:
                    await js.add_consumer(STREAM, config)
                self._pulls = [StandingPull(self._nc, self.durable, self.batch, self.fetch_timeout)
                               for _ in range(self.workers)]  # fmt: skip
                for pull in self._pulls:
                    await pull.start()
                self.stats.connects += 1
                self._link_up()
                log.info("consuming %s with %d worker(s)", STREAM, self.workers)
                delay = 0.2  # connected: the next outage starts its backoff afresh
                await asyncio.gather(*(self._pull(pull) for pull in self._pulls))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self.stats.last_error:  # once per kind of failure, not once per retry
                    log.warning("consumer: %s; retrying with back-off up to 10s", error)
                self.stats.last_error = error
                self._link_down()
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def problems(self) -> list[str]:
        """Why this consumer is not doing its job right now (empty when it is): for the hub's health."""
        found: list[str] = []
        if not self.stats.nats_connected:
            since = self.stats.nats_down_since
            error = self.stats.nats_error or self.stats.last_error
            found.append("NATS disconnected" + (f" since {since}" if since else " (never connected)")
                         + (f": {error}" if error else ""))  # fmt: skip
        if self.stats.store_failing_since is not None:
            found.append(f"consumer failing since {self.stats.store_failing_since}: {self.stats.last_error}")
        return found

    async def _on_disconnected(self) -> None:
        self.stats.disconnects += 1
        self._link_down()

    async def _on_reconnected(self) -> None:
        for pull in self._pulls:
            pull.renew()  # the server may have dropped our standing requests with the old connection
        self._link_up()

    async def _on_error(self, exc: Exception) -> None:
        """The NATS client's errors (a refused reconnect every half second while the server is down): kept for the
        health's reason and logged once per kind of error, instead of nats-py's traceback per attempt."""
        error = error_text(exc)
        if error != self.stats.nats_error:
            log.warning("consumer: NATS: %s (reconnecting)", error)
        self.stats.nats_error = error

    def _link_up(self) -> None:
        if self.stats.nats_error is not None:
            log.info("consumer: NATS connected again")
        self.stats.nats_connected, self.stats.nats_down_since, self.stats.nats_error = True, None, None

    def _link_down(self) -> None:
        if self.stats.nats_down_since is None:
            self.stats.nats_down_since = utcnow_iso()
        self.stats.nats_connected = False

    async def _pull(self, pull: StandingPull) -> None:
        """Take what arrived, apply, acknowledge, until stopped; NATS failures end it (the supervisor reconnects)."""
        while not self._stopping.is_set():
            msgs = await self._fetch(pull)
            if not msgs:  # a quiet stream: normal
                continue
            if await self._apply(msgs):
                await self._ack(msgs)

    async def _fetch(self, pull: StandingPull) -> list[Any]:
        self.stats.fetches += 1
        msgs: list[Any] = await pull.take(self.fetch_timeout)
        if not msgs:
            self.stats.idle_fetches += 1
        return msgs

    async def _apply(self, msgs: list[Any]) -> bool:
        """Apply one batch; when the store refuses it, leave it unacknowledged (redelivered after a back-off that
        grows while the store keeps failing), say so once per outage, and return False."""
        ids = correlations(msgs)
        try:
            with event_correlations(ids):  # copied into the worker thread: triggers read it per event
                incoming = [Incoming(m.subject, m.data, pii.key_from_headers(m.headers)) for m in msgs]
                result = await asyncio.to_thread(_apply_in_turn, self.engine, incoming)
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = f"store: {type(exc).__name__}: {exc}"
            self._store_backoff = min(max(self._store_backoff * 2, 0.5), STORE_BACKOFF_MAX_SECONDS)
            if self.stats.store_failing_since is None:
                self.stats.store_failing_since = utcnow_iso()
                log.warning("store refused a batch (%s); it stays unacknowledged and is retried with back-off"
                            " up to %.0fs", self.stats.last_error, STORE_BACKOFF_MAX_SECONDS)  # fmt: skip
            for m in msgs:
                with contextlib.suppress(Exception):
                    await m.nak(delay=self._store_backoff)
            await asyncio.sleep(self._store_backoff)
            return False
        if self.stats.store_failing_since is not None:
            log.warning("store applies batches again (it failed %d time(s) since %s)", self.stats.failures,
                        self.stats.store_failing_since)  # fmt: skip
            self.stats.store_failing_since, self._store_backoff = None, 0.0
        self.stats.add(result)
        for problem in result.problems:
            log.warning("replication problem: %s", problem)
        for (tenant, branch_id, seq), correlation_id in ids.items():
            log.debug("applied event %s/%s seq %d", tenant, branch_id, seq, extra={"correlation_id": correlation_id})
        return True

    async def _ack(self, msgs: list[Any]) -> None:
        """Acknowledge an applied batch; an unconfirmed ack only means a redelivery the store counts as duplicate."""
        try:
            for m in msgs[:-1]:
                await m.ack()
            await msgs[-1].ack_sync()  # the batch's acks are flushed before the next fetch
        except (TimeoutError, NatsTimeoutError) as exc:
            self.stats.ack_failures += 1
            log.warning("acks of an applied batch not confirmed (%s): it may be redelivered as duplicates", exc)


def _apply_in_turn(engine: Engine, incoming: list[Incoming]) -> ApplyResult:
    """One batch applied in the store's writer turn (on SQLite shared fairly with this process's dispatcher)."""
    with writer_turn(engine):
        return apply_batch(engine, incoming)


class _Seq(msgspec.Struct):
    seq: int = 0


def correlations(msgs: list[Any]) -> dict[tuple[str, str, int], str]:
    """`(tenant, branch, seq) -> correlation id` of the messages that carry one (the relay's header; validated, as
    any input is)."""
    found: dict[tuple[str, str, int], str] = {}
    for m in msgs:
        correlation_id = valid_correlation_id((m.headers or {}).get(NATS_CORRELATION_HEADER))
        where = subject_branch(m.subject)
        if correlation_id and where:
            with contextlib.suppress(msgspec.DecodeError):
                found[(*where, msgspec.json.decode(m.data, type=_Seq).seq)] = correlation_id
    return found
