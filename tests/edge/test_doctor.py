"""`qms-edge doctor` on a healthy appliance and on each injected fault: the fault is named, with what to do, and the
command exits non-zero. Real pieces throughout: the served appliance, a real Mosquitto (stopped for its fault), a
real certificate (trustme), a real corrupt page; only the world outside (disk size, a reference clock) is injected
through the doctor's `Probes` seam."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from edge import doctor
from edge.backup import create_backup
from edge.doctor import Finding, Probes
from edge.engine import commands as c
from edge.service import QueueService
from tests.edge.devices.mosquitto import Mosquitto
from tests.edge.test_backup import corrupt_a_page
from tests.support.appliance import RunningAppliance, free_port, run_cli, seed_demo
from tests.support.cloud_hub import wait_until

BRANCH = "jkt-sudirman"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configured branch with tickets (built once: hashing the demo passwords is deliberately slow)."""
    data = tmp_path_factory.mktemp("doctor") / "qms"
    seed_demo(data)
    service = QueueService(data)
    try:
        for _ in range(40):  # tickets on several pages: a damaged one is what a failing SD card gives
            service.execute(c.Enqueue(actor="test", service_id="teller"))
    finally:
        service.stop()
    return data


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    """Each test's own copy of the branch, with a fresh backup beside it (QMS_BACKUP_DIR default)."""
    data = Path(shutil.copytree(template, tmp_path / "qms"))
    (tmp_path / "backups").mkdir()
    create_backup(data, tmp_path / "backups" / "daily.tar.gz")
    return data


@pytest.fixture
def broker(data_dir: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto configured for the branch (writes the bridge's mqtt.json into the data dir)."""
    mosquitto = Mosquitto(data_dir, BRANCH).start()
    yield mosquitto
    mosquitto.cleanup()


def on_time() -> Probes:
    """The real host, except the reference clock: the same time as ours (no NTP server is reachable here)."""
    now = datetime.now(UTC)
    return Probes(now=lambda: now, reference_clock=lambda: ("the hub (test)", now), env={})


def faults(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f"{f.message} -> {f.fix}" for f in findings if f.status == "fault"}


def test_a_healthy_appliance_has_no_fault(data_dir: Path, broker: Mosquitto) -> None:
    findings = doctor.run(data_dir, on_time())
    assert faults(findings) == {}
    checks = {f.check for f in findings}
    expected = {"disk", "clock", "time zone", "database", "backups", "hub link", "mosquitto", "speakers", "mdns"}
    assert expected | {"devices"} <= checks
    by = {f.check: f for f in findings}
    assert by["mosquitto"].status == "ok"
    assert by["backups"].status == "ok"
    assert "Asia/Jakarta" in by["time zone"].message
    assert "chain intact" in by["database"].message


def test_the_command_on_a_serving_appliance_exits_0_and_speaks_json(
    data_dir: Path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QMS_NTP_SERVER", "127.0.0.1")  # nothing answers: the clock check falls back to chrony
    monkeypatch.setenv("QMS_MDNS", "1")  # advertised and scanned on loopback only, never on the real LAN
    monkeypatch.setenv("QMS_MDNS_INTERFACES", "127.0.0.1")
    with RunningAppliance(data_dir) as appliance:
        out = run_cli("doctor", "--data-dir", str(data_dir), "--port", str(appliance.port), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    findings = json.loads(out.stdout)
    assert not [f for f in findings if f["status"] == "fault"]
    assert {"check", "status", "message", "fix"} <= set(findings[0])
    assert next(f for f in findings if f["check"] == "mdns")["message"].startswith("visible as jkt-sudirman")


def test_stopped_mosquitto_is_named(data_dir: Path, broker: Mosquitto) -> None:
    broker.stop()
    found = faults(doctor.run(data_dir, on_time()))
    assert set(found) == {"mosquitto"}
    assert "Mosquitto not reachable" in found["mosquitto"]
    assert "systemctl restart mosquitto" in found["mosquitto"]


def test_a_full_disk_is_named(data_dir: Path) -> None:
    probes = on_time()
    probes.disk_usage = lambda _path: (8 * 2**30, 8 * 2**30 - 100 * 2**20, 100 * 2**20)  # 100 MiB left
    found = faults(doctor.run(data_dir, probes))
    assert set(found) == {"disk"}
    assert "disk almost full: 100 MiB free" in found["disk"]


def test_a_clock_off_against_the_hub_is_named(data_dir: Path) -> None:
    probes = on_time()
    hub_time = probes.now() - timedelta(minutes=10)
    probes.reference_clock = lambda: ("the hub (https://hub.example)", hub_time)
    found = faults(doctor.run(data_dir, probes))
    assert set(found) == {"clock"}
    assert "clock is off: 600 s ahead of the hub (https://hub.example)" in found["clock"]
    assert "chronyc" in found["clock"]


def test_an_unsynchronised_chrony_is_named_when_no_reference_answers(data_dir: Path) -> None:
    probes = on_time()
    probes.reference_clock = lambda: None
    probes.chrony_tracking = lambda: "Reference ID    : 00000000 ()\nLeap status     : Not synchronised\n"
    assert "chrony has no usable time source" in faults(doctor.run(data_dir, probes))["clock"]


def test_a_link_down_is_named_with_its_last_error(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = free_port()  # nothing listens: the relay cannot reach the cloud
    monkeypatch.setenv("QMS_NATS_URL", f"nats://127.0.0.1:{dead}")
    monkeypatch.setenv("QMS_TENANT", "acme")
    monkeypatch.setenv("QMS_BRANCH", BRANCH)
    with RunningAppliance(data_dir):
        wait_until(
            lambda: json.loads((data_dir / "cloud-link.json").read_text()).get("link_error"),
            timeout=30,
            what="the appliance records its link error",
        )
        probes = on_time()
        probes.env = {"QMS_NATS_URL": f"nats://127.0.0.1:{dead}"}
        found = faults(doctor.run(data_dir, probes))
    assert set(found) == {"hub link"}
    assert "cannot reach the cloud" in found["hub link"], found
    assert "QMS_NATS_URL" in found["hub link"]


def test_a_stopped_appliance_is_named(data_dir: Path) -> None:
    with RunningAppliance(data_dir):
        pass  # it ran once and wrote its link file
    found = faults(doctor.run(data_dir, on_time()))
    assert "appliance not running" in found["hub link"]


def test_an_expired_certificate_is_named(data_dir: Path) -> None:
    ca = trustme.CA()
    past = datetime.now(UTC) - timedelta(days=3)
    leaf = ca.issue_cert("qms-appliance.local", not_before=past - timedelta(days=90), not_after=past)
    (data_dir / "tls").mkdir()
    leaf.cert_chain_pems[0].write_to_path(str(data_dir / "tls" / "appliance.crt"))
    found = faults(doctor.run(data_dir, on_time()))
    assert set(found) == {"certificate"}
    assert f"certificate appliance.crt expired on {past:%Y-%m-%d}" in found["certificate"]
    assert "re-enrol" in found["certificate"]


def test_a_valid_certificate_from_the_environment_is_ok(data_dir: Path, tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("qms-appliance.local")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "edge.crt"))
    probes = on_time()
    probes.env = {doctor.TLS_CERT_ENV: str(tmp_path / "edge.crt")}
    cert = next(f for f in doctor.run(data_dir, probes) if f.check == "certificate")
    assert cert.status == "ok"
    assert "edge.crt valid until" in cert.message


def test_a_corrupt_database_is_named_and_the_command_exits_1(data_dir: Path) -> None:
    corrupt_a_page(data_dir / "qms.sqlite3")
    out = run_cli("doctor", "--data-dir", str(data_dir))
    assert out.returncode == 1, out.stdout
    line = next(line for line in out.stdout.splitlines() if line.startswith("FAULT") and "database" in line)
    assert "the database file is corrupt" in line
    assert "restore the last good backup" in out.stdout
    assert "Traceback" not in out.stderr


def test_an_unreachable_printer_and_silent_devices_are_named(data_dir: Path) -> None:
    printers: doctor.Printers = {"kiosk printer": ("127.0.0.1", free_port(), None)}
    found = doctor.check_printers(printers, on_time())
    assert found[0].status == "fault"
    assert "printer 127.0.0.1" in found[0].message
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    devices = doctor.check_devices([("Counter 1 button", "button", False, long_ago)], on_time())
    assert devices[0].status == "warn"
    assert "button Counter 1 button (last seen" in devices[0].message
