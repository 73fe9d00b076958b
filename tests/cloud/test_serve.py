"""`qms-cloud serve` as a subprocess (uvicorn + Litestar + the durable consumers in its lifespan) with a running
appliance shipping to it: the console lists the branch with its events and queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.appliance import RunningAppliance, free_port, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow


def test_qms_cloud_serve_consumes_and_shows_the_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = NatsServer(tmp_path / "nats").start()
    port = free_port()
    log = (tmp_path / "cloud.log").open("wb")
    cloud = subprocess.Popen(
        [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url",
         f"sqlite:///{tmp_path / 'cloud.sqlite3'}", "--nats-url", server.url, "--port", str(port),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def health() -> bool:
            try:
                return httpx.get(f"{base}/api/v1/health", timeout=2).json()["consuming"] is True
            except httpx.HTTPError:
                return cloud.poll() is not None  # stop waiting if it died; asserted below

        wait_until(health, timeout=90, what="qms-cloud serve")
        assert cloud.poll() is None, (tmp_path / "cloud.log").read_text()
        seed_demo(tmp_path / "edge")
        monkeypatch.setenv("QMS_NATS_URL", server.url)
        monkeypatch.setenv("QMS_TENANT", "acme")
        with RunningAppliance(tmp_path / "edge") as appliance:
            for _ in range(3):
                r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"},
                               headers=appliance.headers("agent1"), timeout=10)  # fmt: skip
                assert r.status_code == 201
            seq = httpx.get(f"{appliance.api}/health", timeout=5).json()["seq"]

            def shipped() -> dict[str, object] | None:
                branches = httpx.get(f"{base}/api/v1/branches", timeout=5).json()["branches"]
                found = [b for b in branches if b["branch_id"] == "jkt-sudirman" and b["events"] == seq]
                return found[0] if found else None

            branch = wait_until(shipped, timeout=30, what="the branch at the cloud")
        assert branch["link"] == "ok"
        assert branch["queue"] == {"teller": {"waiting": 3, "called": 0, "serving": 0}}
        page = httpx.get(base, timeout=5)
        assert page.status_code == 200
        assert "jkt-sudirman" in page.text
    finally:
        cloud.terminate()
        cloud.wait(timeout=15)
        log.close()
        server.stop()
