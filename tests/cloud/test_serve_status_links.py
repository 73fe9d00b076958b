"""End to end: a kiosk ticket's status link points at the cloud, which serves it once the ticket replicated.

A real nats-server with the hub's and the branch's NKeys, `qms-cloud serve --keys-dir` and `qms-edge serve` with the
branch's seed and `kiosk.public_base_url` = the cloud's address, both as subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import pytest

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from edge.demo import demo_config
from sync.contract_config import Kiosk
from tests.support.appliance import RunningAppliance, free_port, mint_token, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
USERS = [("kiosk-1", "device", []), ("agent1", "agent", ["1", "2"])]


@contextmanager
def cloud_hub(tmp_path: Path, db_url: str, nats_url: str, keys: Path) -> Iterator[str]:
    """`qms-cloud serve` on a free port, consuming with the hub's key; yields its base URL."""
    port = free_port()
    log = (tmp_path / "cloud.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url", db_url, "--nats-url", nats_url,
         "--nats-nkey", str(keys / HUB_KEY), "--keys-dir", str(keys), "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def consuming() -> bool:
        try:
            return httpx.get(f"{base}/api/v1/health", timeout=2).json()["consuming"] is True
        except httpx.HTTPError:
            return proc.poll() is not None  # stop waiting if it died; asserted below

    try:
        wait_until(consuming, timeout=90, what="qms-cloud serve")
        assert proc.poll() is None, (tmp_path / "cloud.log").read_text()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_the_kiosk_qr_opens_the_cloud_status_page(tmp_path: Path) -> None:
    keys, db_url = tmp_path / "keys", f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(db_url)
    seed_file = issue(engine, keys, TENANT, BRANCH).seed_file  # what `qms-cloud branch add` does
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    engine.dispose()
    try:
        with cloud_hub(tmp_path, db_url, server.url, keys) as cloud:
            config = msgspec.structs.replace(demo_config(), kiosk=Kiosk(public_base_url=f"{cloud}/"))
            seed_demo(tmp_path / "edge", config, USERS)
            args = ("--nats-url", server.url, "--tenant", TENANT, "--nats-nkey", str(seed_file))
            with RunningAppliance(tmp_path / "edge", args=args) as appliance:
                kiosk = {"Authorization": f"Bearer {mint_token(tmp_path / 'edge', 'kiosk-1', users=USERS)}"}
                r = httpx.post(f"{appliance.base_url}/kiosk/api/tickets", headers=kiosk, timeout=10,
                               json={"service_id": "teller", "request_id": "qr-1", "lang": "en"})  # fmt: skip
                assert r.status_code == 201, r.text
                url, number = r.json()["status_url"], r.json()["ticket"]["ticket_number"]
                assert url.startswith(f"{cloud}/t/")

                def shows(*texts: str) -> str | None:
                    page = httpx.get(url, timeout=5)
                    return page.text if page.status_code == 200 and all(t in page.text for t in texts) else None

                wait_until(lambda: shows(number, ">Waiting<"), timeout=30, what="the ticket at the cloud")
                agent = {"Authorization": f"Bearer {mint_token(tmp_path / 'edge', 'agent1', users=USERS)}"}
                called = httpx.post(f"{appliance.api}/counters/1/call-next", headers=agent, timeout=10)
                assert called.json()["ticket"]["ticket_number"] == number, called.text
                page = wait_until(lambda: shows(number, "Called", "Loket 1"), timeout=30, what="the call")
                assert "Loket 1" in page
                altered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
                assert httpx.get(altered, timeout=5).status_code == 404
                assert httpx.get(f"{appliance.base_url}{url.removeprefix(cloud)}", timeout=5).status_code == 200
    finally:
        server.stop()
