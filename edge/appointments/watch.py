"""The branch's side of the bookings push: poll its key in the `qms_bookings` KV bucket (a JetStream direct get of
the last value, the one read the branch's credentials allow), and keep the newest document on disk.

It is the config watcher with another bucket: same polling, reconnect and backoff (sync.config_watch.ConfigWatch)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
from nats.aio.client import Client as NatsClient

from edge.appointments import store
from sync.appointments import bookings_decoder, bookings_subject
from sync.config_watch import REQUEST_SECONDS, ConfigEntry, ConfigFetchError, ConfigWatch
from sync.relay import LinkSettings, config_key

log = logging.getLogger("qms.appointments")


async def fetch_bookings(nc: NatsClient, tenant: str, branch_id: str) -> ConfigEntry | None:
    """The key's current value (None: never pushed)."""
    config_key(tenant, branch_id)  # both must be plain tokens (raises otherwise)
    msg = await nc.request(bookings_subject(tenant, branch_id), b"", timeout=REQUEST_SECONDS)
    headers = msg.headers or {}
    if headers.get("Status") in {"404", "408"} or headers.get("KV-Operation") in {"DEL", "PURGE"}:
        return None
    if headers.get("Status"):
        raise ConfigFetchError(f"direct get answered {headers.get('Status')} {headers.get('Description', '')}")
    return ConfigEntry(revision=int(headers.get("Nats-Sequence", "0")), value=msg.data)


class BookingsWatch(ConfigWatch):
    """Polls the branch's bookings key and writes each newer document to `<data>/bookings.json`."""

    def __init__(self, link: LinkSettings, data_dir: Path, *, poll_seconds: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.saved = asyncio.Event()  # set whenever a document was written (tests and the doctor wait on it)
        super().__init__(link, self._save, poll_seconds=poll_seconds)

    async def _save(self, entry: ConfigEntry) -> None:
        try:
            document = bookings_decoder.decode(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("bookings push %s ignored: %s", entry.revision, exc)
            return
        if document.branch_id != self.link.branch_id:
            log.warning("bookings push %s ignored: it is for another branch", entry.revision)
            return
        store.save(self.data_dir, document)
        self.saved.set()

    async def poll_once(self, nc: NatsClient) -> None:
        """Read the key once and keep a newer document."""
        entry = await fetch_bookings(nc, self.link.tenant, self.link.branch_id)
        if entry is not None and entry.revision > self.handled_revision:
            await self.handle(entry)
            self.handled_revision = entry.revision
