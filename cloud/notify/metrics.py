"""Prometheus metrics of notifications, for the hub's `/metrics` (issue 16 builds the endpoint and includes them):
messages by channel and status and the outbox backlog, read from the database at scrape time (so every replica
reports the same truth), plus this process's send attempts by channel and outcome; and the same two for booking
confirmations and reminders (`appt_messages`, issue 15): `qms_booking_messages{channel,status}` and
`qms_booking_messages_backlog{channel}`.

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

from cloud.appointments.tables import appt_messages
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
    """`qms_notify_messages{channel,status}` and `qms_notify_outbox_backlog{channel}` from the outbox table (or,
    named so, the same two of another outbox table with `channel` and `status` columns)."""

    def __init__(self, engine: Engine, table: sa.Table = outbox, prefix: str = "qms_notify_messages",
                 backlog: str = "qms_notify_outbox_backlog", what: str = "Outbox rows") -> None:  # fmt: skip
        self.engine = engine
        self.table = table
        self.names = (prefix, backlog, what)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One grouped count per scrape."""
        name, backlog_name, what = self.names
        messages = GaugeMetricFamily(name, f"{what} by channel and status.", labels=["channel", "status"])
        backlog = GaugeMetricFamily(
            backlog_name, f"{what} still to send (pending, sending, failed awaiting retry).", labels=["channel"]
        )
        waiting: dict[str, int] = {}
        table = self.table
        query = sa.select(table.c.channel, table.c.status, sa.func.count()).group_by(table.c.channel, table.c.status)
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
    registry.register(OutboxCollector(engine, appt_messages, "qms_booking_messages", "qms_booking_messages_backlog",
                                      "Booking messages (confirmations, reminders)"))  # fmt: skip
    registry.register(ATTEMPTS)


def registry_for(engine: Engine) -> CollectorRegistry:
    """A registry with only the notify metrics (tests, or a hub without the ops area's /metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    register(registry, engine)
    return registry
