"""`qms-edge serve` logs in to the cloud with `QMS_NATS_USER` / `QMS_NATS_PASSWORD` (a user/password NATS account
instead of an NKey): before, only `qms-edge demo` read them and `serve` connected anonymously and was refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cloud.credentials import branch_permissions
from tests.support.appliance import RunningAppliance, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.sync.test_link_status import HUB_PASSWORD, TENANT, create_stream, replication

pytestmark = pytest.mark.slow


def test_serve_logs_in_with_the_nats_user_and_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = [
        {"user": "hub", "password": HUB_PASSWORD},
        {"user": "branch-edge", "password": "edge-secret", "permissions": branch_permissions(TENANT, "jkt-sudirman")},
    ]
    config = "authorization {\n  users = [\n" + ",\n".join(json.dumps(u) for u in users) + "\n  ]\n}\n"
    with NatsServer(tmp_path / "nats", config=config) as server:
        asyncio.run(create_stream(server))
        seed_demo(tmp_path / "edge")
        monkeypatch.setenv("QMS_NATS_URL", server.url)
        monkeypatch.setenv("QMS_TENANT", TENANT)
        monkeypatch.setenv("QMS_NATS_USER", "branch-edge")
        monkeypatch.setenv("QMS_NATS_PASSWORD", "edge-secret")
        with RunningAppliance(tmp_path / "edge") as appliance:
            linked = wait_until(lambda: (r := replication(appliance))["link"] == "connected" and r, what="link up")
            assert linked["link_error"] in (None, "")
            wait_until(lambda: replication(appliance)["lag_events"] == 0, what="the log shipped")
            assert "edge-secret" not in appliance.log()
