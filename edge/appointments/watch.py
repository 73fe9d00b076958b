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
from sync.config_watch import ConfigEntry, ConfigWatch, fetch_last
from sync.relay import LinkSettings, config_key

log = logging.getLogger("qms.appointments")


async def fetch_bookings(nc: NatsClient, tenant: str, branch_id: str) -> ConfigEntry | None:
    """The key's current value (None: no bookings pushed for this branch yet)."""
    config_key(tenant, branch_id)  # both must be plain tokens (raises otherwise)
    return await fetch_last(nc, bookings_subject(tenant, branch_id))


class BookingsWatch(ConfigWatch):
    """Polls the branch's bookings key and writes each newer document to `<data>/bookings.json`."""

    def __init__(self, link: LinkSettings, data_dir: Path, *, poll_seconds: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.saved = asyncio.Event()  # set whenever a document was written (tests and the doctor wait on it)
        super().__init__(link, self._save, poll_seconds=poll_seconds, subject=bookings_subject, label="bookings watch")

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
