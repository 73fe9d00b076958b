"""Prometheus metrics of the appliance, read from the writer and the live view at scrape time (no hot-path cost)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.service import QueueService


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


def registry_for(service: QueueService, sse_clients: Callable[[], int]) -> CollectorRegistry:
    """A registry of its own per app (tests create many apps in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplianceCollector(service, sse_clients))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)
