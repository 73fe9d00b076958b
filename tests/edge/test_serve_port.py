"""`qms-edge serve` on a port something else holds fails at once with one line saying so, before the appliance starts
its devices, MQTT and relay (before, it started fully and only then exited with uvicorn's bind error)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.appliance import RunningAppliance, run_cli, seed_demo


def test_a_taken_port_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    seed_demo(tmp_path / "edge")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = run_cli("serve", "--data-dir", str(tmp_path / "edge"), "--host", "127.0.0.1", "--port", str(port),
                      "--no-mdns", timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
    assert "Application startup" not in out.stderr + out.stdout  # the app never started


def test_serve_still_serves_on_a_free_port(tmp_path: Path) -> None:
    seed_demo(tmp_path / "edge")
    with RunningAppliance(tmp_path / "edge") as appliance:
        assert appliance.token("agent1")
