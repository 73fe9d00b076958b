"""`qms-edge serve` under systemd's notify protocol (the image's `Type=notify` + `WatchdogSec=` unit): READY=1 once
/api/v1/health answers, then WATCHDOG=1 pings; a real datagram socket stands in for systemd's."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.appliance import RunningAppliance, seed_demo


def test_serve_says_ready_then_pets_the_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_demo(tmp_path / "edge")
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
        with RunningAppliance(tmp_path / "edge"):
            first = sock.recv(512).decode()
            second = sock.recv(512).decode()
    assert first.startswith("READY=1")
    assert second == "WATCHDOG=1"
