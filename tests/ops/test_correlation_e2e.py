"""One correlation id from an HTTP request at a real appliance, through a real nats-server, into the hub's log; and
neither process logs a phone number, an e-mail address, a password or a token on the way (issue 16, E-PLAT-01)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.appliance import RunningAppliance, free_port, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.support.providers.twilio import TwilioStandIn

pytestmark = pytest.mark.slow

PHONE = "+6281299887766"
EMAIL = "siti.rahma@example.co.id"
WRONG_PASSWORD = "Wr0ng-Zebra-7731"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_text(errors="replace").splitlines() if raw.startswith("{")]


def _start_hub(tmp_path: Path, nats_url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, log_path = free_port(), tmp_path / "cloud.log"
    with log_path.open("wb") as log:
        hub = subprocess.Popen(
            [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url",
             f"sqlite:///{tmp_path / 'cloud.sqlite3'}", "--nats-url", nats_url, "--port", str(port),
             "--log-level", "debug"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "QMS_LOG_FORMAT": "json"},
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def consuming() -> bool:
        try:
            return httpx.get(f"{base}/api/v1/health", timeout=2).json()["consuming"] is True
        except httpx.HTTPError:
            return hub.poll() is not None

    wait_until(consuming, timeout=90, what="qms-cloud serve")
    assert hub.poll() is None, log_path.read_text()
    return hub, base, log_path


def _use_sms(db: Path, twilio: TwilioStandIn) -> None:
    """The tenant sends SMS through the Twilio stand-in (as the console's provider settings would)."""
    from cloud.notify import policy
    from cloud.notify.providers import twilio as twilio_provider
    from cloud.store import create_store_engine

    engine = create_store_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            settings = {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                        "from_number": "+15005550006", "base_url": twilio.base_url}  # fmt: skip
            policy.save_provider(conn, "acme", "sms", "twilio", settings, twilio_provider.SECRETS)
    finally:
        engine.dispose()


def test_a_request_id_reaches_the_hub_log_and_no_contact_or_secret_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = NatsServer(tmp_path / "nats").start()
    hub, _base, hub_log = _start_hub(tmp_path, server.url)
    twilio = TwilioStandIn().start()  # the SMS provider: its request must carry the same id (issue 16 "Must show")
    _use_sms(tmp_path / "cloud.sqlite3", twilio)
    correlation_id = f"e2e-{uuid.uuid4().hex}"
    try:
        seed_demo(tmp_path / "edge")
        monkeypatch.setenv("QMS_NATS_URL", server.url)
        monkeypatch.setenv("QMS_TENANT", "acme")
        monkeypatch.setenv("QMS_LOG_FORMAT", "json")
        with RunningAppliance(tmp_path / "edge", args=("--log-level", "debug")) as appliance:
            refused = httpx.post(f"{appliance.api}/auth/token", json={"username": "agent1", "password": WRONG_PASSWORD})
            assert refused.status_code == 401
            signed_in = httpx.post(f"{appliance.api}/auth/token", json={"username": "admin", "password": "demo"})
            token = signed_in.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller", "phone": PHONE, "email": EMAIL},
                           headers={**auth, "X-Request-ID": correlation_id}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            assert r.headers["x-request-id"] == correlation_id
            kiosk = httpx.post(f"{appliance.base_url}/kiosk/api/tickets", headers=auth, timeout=10,
                               json={"service_id": "teller", "request_id": "kiosk-e2e-1"})  # fmt: skip
            assert kiosk.status_code == 201, kiosk.text
            link = kiosk.json()["status_url"]
            httpx.get(link, timeout=10)
            link_token = link.rsplit("/t/", 1)[1]
            seq = r.json().get("seq", None)

            def hub_line() -> dict[str, Any] | None:
                found = [x for x in _json_lines(hub_log) if x.get("correlation_id") == correlation_id]
                return found[0] if found else None

            line = wait_until(hub_line, timeout=30, what=f"the hub's log line for {correlation_id}")

            def provider_request() -> bool:
                return any(r.headers.get("x-request-id") == correlation_id for r in twilio.requests)

            wait_until(provider_request, timeout=30, what=f"the SMS provider's request with {correlation_id}")
            edge_log = appliance.log_path.read_text(errors="replace")
        edge_lines = [json.loads(x) for x in edge_log.splitlines() if x.startswith("{")]
        posted = [x for x in edge_lines if x["logger"] == "qms.http" and x.get("correlation_id") == correlation_id]
        assert posted
        assert posted[0]["message"].startswith("POST /api/v1/tickets -> 201")
        assert any(x["message"].startswith("GET /t/[token] -> 200") for x in edge_lines)  # the link, hidden
        assert line["logger"] == "qms.cloud.consumer"
        assert "applied event acme/jkt-sudirman seq" in line["message"]
        if seq is not None:
            assert line["message"].endswith(f"seq {seq}")
    finally:
        hub.terminate()
        hub.wait(timeout=15)
        twilio.stop()
        server.stop()
    logs = edge_log + hub_log.read_text(errors="replace")
    assert len(logs) > 0
    for secret in (PHONE, PHONE[1:], "81299887766", EMAIL, WRONG_PASSWORD, token, link_token):
        assert secret not in logs, f"{secret!r} was logged"
