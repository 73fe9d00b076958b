"""The hub's Prometheus metrics (issue 16, E-PLAT-01): read from the store and the consumer at scrape time.

Per branch: replication lag in events (what the branch's last heartbeat reported unacknowledged) and in seconds (how
old the newest applied event is while the hub is behind the branch's log), the link's liveness and the store's
status of its log (ok / gap / chain_broken). Hub-wide: events applied, duplicates, store failures, NATS connected,
live SSE connections. HTTP latency by route template comes from
`sync.http_metrics`. Other areas add theirs (`register_areas`): the notification outbox backlog, messages by status
and send attempts come from `cloud.notify.metrics`.

`/metrics` answers a bearer token (QMS_METRICS_TOKEN) when one is set, else local callers only (127.0.0.1, ::1):
branch names and lags are not for the internet, and Prometheus usually scrapes through localhost or a token.
"""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from cloud.liveness import ONLINE, judge, missed_beats_setting
from cloud.ops.backups import BACKUP_DIR_ENV, last_drill
from cloud.store import branch_liveness, branches

METRICS_TOKEN_ENV = "QMS_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a secret
AREA_METRICS = ("cloud.notify.metrics", "cloud.analytics.metrics", "cloud.appointments.metrics")
EXTRA_COLLECTORS: list[Callable[[Engine], Collector]] = []  # other hub modules append factories at import time


class SseConnections:
    """Live server-sent-event streams of the hub; an area's stream handler wraps its generator in `open()`."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[None]:
        """Count one stream while the block runs."""
        with self._lock:
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


SSE = SseConnections()


def _stamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class HubCollector(Collector):
    """Branch replication and the consumer's counters, one consistent read per scrape."""

    def __init__(self, engine: Engine, consumer: Callable[[], Any], clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.consumer = consumer
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """Per-branch lag, liveness and log status; consumer counters; SSE; the outbox."""
        now = self.clock()
        lag_events = GaugeMetricFamily("qms_hub_branch_lag_events", "Events the branch has not had acknowledged "
                                       "(its last heartbeat)", labels=["tenant", "branch"])  # fmt: skip
        lag_seconds = GaugeMetricFamily("qms_hub_branch_lag_seconds", "Age of the newest applied event while the "
                                        "hub is behind (0: caught up)", labels=["tenant", "branch"])  # fmt: skip
        online = GaugeMetricFamily("qms_hub_branch_online", "1 while the branch's heartbeats arrive",
                                   labels=["tenant", "branch"])  # fmt: skip
        beat = GaugeMetricFamily("qms_hub_branch_last_beat_timestamp_seconds", "When the last heartbeat arrived",
                                 labels=["tenant", "branch"])  # fmt: skip
        status = GaugeMetricFamily("qms_hub_branch_log_ok", "1 while the branch's log applies without gap or "
                                   "broken chain", labels=["tenant", "branch", "status"])  # fmt: skip
        with self.engine.connect() as conn:
            applied = {(r.tenant_id, r.branch_id): r for r in conn.execute(sa.select(branches))}
            beats = {(r.tenant_id, r.branch_id): r for r in conn.execute(sa.select(branch_liveness))}
        missed = missed_beats_setting()
        for key in sorted(applied.keys() | beats.keys()):
            row, hb = applied.get(key), beats.get(key)
            behind = (hb.last_seq - (row.next_seq - 1 if row else 0)) if hb else 0
            lag_events.add_metric(list(key), max(int(hb.lag_events) if hb else 0, behind, 0))
            newest = _stamp(row.last_event_at) if row else None
            lag_seconds.add_metric(list(key), (now - newest).total_seconds() if behind > 0 and newest else 0.0)
            online.add_metric(list(key), 1.0 if judge(hb, now, missed).state == ONLINE else 0.0)
            if hb is not None and (at := _stamp(hb.last_beat_at)) is not None:
                beat.add_metric(list(key), at.timestamp())
            if row is not None:
                status.add_metric([*key, row.status], 1.0 if row.status == "ok" else 0.0)
        yield from (lag_events, lag_seconds, online, beat, status)
        yield from self._consumer_metrics()
        yield GaugeMetricFamily("qms_hub_sse_connections", "Live server-sent-event streams", value=SSE.count)
        if (backups := os.environ.get(BACKUP_DIR_ENV)) and (drilled := last_drill(Path(backups))) is not None:
            yield GaugeMetricFamily("qms_hub_restore_drill_last_success_timestamp_seconds",
                                    "When qms-cloud drill last passed", value=drilled)  # fmt: skip

    def _consumer_metrics(self) -> Iterator[Metric]:
        consumer = self.consumer()
        stats = consumer.stats if consumer is not None else None
        yield GaugeMetricFamily("qms_hub_consuming", "1 when this replica runs the event consumer",
                                value=1.0 if stats else 0.0)  # fmt: skip
        yield GaugeMetricFamily("qms_hub_nats_connected", "1 while the consumer's NATS connection is up",
                                value=1.0 if stats and stats.nats_connected else 0.0)  # fmt: skip
        yield CounterMetricFamily(
            "qms_hub_events_applied", "Branch events applied", value=stats.applied if stats else 0
        )
        yield CounterMetricFamily("qms_hub_event_duplicates", "Redelivered events recognised as duplicates",
                                  value=stats.duplicates if stats else 0)  # fmt: skip
        yield CounterMetricFamily("qms_hub_apply_failures", "Batches the store refused (retried)",
                                  value=stats.failures if stats else 0)  # fmt: skip


def register_areas(registry: CollectorRegistry, engine: Engine) -> None:
    """What other areas expose: `cloud.<area>.metrics.register(registry, engine)` (notify does so) or
    `cloud.<area>.metrics.collector(engine)`, then every factory in `EXTRA_COLLECTORS`."""
    for name in AREA_METRICS:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        if (register := getattr(module, "register", None)) is not None:
            register(registry, engine)
        elif (factory := getattr(module, "collector", None)) is not None:
            registry.register(factory(engine))
    for make_collector in EXTRA_COLLECTORS:
        registry.register(make_collector(engine))


def hub_registry(engine: Engine, consumer: Callable[[], Any],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> CollectorRegistry:  # fmt: skip
    """A registry of its own per app: the hub's collector and the areas' (HTTP metrics are added by the app)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(engine, consumer, clock))
    register_areas(registry, engine)
    return registry


def scrape_allowed(authorization: str | None, client_host: str | None, token: str | None = None) -> bool:
    """With a token configured (QMS_METRICS_TOKEN): exactly `Bearer <token>`; without: loopback callers only."""
    token = os.environ.get(METRICS_TOKEN_ENV, "") if token is None else token
    if token:
        return hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())
    return client_host in {"127.0.0.1", "::1", "localhost"}
