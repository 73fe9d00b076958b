"""The edge's side of config distribution: watch the branch's key in the `qms_config` KV bucket.

The watcher reads only its own key, with a JetStream direct get of the last value (the one request the branch's
credentials allow), every few seconds and whenever it reconnects. A new KV revision is handed to a callback that
applies or refuses it; the callback persists the revision it handled, so a restart does not handle it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from sync.relay import CONFIG_BUCKET, LinkSettings, config_key

log = logging.getLogger("qms.config_watch")
REQUEST_SECONDS = 2.0
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
    ) -> None:
        self.link = link
        self.subject = subject  # the direct-get subject of the branch's key in the watched bucket
        self.handle = handle
        self.handled_revision = handled_revision
        self.poll_seconds = poll_seconds
        self.state = "starting"
        self.last_error: str | None = None
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
        backoff = 0.2
        while not self._stopping.is_set():
            nc: NatsClient | None = None
            try:
                nc = await self.link.connect(name=f"qms-edge-config {self.link.tenant}.{self.link.branch_id}")
                self.state, backoff = "connected", 0.2
                while not self._stopping.is_set() and nc.is_connected:
                    await self.poll_once(nc)
                    await self._sleep(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # link down, refused read, or a failing handler: retried from the revision
                self.state, self.last_error = "disconnected", f"{type(exc).__name__}: {exc}"
                log.warning("config watch: %s", self.last_error)
                await self._sleep(min(30.0, backoff) * (0.5 + random.random() / 2))  # noqa: S311 - jitter
                backoff *= 2
            finally:
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()

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
