"""The appliance's correlation ids, per-route HTTP metrics, host metrics and public-door rate limits (issue 16)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edge.web.rate_limits import PublicRateLimits
from sync.rate_limit import Limit, RateLimiter
from tests.ops.conftest import FakeClock
from tests.support.appliance import mint_token


def _kiosk(client: TestClient[Any], data_dir: Path, n: int, **extra: Any) -> Any:
    token = mint_token(data_dir, "admin")  # admin is a kiosk role in the demo
    body = {"service_id": "teller", "request_id": f"ops-{n:04d}-{time.monotonic_ns()}", **extra}
    return client.post("/kiosk/api/tickets", json=body, headers={"Authorization": f"Bearer {token}"})


def _samples(client: TestClient[Any]) -> dict[str, list[Any]]:
    text = client.get("/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_a_valid_request_id_is_echoed_and_a_bad_one_replaced(edge_client: TestClient[Any]) -> None:
    r = edge_client.get("/api/v1/health", headers={"X-Request-ID": "kiosk-7.abc:123"})
    assert r.headers["x-request-id"] == "kiosk-7.abc:123"
    bad = edge_client.get("/api/v1/health", headers={"X-Request-ID": 'x" \\ injected'})
    assert bad.headers["x-request-id"] != 'x" \\ injected'
    assert len(bad.headers["x-request-id"]) == 32
    missing = edge_client.get("/no/such/page")
    assert missing.status_code == 404
    assert len(missing.headers["x-request-id"]) == 32  # even answers no route handled carry one


def test_http_latency_is_labelled_by_route_template(edge_client: TestClient[Any], edge_data: Path) -> None:
    token = mint_token(edge_data, "admin")
    for ticket in ("T-1", "T-2", "T-3"):
        edge_client.get(f"/api/v1/tickets/{ticket}", headers={"Authorization": f"Bearer {token}"})
    edge_client.get("/random/scan/abc")
    samples = _samples(edge_client)
    routes = {s.labels["route"] for s in samples["qms_http_request_duration_seconds"]}
    assert "/api/v1/tickets/{ticket_id}" in routes
    assert "unmatched" in routes
    assert not any("T-1" in route or "abc" in route for route in routes)  # low cardinality: templates only
    counts = {(s.labels["route"], s.labels["status"]): s.value for s in samples["qms_http_requests"]
              if s.name == "qms_http_requests_total"}  # fmt: skip
    assert counts[("/api/v1/tickets/{ticket_id}", "4xx")] == 3


def test_host_metrics_disk_backup_age_and_devices(
    edge_client: TestClient[Any], edge_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = _samples(edge_client)
    assert samples["qms_disk_free_bytes"][0].value > 0
    assert "qms_backup_last_success_timestamp_seconds" not in samples  # never backed up: absent
    backups = edge_data.parent / "backups"
    backups.mkdir()
    (backups / "b1.tar.gz").write_bytes(b"x")
    os.utime(backups / "b1.tar.gz", (1_700_000_000, 1_700_000_000))
    assert _samples(edge_client)["qms_backup_last_success_timestamp_seconds"][0].value == 1_700_000_000
    assert "qms_devices" in samples


def test_kiosk_issue_is_limited_per_address_with_retry_after(
    edge_client: TestClient[Any], edge_data: Path, rate_clock: FakeClock
) -> None:
    for n in range(3):
        assert _kiosk(edge_client, edge_data, n).status_code == 201
    refused = _kiosk(edge_client, edge_data, 3)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "too_many_requests"
    assert refused.headers["retry-after"] == "20"  # 3 per 60 s: one more after 20 s
    rate_clock.now += 20
    assert _kiosk(edge_client, edge_data, 4).status_code == 201


def test_status_links_and_login_have_their_own_budgets(edge_client: TestClient[Any], rate_clock: FakeClock) -> None:
    codes = [edge_client.get("/t/not-a-real-link-token").status_code for _ in range(6)]
    assert codes == [404] * 5 + [429]
    logins = [edge_client.post("/api/v1/auth/token", json={"username": "nobody", "password": "x"}).status_code
              for _ in range(3)]  # fmt: skip
    assert logins == [401, 401, 429]
    assert edge_client.get("/api/v1/health").status_code == 200  # other routes are not limited
    rate_clock.now += 60
    assert edge_client.get("/t/not-a-real-link-token").status_code == 404


def test_each_key_has_its_own_bucket_and_refills_with_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limit(2, 10), clock)
    assert [limiter.take("10.0.0.1") for _ in range(3)] == [0, 0, 5]
    assert limiter.take("10.0.0.2") == 0  # another address: a full budget
    clock.now += 5
    assert limiter.take("10.0.0.1") == 0
    assert limiter.take("10.0.0.1") == 5


def test_limits_parse_and_refuse_nonsense() -> None:
    assert Limit.parse("60/minute") == Limit(60, 60.0)
    assert Limit.parse("5/second") == Limit(5, 1.0)
    assert Limit.parse("30/10") == Limit(30, 10.0)
    assert Limit.parse("0").off
    with pytest.raises(ValueError, match="QMS_RATE_LOGIN"):
        PublicRateLimits.from_env({"QMS_RATE_LOGIN": "many/fortnight"})


def test_no_route_replaces_the_rate_limit_hook(edge_data: Path, rate_clock: FakeClock) -> None:
    """A route declaring its own before_request would silently drop the public doors' limits: none does."""
    from edge.web.app import Settings, create_app

    limits = PublicRateLimits.from_env({}, rate_clock)
    app = create_app(Settings(data_dir=edge_data, rate_limits=limits))
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            assert handler.resolve_before_request() == limits.before_request, handler
