"""`qms-edge demo` as a new user runs it: every address the banner prints works, and `make demo` installs only the
appliance (ESPHome and the test tools belong to `make test`)."""

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
ROOT = Path(__file__).resolve().parents[2]


def one(pattern: str, banner: str) -> str:
    """The single address in the banner matching `pattern`, as this test reaches it."""
    found = re.findall(pattern, banner)
    assert len(found) == 1, (pattern, banner)
    return str(found[0]).replace("localhost", "127.0.0.1")


def test_the_demo_banner_gives_working_addresses(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo-data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QMS_VOICE_AUTOBUILD": "0"}
    cmd = [*qms_edge_command(), "demo", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
           "--no-mdns", "--log-level", "warning"]  # fmt: skip
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        started = time.monotonic()
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
            print(f"qms-edge demo: health OK {time.monotonic() - started:.1f} s after start (fresh data dir)")
            banner = log.read_text()
            kiosk_url = one(r"(http://\S+/kiosk#token=\S+)", banner)
            token = kiosk_url.split("#token=")[1]
            assert httpx.get(kiosk_url.split("#")[0], timeout=10).status_code == 200
            r = httpx.post(f"{base}/kiosk/api/tickets", json={"service_id": "teller", "request_id": "demo-1"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            assert r.json()["ticket"]["ticket_number"] == "A001"  # what the banner's "what to do next" promises
            board = one(r"(http://\S+/board\?area=lantai-1&key=\S+)", banner)
            assert httpx.get(board, timeout=10).status_code == 200
            staff = one(r"(http://\S+/staff/login)", banner)
            assert "password" in httpx.get(staff, timeout=10).text.lower()
            for name in ("agent1", "agent4", "supervisor", "admin"):  # the logins the banner lists
                assert re.search(rf"\b{name}\b", banner), name
                login = httpx.post(f"{base}/api/v1/auth/token", json={"username": name, "password": "demo"},
                                   timeout=10)  # fmt: skip
                assert login.status_code == 200, (name, login.text)
            status = httpx.get(one(r"(http://\S+/t/\S+)", banner), timeout=10)
            assert status.status_code == 200
            assert "B001" in status.text  # the example ticket the demo keeps waiting
            assert httpx.get(one(r"(http://\S+/schema)\s", banner), timeout=10).status_code == 200
            assert "qms_" in httpx.get(one(r"(http://\S+/metrics)\s", banner), timeout=10).text
            assert "What to do next" in banner
            # The same address again, for a kiosk set up later: `qms-edge kiosk url`.
            again = run_cli("kiosk", "url", "kiosk-1", "--base", base, "--data-dir", str(data))
            assert again.returncode == 0, again.stderr
            assert again.stdout.startswith(f"{base}/kiosk#token=")
            missing = run_cli("kiosk", "url", "kiosk-9", "--data-dir", str(data))
            assert missing.returncode == 1
            assert "qms-edge users add kiosk-9 --role device" in missing.stderr
        finally:
            terminate(proc, 10)


def test_make_demo_installs_the_appliance_only(tmp_path: Path) -> None:
    def plan(target: str) -> str:
        run = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}", f"ESPHOME_VENV={tmp_path / 'esp'}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return run.stdout

    demo = plan("demo")
    assert "pip install -q -e ." in demo
    assert "[test]" not in demo
    assert "esphome" not in demo.lower()
    assert "qms-edge demo" in demo
    test = plan("test")
    assert "'.[test]'" in test
    assert "esphome==" in test  # the firmware checks still get their tool
