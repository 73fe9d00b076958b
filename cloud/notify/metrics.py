"""Prometheus metrics of notifications, for the hub's `/metrics` (issue 16 builds the endpoint and includes them):
messages by channel and status and the outbox backlog, read from the database at scrape time (so every replica
reports the same truth), plus this process's send attempts by channel and outcome.

    from cloud.notify.metrics import register
    register(registry, engine)   # once, with the CollectorRegistry /metrics serves
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from cloud.notify.tables import outbox

BACKLOG_STATUSES = ("pending", "sending", "failed")
ATTEMPTS = Counter(
    "qms_notify_attempts",
    "Send attempts of this hub process, by channel and outcome (sent, retry, permanent).",
    ["channel", "outcome"],
    registry=None,  # registered by `register` into whichever registry /metrics serves
)


def count_attempt(channel: str, outcome: str, status: str) -> None:
    """Count one attempt (called by the dispatcher after recording it)."""
    del status
    ATTEMPTS.labels(channel=channel, outcome=outcome).inc()


class OutboxCollector(Collector):
    """`qms_notify_messages{channel,status}` and `qms_notify_outbox_backlog{channel}` from the outbox table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One grouped count per scrape."""
        messages = GaugeMetricFamily(
            "qms_notify_messages", "Outbox rows by channel and status.", labels=["channel", "status"]
        )
        backlog = GaugeMetricFamily(
            "qms_notify_outbox_backlog", "Messages still to send (pending, sending, failed awaiting retry).",
            labels=["channel"],
        )  # fmt: skip
        waiting: dict[str, int] = {}
        query = sa.select(outbox.c.channel, outbox.c.status, sa.func.count()).group_by(
            outbox.c.channel, outbox.c.status
        )
        with self.engine.connect() as conn:
            for channel, status, count in conn.execute(query):
                messages.add_metric([channel, status], count)
                if status in BACKLOG_STATUSES:
                    waiting[channel] = waiting.get(channel, 0) + count
        for channel, count in sorted(waiting.items()):
            backlog.add_metric([channel], count)
        yield messages
        yield backlog

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Nothing up front: registering must not query the database."""
        return iter(())


def register(registry: CollectorRegistry, engine: Engine) -> None:
    """Add the notify metrics to `registry` (the one the hub's /metrics serves)."""
    registry.register(OutboxCollector(engine))
    registry.register(ATTEMPTS)


def registry_for(engine: Engine) -> CollectorRegistry:
    """A registry with only the notify metrics (tests, or a hub without the ops area's /metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    register(registry, engine)
    return registry
