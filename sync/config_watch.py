"""The edge's side of config distribution: watch the branch's key in the `qms_config` KV bucket.

The watcher reads only its own key, with a JetStream direct get of the last value (the one request the branch's
credentials allow), every few seconds and whenever it reconnects. A new KV revision is handed to a callback that
applies or refuses it; the callback persists the revision it handled, so a restart does not handle it twice.

When the link fails it backs off like the relay (0.2 s doubling to 30 s, with jitter; back to the start only once the
server answered a read, not on a bare connect), and the outage is one line in the log for all of the link's users
(`sync.link_health`): a branch retired at the hub says so once, not every second per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError

from sync.link_health import LinkHealth
from sync.liveness import describe_link_error
from sync.relay import CONFIG_BUCKET, LinkSettings, config_key, error_text

log = logging.getLogger("qms.config_watch")
REQUEST_SECONDS = 2.0
BACKOFF_INITIAL, BACKOFF_MAX = 0.2, 30.0  # the relay's
HASH_HEADER = "Qms-Config-Hash"  # set by the hub on each KV entry: sync.contract_config.config_hash of the document
VERSION_HEADER = "Qms-Config-Version"


@dataclass(frozen=True)
class ConfigEntry:
    """One value of the branch's config key: its KV revision (stream sequence), the document bytes, and the content
    hash the hub put beside it (empty for entries written before hashes)."""

    revision: int
    value: bytes
    config_hash: str = ""


def direct_get_subject(tenant: str, branch_id: str) -> str:
    """`$JS.API.DIRECT.GET.KV_qms_config.$KV.qms_config.<tenant>.<branch>`: the last value of the key."""
    return f"$JS.API.DIRECT.GET.KV_{CONFIG_BUCKET}.$KV.{CONFIG_BUCKET}.{config_key(tenant, branch_id)}"


async def fetch_last(nc: NatsClient, subject: str) -> ConfigEntry | None:
    """The last value a KV direct-get `subject` answers (the config, staff, bookings and alerts keys are read this way),
    or None when there is none (never set, deleted or purged)."""
    msg = await nc.request(subject, b"", timeout=REQUEST_SECONDS)
    headers = msg.headers or {}
    if headers.get("Status") in {"404", "408"} or headers.get("KV-Operation") in {"DEL", "PURGE"}:
        return None
    if headers.get("Status"):
        raise ConfigFetchError(f"direct get answered {headers.get('Status')} {headers.get('Description', '')}")
    return ConfigEntry(
        revision=int(headers.get("Nats-Sequence", "0")), value=msg.data, config_hash=headers.get(HASH_HEADER, "")
    )


async def fetch_config(nc: NatsClient, tenant: str, branch_id: str) -> ConfigEntry | None:
    """The current value of the branch's config key, or None when there is none."""
    return await fetch_last(nc, direct_get_subject(tenant, branch_id))


class ConfigFetchError(Exception):
    """The server refused the read (e.g. a permission problem); retried with backoff."""


Handler = Callable[[ConfigEntry], Awaitable[None]]


class ConfigWatch:
    """Polls the key (the config bucket's unless `subject` names another bucket's); calls `handle(entry)` for each
    revision newer than `handled_revision`."""

    def __init__(
        self,
        link: LinkSettings,
        handle: Handler,
        *,
        handled_revision: int = 0,
        poll_seconds: float = 2.0,
        subject: Callable[[str, str], str] = direct_get_subject,
        label: str = "config watch",
    ) -> None:
        self.link = link
        self.label = label  # who it is in the log and the status ("config watch", "staff watch", …)
        self.subject = subject  # the direct-get subject of the branch's key in the watched bucket
        self.handle = handle
        self.handled_revision = handled_revision
        self.poll_seconds = poll_seconds
        self.state = "starting"
        self.last_error: str | None = None  # in words (sync.liveness), None once the server answers again
        self.retry_in: float | None = None
        self.health = LinkHealth.of(link)
        if handled_revision > 0:
            self.health.accepted = True  # the hub delivered to this branch before
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the current event loop until `stop()`."""
        self._task = asyncio.create_task(self._run(), name="qms-config-watch")

    async def stop(self) -> None:
        """Stop polling."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = BACKOFF_INITIAL
        while not self._stopping.is_set():
            nc: NatsClient | None = None
            try:
                nc = await self.link.connect(name=f"qms-edge-config {self.link.tenant}.{self.link.branch_id}")
                self.state = "connected"
                while not self._stopping.is_set() and nc.is_connected:
                    await self.poll_once(nc)
                    self.last_error, self.retry_in, backoff = None, None, BACKOFF_INITIAL  # answered: start again
                    self.health.up(self.label)
                    await self._sleep(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # link down, refused read, or a failing handler: retried from the revision
                delay = min(BACKOFF_MAX, backoff) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
                backoff = min(BACKOFF_MAX, backoff * 2)
                self._failed(exc, delay, dropped=nc is not None and not nc.is_connected)
                await self._sleep(delay)
            finally:
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()

    def _failed(self, exc: Exception, delay: float, *, dropped: bool = False) -> None:
        """Say what went wrong: a link failure once per outage for all of the link's users, a failing handler (a
        document it cannot apply) every time; `dropped`: the server closed the connection that was up (the reconnect
        says why, `sync.link_health`)."""
        self.state, self.retry_in = "disconnected", delay
        if isinstance(exc, NatsError | JetStreamError | OSError | TimeoutError | ConfigFetchError):
            self.last_error = describe_link_error(
                exc, None, servers=self.link.servers, tenant=self.link.tenant, branch_id=self.link.branch_id,
                seed_file=self.link.nkey_seed_file, accepted_before=self.health.accepted,
            )  # fmt: skip
            self.health.down(self.label, self.last_error, delay, dropped=dropped)
            return
        self.last_error = error_text(exc)
        log.warning("%s: %s; retry in %.1fs", self.label, self.last_error, delay)

    async def poll_once(self, nc: NatsClient) -> None:
        """Read the key once and hand a new revision to the handler."""
        config_key(self.link.tenant, self.link.branch_id)  # both must be plain tokens (raises otherwise)
        entry = await fetch_last(nc, self.subject(self.link.tenant, self.link.branch_id))
        if entry is not None and entry.revision > self.handled_revision:
            await self.handle(entry)
            self.handled_revision = entry.revision

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
