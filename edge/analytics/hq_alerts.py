"""HQ's anomaly alerts on the branch floor: poll the branch's key in the `qms_alerts` KV bucket (sync/hq_alerts.py)
and keep the newest document, so the supervisor sees "this queue is slower than usual" as HQ does, and it goes when
HQ clears it.

It is the config watcher with another bucket (sync.config_watch.ConfigWatch). The document is kept on disk
(`<data>/hq_alerts.json`), so a restart shows the last word from HQ; the floor shows when that word was given. Each
new document calls the listeners (the staff pages' live stream re-renders the floor)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
from nats.aio.client import Client as NatsClient

from edge.store.datadir import write_private
from sync.config_watch import ConfigEntry, ConfigWatch, fetch_last
from sync.hq_alerts import AlertsDocument, alerts_decoder, alerts_subject
from sync.relay import LinkSettings

log = logging.getLogger("qms.analytics.alerts")
ALERTS_FILE = "hq_alerts.json"


async def fetch_alerts(nc: NatsClient, tenant: str, branch_id: str) -> ConfigEntry | None:
    """The key's current value (None: HQ never had an alert for this branch)."""
    return await fetch_last(nc, alerts_subject(tenant, branch_id))


def load(data_dir: Path) -> AlertsDocument | None:
    """The newest document kept (None: none yet, or unreadable)."""
    try:
        return alerts_decoder.decode((Path(data_dir) / ALERTS_FILE).read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def keep(data_dir: Path, document: AlertsDocument) -> None:
    """Write the document where `load` finds it."""
    write_private(Path(data_dir) / ALERTS_FILE, msgspec.json.encode(document))


class AlertsWatch(ConfigWatch):
    """Polls the branch's alerts key; keeps each newer document and tells the listeners."""

    def __init__(self, link: LinkSettings, data_dir: Path, *, poll_seconds: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.listeners: list[Callable[[AlertsDocument], None]] = []
        super().__init__(link, self.accept, poll_seconds=poll_seconds, subject=alerts_subject, label="alerts watch")

    async def accept(self, entry: ConfigEntry) -> None:
        """Keep a document for this branch (another branch's or a malformed one is logged and ignored)."""
        try:
            document = alerts_decoder.decode(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("HQ alerts %s ignored: %s", entry.revision, exc)
            return
        if (document.tenant_id, document.branch_id) != (self.link.tenant, self.link.branch_id):
            log.warning("HQ alerts %s ignored: they are for another branch", entry.revision)
            return
        keep(self.data_dir, document)
        log.info("HQ alerts: %d open", len(document.alerts))
        for listener in self.listeners:
            listener(document)


def floor_view(data_dir: Path, timezone: str) -> dict[str, object] | None:
    """What the floor shows: the open alerts with their start in the branch's time, and when HQ said so (None: no
    alert open)."""
    document = load(data_dir)
    if document is None or not document.alerts:
        return None
    zone = ZoneInfo(timezone)
    rows = [
        {"service_id": a.service_id, "since": a.opened_at.astimezone(zone).strftime("%H:%M"),
         "p90_seconds": a.p90_seconds, "baseline_seconds": a.baseline_seconds}
        for a in document.alerts
    ]  # fmt: skip
    return {"alerts": rows, "as_of": document.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")}
