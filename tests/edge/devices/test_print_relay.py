"""The kiosk computer's print relay (firmware-configs/launcher, `--relay-only`): the job's bytes reach the printer
exactly, failures are structured, only the appliance's origin may print, and it runs on the standard library alone."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import free_port
from tests.support.print_relay import load_launcher, running_relay

APPLIANCE = "http://10.0.0.2:8080"  # the origin of the kiosk page
JOB = b"\x1b@\x1b!\x00OFFLINE A001\n\x1d(k\x03\x001C\x06" + bytes(range(256)) + b"\x1dV\x00"  # any bytes, as they are


def post_job(url: str, job: bytes = JOB, origin: str | None = APPLIANCE) -> httpx.Response:
    """What the kiosk page sends: JSON {"job": base64} from the appliance's origin."""
    headers = {"Origin": origin} if origin else {}
    return httpx.post(f"{url}/print", json={"job": base64.b64encode(job).decode()}, headers=headers, timeout=10)


def test_the_job_reaches_the_printer_byte_for_byte() -> None:
    with PrinterSink() as sink, running_relay(f"tcp://127.0.0.1:{sink.port}", APPLIANCE) as url:
        r = post_job(url)
        assert (r.status_code, r.json()) == (200, {"ok": True, "bytes": len(JOB)})
        assert r.headers["access-control-allow-origin"] == APPLIANCE
        raw = httpx.post(f"{url}/print", content=JOB, headers={"Content-Type": "application/octet-stream"})
        assert raw.status_code == 200, raw.text
        assert sink.wait_for_jobs(2) == [JOB, JOB]  # exactly those bytes: no status query, nothing added
        health = httpx.get(f"{url}/health", timeout=10)
    assert health.json() == {"ok": True, "printer": f"tcp://127.0.0.1:{sink.port}"}


def test_a_usb_device_file_gets_the_job(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    os.mkfifo(device)
    reader = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with running_relay(f"file://{device}", APPLIANCE) as url:
            assert post_job(url).status_code == 200
        received = b""
        while chunk := os.read(reader, 65536):
            received += chunk
    finally:
        os.close(reader)
    assert received == JOB


@pytest.mark.parametrize("printer", ["tcp", "file"])
def test_a_printer_that_is_down_is_a_structured_502(printer: str, tmp_path: Path) -> None:
    target = f"tcp://127.0.0.1:{free_port()}" if printer == "tcp" else f"file://{tmp_path}/usb/lp0"
    with running_relay(target, APPLIANCE) as url:
        r = post_job(url)
    assert r.status_code == 502
    assert r.json()["ok"] is False
    assert r.json()["error"] == "offline"
    assert r.json()["detail"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b"not json", "application/json", 400, "bad_request"),
        (b'{"job": "not base64!"}', "application/json", 400, "bad_request"),
        (b'{"jobs": "AAAA"}', "application/json", 400, "bad_request"),
        (b'{"job": 12}', "application/json", 400, "bad_request"),
        (b'{"job": ""}', "application/json", 400, "bad_request"),
        (b"A001", "text/plain", 400, "bad_request"),
        (b"x" * (256 * 1024 + 1), "application/octet-stream", 413, "too_large"),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_printed(content: bytes, content_type: str, status: int,
                                                       error: str) -> None:  # fmt: skip
    with PrinterSink() as sink, running_relay(f"tcp://127.0.0.1:{sink.port}", APPLIANCE) as url:
        r = httpx.post(f"{url}/print", content=content, headers={"Content-Type": content_type}, timeout=10)
        assert r.status_code == status, r.text
        assert (r.json()["ok"], r.json()["error"]) == (False, error)
        assert post_job(url, b"after").status_code == 200  # still serving
        assert sink.wait_for_jobs(1) == [b"after"]


def preflight(url: str, origin: str) -> httpx.Response:
    """Chromium's CORS preflight for a JSON POST from a LAN page to loopback (with the Private Network Access ask)."""
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type",
               "Access-Control-Request-Private-Network": "true"}  # fmt: skip
    return httpx.request("OPTIONS", f"{url}/print", headers=headers, timeout=10)


def test_only_the_appliances_origin_may_print() -> None:
    with PrinterSink() as sink, running_relay(f"tcp://127.0.0.1:{sink.port}", APPLIANCE, "http://kiosk.lan") as url:
        allowed = preflight(url, APPLIANCE)
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == APPLIANCE
        assert allowed.headers["access-control-allow-private-network"] == "true"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert allowed.headers["access-control-allow-headers"].lower() == "content-type"
        assert preflight(url, "http://kiosk.lan").status_code == 204
        for other in ("http://evil.example", "http://10.0.0.2:8081", "null"):
            refused = preflight(url, other)
            assert refused.status_code == 403
            assert "access-control-allow-origin" not in refused.headers
            assert "access-control-allow-private-network" not in refused.headers
            assert refused.json()["error"] == "origin_not_allowed"
            assert post_job(url, origin=other).status_code == 403  # a "simple" POST is refused too
        rebinding = {"Host": "evil.example:9111", "Content-Type": "application/octet-stream"}
        rebound = httpx.post(f"{url}/print", content=JOB, headers=rebinding)
        assert (rebound.status_code, rebound.json()["error"]) == (403, "host_not_allowed")  # DNS rebinding
        assert sink.jobs == []


def test_the_browser_may_reach_the_relay_only_when_there_is_one() -> None:
    launcher: Any = load_launcher()
    with_relay = launcher.browser_command("http://10.0.0.2:8080/kiosk", relay=True)
    assert "--disable-features=LocalNetworkAccessChecks" in with_relay
    assert sum(a.startswith("--disable-features") for a in with_relay) == 1  # Chromium keeps only the last one
    assert not any("LocalNetwork" in a for a in launcher.browser_command("http://10.0.0.2:8080/kiosk"))
    assert launcher.origin_of("http://10.0.0.2:80") == "http://10.0.0.2"
    assert launcher.origin_of("http://Appliance.LAN:8080") == "http://appliance.lan:8080"
    with pytest.raises(ValueError, match="tcp://host:9100"):
        launcher.PrinterTarget.parse("lp0")
    assert launcher.PrinterTarget.parse("tcp://printer.lan").port == 9100
