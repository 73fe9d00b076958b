"""`qms-edge demo` as a new user runs it: the banner's logins, board and kiosk addresses work against the server."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.appliance import free_port, qms_edge_command, run_cli, terminate

pytestmark = pytest.mark.slow


def test_the_demo_banner_gives_working_addresses(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo-data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QMS_VOICE_AUTOBUILD": "0"}
    cmd = [*qms_edge_command(), "demo", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
           "--no-mdns", "--log-level", "warning"]  # fmt: skip
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            banner = log.read_text()
            kiosk = re.search(r"(http://\S+/kiosk#token=(\S+))", banner)
            assert kiosk, banner
            token = kiosk.group(2)
            kiosk_url = kiosk.group(1).replace("localhost", "127.0.0.1")
            assert httpx.get(kiosk_url.split("#")[0], timeout=10).status_code == 200
            r = httpx.post(f"{base}/kiosk/api/tickets", json={"service_id": "teller", "request_id": "demo-1"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            assert r.json()["ticket"]["ticket_number"] == "A001"
            (board,) = re.findall(r"(http://\S+/board\?area=lantai-1&key=\S+)", banner)
            assert httpx.get(board.replace("localhost", "127.0.0.1"), timeout=10).status_code == 200
            login = httpx.post(f"{base}/api/v1/auth/token", json={"username": "agent1", "password": "demo"}, timeout=10)
            assert login.status_code == 200
            # The same address again, for a kiosk set up later: `qms-edge kiosk url`.
            again = run_cli("kiosk", "url", "kiosk-1", "--base", base, "--data-dir", str(data))
            assert again.returncode == 0, again.stderr
            assert again.stdout.startswith(f"{base}/kiosk#token=")
            missing = run_cli("kiosk", "url", "kiosk-9", "--data-dir", str(data))
            assert missing.returncode == 1
            assert "qms-edge users add kiosk-9 --role device" in missing.stderr
        finally:
            terminate(proc, 10)
