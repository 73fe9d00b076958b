"""The hub's /metrics (guarded; lag per branch, link state, consumer counters, outbox, HTTP latency by route) and
its per-credential and per-tenant rate limits with an injected clock (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.liveness import record_beat
from cloud.ops.metrics import HubCollector, scrape_allowed
from cloud.ops.rate_limits import HubRateLimits
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.liveness import Heartbeat
from sync.rate_limit import Limit, RateLimiter
from sync.relay import event_subject
from tests.cloud.branch_events import make_branch_events
from tests.ops.conftest import FakeClock

PASSWORD = "Hub-Ops-Test-Pw-42"
TOKEN = "scrape-token-for-tests"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> list[Incoming]:
    events = make_branch_events(tmp_path_factory.mktemp("branch") / "acme", "jkt-sudirman", tickets=4)
    return [Incoming(event_subject("acme", "jkt-sudirman"), o.payload) for o in events]


@pytest.fixture
def store(tmp_path: Path, shipped: list[Incoming]) -> str:
    """A hub store with acme's branch applied except its last two events, a heartbeat saying so, two accounts."""
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    apply_batch(engine, shipped[:-2])
    last = len(shipped)
    record_beat(engine, Heartbeat(tenant="acme", branch_id="jkt-sudirman", sent_at=datetime.now(UTC),
                                  interval_seconds=10.0, last_seq=last, acked_seq=last - 2, lag_events=2,
                                  software_version="test"))  # fmt: skip
    upsert_user(engine, "ana", PASSWORD, "hq_viewer", ["acme"])
    upsert_user(engine, "bob", PASSWORD, "hq_viewer", ["acme"])
    engine.dispose()
    return url


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_need_the_token_or_a_local_caller(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_METRICS_TOKEN", TOKEN)
    with TestClient(create_app(CloudSettings(db_url=store))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert scrape_allowed(None, "127.0.0.1", token="")
    assert scrape_allowed(None, "::1", token="")
    assert not scrape_allowed(None, "10.1.2.3", token="")
    assert not scrape_allowed("Bearer x", "10.1.2.3", token="")


def test_lag_link_state_consumer_and_http_metrics(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_METRICS_TOKEN", TOKEN)
    with TestClient(create_app(CloudSettings(db_url=store))) as client:
        assert client.get("/api/v1/branches", auth=("ana", PASSWORD)).status_code == 200
        client.get("/api/v1/health")
        r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "scrape-1"})
        assert r.headers["x-request-id"] == "scrape-1"
        families = _families(r.text)
    labels = {"tenant": "acme", "branch": "jkt-sudirman"}
    lag = [s for s in families["qms_hub_branch_lag_events"].samples if s.labels == labels]
    assert lag[0].value == 2
    seconds = [s for s in families["qms_hub_branch_lag_seconds"].samples if s.labels == labels]
    assert seconds[0].value > 0  # behind: the newest applied event has an age
    assert [s.value for s in families["qms_hub_branch_online"].samples if s.labels == labels] == [1.0]
    assert [s.labels["status"] for s in families["qms_hub_branch_log_ok"].samples] == ["ok"]
    assert families["qms_hub_consuming"].samples[0].value == 0  # no NATS configured in this app
    routes = {s.labels["route"] for s in families["qms_http_request_duration_seconds"].samples}
    assert {"/api/v1/branches", "/api/v1/health"} <= routes
    assert "qms_notify_outbox_backlog" in families  # the notify area's collector, registered through the hook
    assert "qms_hub_sse_connections" in families


def test_lag_seconds_is_zero_once_caught_up(store: str, shipped: list[Incoming]) -> None:
    engine = create_store_engine(store)
    apply_batch(engine, shipped[-2:])
    collector = HubCollector(engine, lambda: None, lambda: datetime.now(UTC))
    families = {m.name: m for m in collector.collect()}
    assert [s.value for s in families["qms_hub_branch_lag_seconds"].samples] == [0.0]
    engine.dispose()


def _hub(store: str, clock: FakeClock, per_token: Limit, per_tenant: Limit) -> Any:
    limits = HubRateLimits(RateLimiter(per_token, clock), RateLimiter(per_tenant, clock))
    return create_app(CloudSettings(db_url=store, rate_limits=limits))


def test_each_credential_has_its_budget_and_429_is_a_problem(store: str) -> None:
    clock = FakeClock()
    with TestClient(_hub(store, clock, Limit(2, 60), Limit(100, 60))) as client:
        codes = [client.get("/api/v1/branches", auth=("ana", PASSWORD)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = client.get("/api/v1/branches", auth=("ana", PASSWORD))
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["retry-after"] == "30"
        assert refused.json()["code"] == "too_many_requests"
        assert client.get("/api/v1/branches", auth=("bob", PASSWORD)).status_code == 200  # another credential
        assert client.get("/api/v1/health").status_code == 200  # public routes are not limited here
        clock.now += 30
        assert client.get("/api/v1/branches", auth=("ana", PASSWORD)).status_code == 200


def test_a_tenant_budget_is_shared_by_its_credentials(store: str) -> None:
    clock = FakeClock()
    with TestClient(_hub(store, clock, Limit(100, 60), Limit(3, 60))) as client:
        codes = [client.get("/api/v1/branches", auth=(user, PASSWORD)).status_code for user in ("ana", "bob") * 2]
        assert codes == [200, 200, 200, 429]
        assert "tenant" in client.get("/api/v1/branches", auth=("ana", PASSWORD)).json()["detail"]


def test_the_limits_come_from_the_environment() -> None:
    limits = HubRateLimits.from_env({"QMS_HUB_RATE_PER_TOKEN": "5/second", "QMS_HUB_RATE_PER_TENANT": "0"})
    assert limits.per_token.limit == Limit(5, 1.0)
    assert limits.per_tenant.limit.off
    with pytest.raises(ValueError, match="QMS_HUB_RATE_PER_TENANT"):
        HubRateLimits.from_env({"QMS_HUB_RATE_PER_TENANT": "lots"})


def test_the_open_console_is_limited_as_one_caller(tmp_path: Path) -> None:
    clock = FakeClock()
    with TestClient(_hub(f"sqlite:///{tmp_path / 'open.sqlite3'}", clock, Limit(2, 60), Limit(100, 60))) as client:
        assert [client.get("/api/v1/branches").status_code for _ in range(3)] == [200, 200, 429]


def test_no_route_replaces_the_rate_limit_hook(store: str) -> None:
    """A route (or router) declaring its own before_request would silently drop the limits: none does."""
    limits = HubRateLimits.from_env({})
    app = create_app(CloudSettings(db_url=store, rate_limits=limits))
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            assert handler.resolve_before_request() == limits.before_request, handler
