"""Fixtures for the device tests: a seeded branch with registered devices, a real Mosquitto, a running bridge."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.devices import registry
from edge.devices.mqtt.bridge import MqttBridge, load_settings
from edge.service import QueueService
from tests.edge.devices.mosquitto import Mosquitto, wait_for
from tests.support.appliance import seed_demo

BRANCH = "jkt-sudirman"
DEVICES = [  # device_id, type, counter, area
    ("btn-1", "button", "1", "lantai-1"),
    ("btn-3", "button", "3", "lantai-1"),
    ("led-1", "led", "1", None),
    ("board-1", "display", None, "lantai-1"),
]


def register(service: QueueService, device_id: str, device_type: str, counter_id: str | None = None,
             area_id: str | None = None) -> registry.Device:  # fmt: skip
    """Add and pair a device through the single writer; returns it active."""
    now = datetime.now(UTC)
    code = registry.new_pairing_code()

    def add_and_pair(conn: object) -> registry.Device:
        registry.add_device(conn, device_id=device_id, device_type=device_type, code=code, now=now,  # type: ignore[arg-type]
                            counter_id=counter_id, area_id=area_id)  # fmt: skip
        return registry.pair(conn, code, now)  # type: ignore[arg-type]

    return service.submit_store(add_and_pair).result(timeout=10)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo branch with the test devices registered, built once per session."""
    data_dir = tmp_path_factory.mktemp("devices-template") / "data"
    users = [("admin", "admin", []), ("supervisor", "supervisor", []), ("agent1", "agent", ["1", "2"])]
    seed_demo(data_dir, users=users)
    service = QueueService(data_dir)
    service.start()
    try:
        for device_id, device_type, counter, area in DEVICES:
            register(service, device_id, device_type, counter, area)
    finally:
        service.stop()
    return data_dir


@pytest.fixture
def data_dir(seeded_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded branch for one test."""
    target = tmp_path / "data"
    shutil.copytree(seeded_template, target)
    return target


@pytest.fixture
def service(data_dir: Path) -> Iterator[QueueService]:
    """The single writer over the test's data dir."""
    svc = QueueService(data_dir)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def broker(data_dir: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with auth and ACLs generated from the registry."""
    mosquitto = Mosquitto(data_dir, BRANCH).start()
    yield mosquitto
    mosquitto.cleanup()


@pytest.fixture
def bridge(service: QueueService, broker: Mosquitto, data_dir: Path) -> Iterator[MqttBridge]:
    """The appliance's bridge, connected, with registry checks and presence as the app wires them."""
    from edge.devices.access import DeviceAccess

    settings = load_settings(data_dir)
    assert settings is not None
    access = DeviceAccess(service)
    mqtt_bridge = MqttBridge(
        service,
        settings,
        check_device=access.command_refusal,
        on_presence=lambda d, online, at: service.submit_store(
            lambda conn: registry.record_presence(conn, d, online, at)
        ),
    )
    mqtt_bridge.start()
    wait_for(mqtt_bridge.connected.is_set, what=f"bridge connected\n{broker.log()}")
    yield mqtt_bridge
    mqtt_bridge.stop()
