"""mDNS: a second process finds the served appliance on loopback, with the TXT records devices rely on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.devices.discovery import mdns_enabled
from tests.support.appliance import RunningAppliance, run_cli

pytestmark = pytest.mark.slow
FIND_SECONDS = 30.0


def test_a_second_process_finds_the_appliance_by_mdns(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_MDNS", "1")
    monkeypatch.setenv("QMS_MDNS_INTERFACES", "127.0.0.1")  # loopback: the test never announces on the real LAN
    with RunningAppliance(data_dir) as appliance:
        deadline = time.monotonic() + FIND_SECONDS
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < deadline:  # registration probes for ~2 s first
            # Matched by port: another appliance of the same branch on this host (a neighbour's test) would make
            # zeroconf rename ours to `jkt-sudirman-2`, which is what allow_name_change is for.
            found = scan_for(appliance.port, 2)
        assert found, f"not advertised within {FIND_SECONDS}s\n{appliance.log()}"
        (seen,) = found
        assert seen["service_type"] == "_qms._tcp.local."
        assert str(seen["name"]).startswith("jkt-sudirman")
        assert seen["port"] == appliance.port
        assert "127.0.0.1" in seen["addresses"]  # type: ignore[operator]
        assert seen["properties"] == {"tenant": "demo-bank", "branch": "jkt-sudirman", "api": "/api/v1",
                                      "version": seen["properties"]["version"]}  # type: ignore[index]  # fmt: skip
        assert seen["properties"]["version"]  # type: ignore[index]


def scan_for(port: int, seconds: float) -> list[dict[str, object]]:
    """Appliances seen on the (loopback) LAN at `port` during one `qms-edge devices scan`."""
    out = run_cli("devices", "scan", "--seconds", str(seconds), "--json")
    assert out.returncode == 0, out.stderr
    return [s for s in json.loads(out.stdout) if s["port"] == port]


def test_no_mdns_flag_keeps_the_appliance_off_the_lan(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_MDNS", "1")  # the flag wins over the environment
    monkeypatch.setenv("QMS_MDNS_INTERFACES", "127.0.0.1")
    with RunningAppliance(data_dir, args=("--no-mdns",)) as appliance:
        # An advertising appliance is seen within ~2 s of starting (the positive test above); give it 6.
        assert scan_for(appliance.port, 6) == [], "advertised despite --no-mdns"


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("1", True), ("0", False), ("off", False),
                                                 ("false", False)])  # fmt: skip
def test_mdns_is_on_unless_opted_out(value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("QMS_MDNS", raising=False)
    else:
        monkeypatch.setenv("QMS_MDNS", value)
    assert mdns_enabled() is enabled
