"""The edge relay: ships a branch's event log to the cloud's JetStream stream, in order, at least once, resumable.

The relay knows nothing of the appliance's storage: it reads batches through an `EventSource` (seq, payload) and
persists its cursor through it. Exactly-once at the cloud comes from two layers: JetStream drops a re-publish with
the same `Nats-Msg-Id` (`<tenant>.<branch>:<seq>:<hash prefix>`) inside the stream's duplicate window, and the cloud
applies by `(tenant_id, branch_id, seq)` whatever arrives later than that, comparing hashes so a different event
under a known seq is a fork, never a duplicate. The hash in the id lets such an event (a restored appliance's)
through the window at all; a resend (`qms-edge replication resend`) rewinds the cursor and bumps its epoch, which
the relay notices between batches and puts in the ids (`…:e<epoch>`), so identical events go out again instead of
being dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError

from sync.crypto import CONTACT_KEY_HEADER
from sync.link_health import LinkHealth
from sync.observability import NATS_CORRELATION_HEADER

if TYPE_CHECKING:
    from sync.liveness import Beater

log = logging.getLogger("qms.relay")

STREAM = "QMS_EVENTS"
SUBJECT_PREFIX = "qms.evt"
CONFIG_BUCKET = "qms_config"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def error_text(exc: BaseException) -> str:
    """An exception as one log/status line: its type and message (`TimeoutError`, not `TimeoutError: `)."""
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def check_token(kind: str, value: str) -> str:
    """A tenant or branch id usable as one NATS subject token (no dots, wildcards or spaces)."""
    if not _TOKEN.match(value):
        raise ValueError(f"{kind} {value!r} cannot be a NATS subject token (letters, digits, '_' and '-' only)")
    return value


def event_subject(tenant: str, branch_id: str) -> str:
    """`qms.evt.<tenant>.<branch>`: the only subject a branch may publish its events to."""
    return f"{SUBJECT_PREFIX}.{check_token('tenant', tenant)}.{check_token('branch', branch_id)}"


def config_key(tenant: str, branch_id: str) -> str:
    """`<tenant>.<branch>`: the branch's key in the `qms_config` KV bucket."""
    return f"{check_token('tenant', tenant)}.{check_token('branch', branch_id)}"


def inbox_prefix(tenant: str, branch_id: str) -> str:
    """A per-branch reply inbox, so a branch's credentials never need to read another branch's replies."""
    return f"_INBOX_{check_token('tenant', tenant)}_{check_token('branch', branch_id)}"


def msg_id(tenant: str, branch_id: str, seq: int, hash_: str = "", epoch: int = 0) -> str:
    """The JetStream de-duplication id of one event: `<tenant>.<branch>:<seq>` (JetStream de-dups per stream, and
    branch ids are unique only inside a tenant), its hash's first 16 hex digits, and the resend epoch once the cursor
    was rewound (`…:e<epoch>`)."""
    return f"{tenant}.{branch_id}:{seq}" + (f":{hash_[:16]}" if hash_ else "") + (f":e{epoch}" if epoch else "")


@dataclass(frozen=True)
class Outgoing:
    """One event ready to ship: its seq, the event JSON as in the log (hash fields included), when it happened."""

    seq: int
    payload: bytes
    occurred_at: float  # POSIX seconds, for the lag in seconds
    hash: str = ""  # the event's chain hash (part of its message id)
    correlation_id: str = ""  # the request that wrote it, when known (NATS_CORRELATION_HEADER)
    contact_key: str = ""  # a sealed contact's key, sent beside the event (sync.crypto.CONTACT_KEY_HEADER)


class EventSource(Protocol):
    """Where the relay reads events and keeps its cursor (the appliance's SQLite through its single writer)."""

    def read_after(self, seq: int, limit: int) -> Sequence[Outgoing]:
        """Up to `limit` committed events with seq > `seq`, in order (blocking; run in a thread)."""
        ...

    def save_cursor(self, seq: int, epoch: int) -> Awaitable[None]:
        """Persist that everything up to `seq` was acknowledged; a no-op once the stored epoch is not `epoch` (the
        cursor was rewound meanwhile and the rewind wins)."""
        ...

    def read_cursor(self) -> tuple[int, int]:
        """The stored (acked seq, resend epoch) (blocking; run in a thread)."""
        ...


@dataclass(frozen=True)
class LinkSettings:
    """How to reach the cloud's NATS: servers, credentials, tenant and branch."""

    servers: tuple[str, ...]
    tenant: str
    branch_id: str
    nkey_seed_file: str | None = None  # written by `qms-cloud branch add`
    user: str | None = None
    password: str | None = None
    connect_timeout: float = 2.0
    tls_ca: str | None = None  # the hub CA's certificate: TLS to NATS, the server checked against it (host names too)
    tls_cert: str | None = None  # the appliance's certificate and key: mutual TLS (nats-server `verify: true`)
    tls_key: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """The client TLS context for the link, or None for plain NATS (a lab without certificates). Built from the
        files at every `connect` on purpose: a renewed or re-issued certificate (edge.tls) is presented from the next
        connection on, with no restart (tests/ops/tls/test_nats_cert_reload.py)."""
        if not self.tls_ca:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert and self.tls_key:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    async def connect(self, **extra: Any) -> NatsClient:
        """One connection attempt (no automatic reconnect: the caller owns the backoff)."""
        options: dict[str, Any] = {
            "servers": list(self.servers),
            "connect_timeout": self.connect_timeout,
            "allow_reconnect": False,
            # nats-py treats 0 as "forever" for the first connect; 1 attempt per call, the relay owns the backoff.
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0.05,
            "inbox_prefix": inbox_prefix(self.tenant, self.branch_id),
            "name": f"qms-edge {self.tenant}.{self.branch_id}",
            "error_cb": _quiet_error,
            **extra,
        }
        if (context := self.tls_context()) is not None:
            options["tls"] = context
        if self.nkey_seed_file:
            options["nkeys_seed"] = self.nkey_seed_file
        if self.user:
            options["user"] = self.user
            options["password"] = self.password or ""
        return await nats.connect(**options)


async def _quiet_error(exc: Exception) -> None:
    """nats-py reports connection errors here; the relay's own loop logs what matters."""
    log.debug("nats: %s", exc)


@dataclass
class RelayStatus:
    """What the relay is doing now (for the API and logs); the durable cursor lives in the source."""

    state: str = "starting"  # starting | connected | disconnected | stopped
    acked_seq: int = 0
    shipped: int = 0
    duplicates: int = 0
    last_error: str | None = None
    last_ack_at: float | None = None
    retry_in: float | None = None
    batches: int = field(default=0)
    epoch: int = 0  # bumped by each `qms-edge replication resend`
    link: str = "connecting"  # connecting | connected | down | stopped (sync.liveness.link_words)
    down_since: str | None = None  # UTC, RFC 3339: the first failure since the link was last up
    link_error: str | None = None  # the last error in words (sync.liveness.describe_link_error)
    server_error: str | None = None  # the last error the server reported (e.g. a permissions violation)


class Relay:
    """Ships the log from the last acknowledged seq: read a batch, publish it asynchronously, await every ack,
    save the cursor, repeat; while the cloud is unreachable it backs off exponentially (with jitter)."""

    def __init__(
        self,
        link: LinkSettings,
        source: EventSource,
        *,
        cursor: int,
        epoch: int = 0,
        batch_size: int = 1000,
        ack_timeout: float = 10.0,
        idle_poll: float = 1.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        beater: Beater | None = None,
        on_change: Callable[[RelayStatus], None] | None = None,
    ) -> None:
        self.link = link
        self.beater = beater  # heartbeats on the relay's connection while it is up
        if beater is not None:
            beater.on_sent = self._beat_went_through
        self._beat_refusals = 0  # heartbeats the server refused (a warning while events flow)
        self._beat_refusals_seen = 0  # ... as counted after the previous beat went through
        self.on_change = on_change  # told of every link state change (the appliance writes it for `qms-edge status`)
        self._violation = asyncio.Event()  # the server refused publishing to our subject
        self._on_probation = False  # reconnected after a refusal: "connected" only once the server takes a publish
        self.source = source
        self.subject = event_subject(link.tenant, link.branch_id)
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.idle_poll = idle_poll
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.status = RelayStatus(acked_seq=cursor, epoch=epoch)
        self.health = LinkHealth.of(link)  # shared with the KV watchers: one log line per outage
        if cursor > 0:
            self.health.accepted = True  # the hub acknowledged this branch's events before
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run in the current event loop until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self.run(), name="qms-relay")

    async def stop(self) -> None:
        """Finish the batch in flight (bounded by the ack timeout) and stop."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.ack_timeout + 1)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self.status.state = self.status.link = "stopped"
        self._changed()

    def notify(self) -> None:
        """New events committed (thread-safe: the appliance's writer thread calls this)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---- the loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, pump, and on any link failure back off and start again from the acknowledged cursor."""
        backoff = self.backoff_initial
        while not self._stopping.is_set():
            nc: NatsClient | None = None
            try:
                if self.status.link != "down":
                    self.status.link = "connecting"
                    self._changed()
                refused_before = self._violation.is_set() and self.status.link == "down"
                self._violation.clear()
                nc = await self.link.connect(error_cb=self._on_server_error)
                self.status.state, self.status.retry_in = "connected", None
                # After a refusal (a seed of another branch, say) a TCP connect proves nothing: the link stays down
                # with its error until an ack or an unrefused heartbeat interval shows the server takes what we send
                # (else `qms-edge status` flickers "connected" between retries).
                self._on_probation = refused_before
                if not refused_before:
                    self._link_up()
                backoff = self.backoff_initial
                log.info("relay connected; shipping from seq %d", self.status.acked_seq + 1)
                await self._pump(nc)
            except Exception as exc:  # any failure (link, store) is retried from the durable cursor
                self.status.state = "disconnected"
                self.status.last_error = error_text(exc)
                self._link_down(exc)
                delay = min(self.backoff_max, backoff) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
                self.status.retry_in = delay
                if isinstance(exc, NatsError | JetStreamError | OSError | TimeoutError | RelayRefused):
                    # The server closed a connection that was up: why is for the reconnect to say (sync.link_health).
                    dropped = nc is not None and nc.is_closed and not self._violation.is_set()
                    self.health.down("relay", self.status.link_error or self.status.last_error, delay, dropped=dropped)
                else:  # not a link failure: every one with its traceback
                    log.exception("relay: %s; retry in %.1fs", self.status.last_error, delay)
                backoff = min(self.backoff_max, backoff * 2)
                await self._sleep(delay)
            finally:
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.status)
            except Exception:  # a status observer must never stop the relay
                log.exception("relay: status observer failed")

    def _link_up(self) -> None:
        self._on_probation = False
        self.health.up("relay")
        self.status.link, self.status.down_since, self.status.link_error = "connected", None, None
        self.status.server_error = None  # a later outage is not described by an old refusal
        self._changed()

    def _beat_went_through(self) -> None:
        """Called before each beat after the first: when the server refused no beat during the interval since the
        previous one (a refusal comes back within a round trip), a heartbeat warning from before no longer holds
        (the hub has reloaded its users since), so it goes."""
        refused = self._beat_refusals != self._beat_refusals_seen
        self._beat_refusals_seen = self._beat_refusals
        if self._on_probation and not refused and not self._violation.is_set():
            self._link_up()
            return
        if not refused and self.status.link == "connected" and self.status.link_error is not None:
            self.status.link_error = None
            self._changed()

    def _link_down(self, exc: BaseException) -> None:
        from sync.liveness import describe_link_error  # sync.liveness imports this module: import it late

        self.status.link = "down"
        self.status.down_since = self.status.down_since or datetime.now(UTC).isoformat(timespec="seconds")
        self.status.link_error = describe_link_error(
            exc, self.status.server_error, servers=self.link.servers, tenant=self.link.tenant,
            branch_id=self.link.branch_id, seed_file=self.link.nkey_seed_file, ack_timeout=self.ack_timeout,
            accepted_before=self.health.accepted,
        )  # fmt: skip
        self._changed()

    async def _on_server_error(self, exc: Exception) -> None:
        """nats-py reports what the server refused here (asynchronously): keep it, and stop waiting for acks that
        will never come when the refused subject is ours."""
        text = str(exc)
        log.debug("nats: %s", text)
        lowered = text.lower()
        if "authorization violation" in lowered:  # the server dropped our credential (a branch retired, a re-key)
            self.status.server_error = text
            return
        if "violation" not in lowered:
            return
        from sync.liveness import seed_owner  # sync.liveness imports this module: import it late

        inbox = inbox_prefix(self.link.tenant, self.link.branch_id).lower()
        owner = seed_owner(self.link.nkey_seed_file)
        foreign = owner is not None and owner != (self.link.tenant, self.link.branch_id)
        if f'"{self.subject.lower()}"' in lowered or inbox in lowered or foreign:
            # A refusal with a seed named for another branch is conclusive even when only a heartbeat went out (an
            # idle relay ships nothing): the link is refused, not connected with a warning.
            self.status.server_error = text
            self._violation.set()  # events cannot ship (or their acks cannot come back): the link is refused
            self._wake.set()
        elif self.status.link == "connected":  # e.g. heartbeats refused: events flow, but say what is wrong
            # Not kept as the link's server error: a later outage (NATS stopped) is not a permission problem.
            self._beat_refusals += 1
            from sync.liveness import describe_link_error  # sync.liveness imports this module: import it late

            self.status.link_error = describe_link_error(
                None, text, servers=self.link.servers, tenant=self.link.tenant, branch_id=self.link.branch_id,
                seed_file=self.link.nkey_seed_file,
            )  # fmt: skip
            self._changed()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by `stop()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _pump(self, nc: NatsClient) -> None:
        beating = asyncio.create_task(self.beater.run(nc), name="qms-heartbeat") if self.beater else None
        try:
            await self._pump_events(nc)
        finally:
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await beating

    async def _pump_events(self, nc: NatsClient) -> None:
        js = nc.jetstream()
        while not self._stopping.is_set():
            if nc.is_closed or not nc.is_connected:
                raise ConnectionClosedError  # the server went away: "cannot reach the cloud" until it is back
            if self._violation.is_set():
                raise RelayRefused(self.status.server_error or f"permissions violation for publish to {self.subject}")
            self._wake.clear()
            batch = await asyncio.to_thread(self._next_batch)
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)
                continue
            await self._ship(js, batch)

    def _next_batch(self) -> Sequence[Outgoing]:
        """Follow a rewound cursor (a new resend epoch in the store), then read the next batch (in a worker thread)."""
        seq, epoch = self.source.read_cursor()
        if epoch != self.status.epoch:
            log.warning("relay: cursor rewound to seq %d (resend epoch %d): shipping again from seq %d",
                        seq, epoch, seq + 1)  # fmt: skip
            self.status.acked_seq, self.status.epoch = seq, epoch
        return self.source.read_after(self.status.acked_seq, self.batch_size)

    async def _ship(self, js: Any, batch: Sequence[Outgoing]) -> None:
        """Publish a batch asynchronously, await every ack, then persist the cursor (never before)."""
        futures: list[asyncio.Future[Any]] = []
        epoch = self.status.epoch
        try:
            for item in batch:
                headers = {"Nats-Msg-Id": msg_id(self.link.tenant, self.link.branch_id, item.seq, item.hash, epoch)}
                if item.correlation_id:  # so the hub's log lines (and provider calls) for it carry the same id
                    headers[NATS_CORRELATION_HEADER] = item.correlation_id
                if item.contact_key:  # beside the event, never in its hashed body: the hub opens the contact with it
                    headers[CONTACT_KEY_HEADER] = item.contact_key
                futures.append(await js.publish_async(self.subject, item.payload, headers=headers))
            acks = await self._acks(futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for ack in acks:
            if ack.stream != STREAM:
                raise RelayRefused(f"subject is captured by stream {ack.stream!r}, not {STREAM!r}")
        await self.source.save_cursor(batch[-1].seq, epoch)  # ignored by the store if a resend rewound it meanwhile
        if self._on_probation:
            self._link_up()
        self.status.acked_seq = batch[-1].seq
        self.status.shipped += len(batch)
        self.status.duplicates += sum(1 for ack in acks if ack.duplicate)
        self.status.last_ack_at = time.time()
        self.status.batches += 1

    async def _acks(self, futures: list[asyncio.Future[Any]]) -> list[Any]:
        """Every ack of a batch, cut short when the server refuses our subject (its acks would never come)."""
        gathered = asyncio.ensure_future(asyncio.gather(*futures))
        # Dropped unawaited when the server refuses the batch (or the acks time out, or the relay stops): its outcome
        # (a CancelledError, once its acks are cancelled) is retrieved here, else asyncio logs "_GatheringFuture
        # exception was never retrieved" beside the refusal.
        gathered.add_done_callback(_retrieve)
        refused = asyncio.ensure_future(self._violation.wait())
        try:
            done, _pending = await asyncio.wait({gathered, refused}, timeout=self.ack_timeout,
                                                return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            refused.cancel()
        if gathered in done:
            return list(gathered.result())
        gathered.cancel()
        if refused in done:
            raise RelayRefused(self.status.server_error or f"permissions violation for publish to {self.subject}")
        raise TimeoutError(f"no acknowledgement within {self.ack_timeout:g} s")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (nobody awaits it any more)."""
    if not future.cancelled():
        future.exception()


class RelayRefused(Exception):
    """The link is up but shipping cannot proceed (lost connection, wrong stream); retried with backoff."""
