"""`/metrics`: Prometheus text with the writer's and the queue's figures, and nothing personal."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.edge.web.conftest import Api


def _samples(client: TestClient[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_follow_the_queue(api: Api, client: TestClient[Any]) -> None:
    api.enqueue("teller")
    api.enqueue("teller")
    api.call_next_ok("1")
    assert api.post("/tickets", {"service_id": "nope"}).status_code == 422
    samples = _samples(client)
    assert samples[("qms_tickets", (("service", "teller"), ("status", "waiting")))] == 1
    assert samples[("qms_tickets", (("service", "teller"), ("status", "called")))] == 1
    assert samples[("qms_commands_total", (("command", "Enqueue"), ("outcome", "ok")))] == 2
    assert samples[("qms_commands_total", (("command", "Enqueue"), ("outcome", "refused")))] == 1
    assert samples[("qms_log_seq", ())] == api.snapshot()["seq"]
    assert samples[("qms_counters", (("presence", "available"),))] == 1  # the call opened counter 1
    assert samples[("qms_counters", (("presence", "closed"),))] == 5  # nobody at the others
    assert "A001" not in client.get("/metrics").text  # aggregates only
