"""Prometheus metrics of the appliance, read from the writer and the live view at scrape time (no hot-path cost)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.devices.registry import list_devices
from edge.drill import last_success
from edge.service import QueueService

BACKUP_DIR_ENV = "QMS_BACKUP_DIR"  # where archives go (`qms-edge backup`); default `<data dir>/../backups`


class ApplianceCollector(Collector):
    """Writer throughput, queue sizes per service and status, counters by presence, live SSE clients."""

    def __init__(self, service: QueueService, sse_clients: Callable[[], int]) -> None:
        self.service = service
        self.sse_clients = sse_clients

    def collect(self) -> Iterator[Metric]:
        """One consistent read of the current view and the writer's counters."""
        service, state = self.service, self.service.view.state
        commands = CounterMetricFamily("qms_commands", "Commands handled by the writer", labels=["command", "outcome"])
        for (name, outcome), count in sorted(service.outcomes.items()):
            commands.add_metric([name, outcome], count)
        yield commands
        yield CounterMetricFamily("qms_transactions", "Writer transactions (group commits)", value=service.batches)
        yield CounterMetricFamily(
            "qms_transaction_seconds", "Time spent in writer transactions", value=service.commit_seconds
        )
        yield GaugeMetricFamily("qms_log_seq", "Last committed event seq", value=state.seq)
        yield GaugeMetricFamily(
            "qms_config_version", "Applied configuration version", value=state.config.version if state.config else 0
        )
        tickets = GaugeMetricFamily(
            "qms_tickets", "Tickets in memory by service and status", labels=["service", "status"]
        )
        for (service_id, status), count in sorted(
            Counter((t.service_id, t.status) for t in state.tickets.values()).items()
        ):
            tickets.add_metric([service_id, status], count)
        yield tickets
        counters = GaugeMetricFamily("qms_counters", "Counters by presence", labels=["presence"])
        for presence, count in sorted(Counter(c.presence for c in state.counters.values()).items()):
            counters.add_metric([presence], count)
        yield counters
        yield GaugeMetricFamily("qms_sse_clients", "Connected event-stream clients", value=self.sse_clients())


class HostCollector(Collector):
    """What an operator alerts on besides the queue: disk free, the last backup's age, registered devices online."""

    def __init__(self, service: QueueService, data_dir: Path) -> None:
        self.service = service
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        """Disk of the data dir, newest archive under `<data dir>/../backups`, devices by type and presence."""
        usage = shutil.disk_usage(self.data_dir)
        yield GaugeMetricFamily("qms_disk_free_bytes", "Free bytes on the data dir's filesystem", value=usage.free)
        yield GaugeMetricFamily("qms_disk_total_bytes", "Size of the data dir's filesystem", value=usage.total)
        newest = max((p.stat().st_mtime for p in self.backups_dir().glob("*.tar.gz")), default=None)
        if newest is not None:  # no sample at all when never backed up: the alert rule treats absence as too old
            yield GaugeMetricFamily(
                "qms_backup_last_success_timestamp_seconds", "When the newest backup archive was written", value=newest
            )
        yield from backup_shipping_metrics(self.data_dir)
        drilled = last_success(self.data_dir)  # `qms-edge drill`: the newest backup restored, verified and booted
        if drilled is not None:
            yield GaugeMetricFamily(
                "qms_restore_drill_last_success_timestamp_seconds", "When a restore drill last succeeded", value=drilled
            )
        devices = GaugeMetricFamily("qms_devices", "Active registered devices by type and presence",
                                    labels=["type", "online"])  # fmt: skip
        active = [d for d in self.service.read(list_devices) if d.status == "active"]
        for (kind, online), count in sorted(Counter((d.type, d.online) for d in active).items()):
            devices.add_metric([kind, "1" if online else "0"], count)
        yield devices

    def backups_dir(self) -> Path:
        """Where archives are looked for (beside the data dir, never inside it: a backup must survive its disk)."""
        return Path(os.environ.get(BACKUP_DIR_ENV) or self.data_dir.parent / "backups")


def backup_shipping_metrics(data_dir: Path) -> Iterator[Metric]:
    """Scheduled backups shipped to the hub and to an S3 store (edge/backup_ship.py's record): last confirmed upload,
    copies waiting, failed attempts in a row."""
    from edge.backup_ship import read_status

    status = read_status(data_dir)
    yield from _s3_metrics(status)
    if not status.get("ships"):
        return
    if isinstance(last := status.get("last_upload_at"), int | float):
        yield GaugeMetricFamily("qms_backup_upload_last_success_timestamp_seconds",
                                "When the hub last confirmed a shipped backup", value=last)  # fmt: skip
    yield GaugeMetricFamily("qms_backup_upload_pending", "Sealed backups waiting for the hub",
                            value=int(status.get("pending") or 0))  # fmt: skip
    yield GaugeMetricFamily("qms_backup_upload_failures", "Failed upload attempts in a row",
                            value=int(status.get("upload_failures") or 0))  # fmt: skip


def _s3_metrics(status: dict[str, object]) -> Iterator[Metric]:
    """Sealed backups shipped to the S3-compatible store (QMS_BACKUP_S3_*), only when the appliance ships there."""
    if not status.get("ships_s3"):
        return
    if isinstance(last := status.get("s3_last_upload_at"), int | float):
        yield GaugeMetricFamily("qms_backup_s3_last_success_timestamp_seconds",
                                "When the S3 store last confirmed an uploaded backup", value=last)  # fmt: skip
    yield GaugeMetricFamily("qms_backup_s3_pending", "Sealed backups waiting for the S3 store",
                            value=_count(status.get("s3_pending")))  # fmt: skip
    yield GaugeMetricFamily("qms_backup_s3_failures", "Failed S3 upload rounds in a row",
                            value=_count(status.get("s3_failures")))  # fmt: skip


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def registry_for(
    service: QueueService, sse_clients: Callable[[], int], data_dir: Path | None = None
) -> CollectorRegistry:
    """A registry of its own per app (tests create many apps in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplianceCollector(service, sse_clients))
    if data_dir is not None:
        registry.register(HostCollector(service, data_dir))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)
