"""SSO starts are limited per client address (E-PLAT-02): the hub's `/sso/start` and `/sso/staff/go` (browsers,
QMS_HUB_RATE_SSO_START) and `/sso/staff/begin` (appliances, QMS_HUB_RATE_SSO_BEGIN), each route its own budget, and
the appliance's `/staff/sso/start` (QMS_RATE_SSO_START): past the budget, 429 problem+json with Retry-After."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from cloud.web.app import CloudSettings, create_app
from edge.web.app import Settings
from edge.web.app import create_app as create_edge_app
from edge.web.rate_limits import PublicRateLimits
from tests.support.appliance import seed_demo


def test_the_hubs_sso_starts_are_limited_per_address(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QMS_HUB_RATE_SSO_START", "3/minute")
    monkeypatch.setenv("QMS_HUB_RATE_SSO_BEGIN", "1/minute")
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        starts = [client.get("/sso/start?tenant=nobody", follow_redirects=False) for _ in range(4)]
        assert [r.status_code for r in starts] == [303, 303, 303, 429]  # no SSO for that code: back to sign-in
        refused = starts[-1]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["retry-after"] == "20"  # 3 per 60 s: one more after 20 s
        assert refused.json()["code"] == "too_many_requests"
        assert "this address" in refused.json()["detail"]
        assert client.get("/sso/staff/go?t=x", follow_redirects=False).status_code == 303  # its own budget
        begins = [client.post("/sso/staff/begin", json={"request": "not.signed"}).status_code for _ in range(2)]
        assert begins == [400, 429]
        assert client.get("/signin").status_code == 200  # other routes are not limited by it


def test_the_appliances_sso_start_is_limited_per_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMS_HUB_URL", raising=False)  # no hub: each start says SSO is unavailable
    seed_demo(tmp_path / "edge")
    limits = PublicRateLimits.from_env({"QMS_RATE_SSO_START": "2/minute"})
    with TestClient(create_edge_app(Settings(data_dir=tmp_path / "edge", rate_limits=limits))) as client:
        codes = [client.get("/staff/sso/start", follow_redirects=False) for _ in range(3)]
        assert [r.status_code for r in codes] == [303, 303, 429]
        assert codes[-1].headers["retry-after"] == "30"
        assert codes[-1].json()["code"] == "too_many_requests"
