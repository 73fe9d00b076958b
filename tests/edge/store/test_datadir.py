"""The data directory holds password hashes, phone numbers and signing keys: 0700 for it, 0600 for its files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.auth import load_secret
from edge.service import QueueService
from tests.support.appliance import seed_demo


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(data_dir: Path) -> dict[str, int]:
    return {p.name: _mode(p) for p in data_dir.iterdir() if p.is_file()}


def test_a_fresh_store_creates_a_private_directory_and_private_files(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    previous = os.umask(0o022)  # the usual umask: without explicit modes SQLite would create 0644 files
    try:
        service = QueueService(data)
        try:
            load_secret(data)
            # while the writer holds the database open, -wal and -shm exist
            modes = _modes(data)
        finally:
            service.stop()
    finally:
        os.umask(previous)
    assert _mode(data) == 0o700
    assert {"qms.sqlite3", "qms.sqlite3-wal", "qms.sqlite3-shm", "token.key"} <= set(modes), modes
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}


def test_an_existing_install_with_open_modes_is_tightened_on_start(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    load_secret(data)
    (data / "mqtt.json").write_text("{}")
    data.chmod(0o755)
    for path in data.iterdir():
        if path.is_file():
            path.chmod(0o644)

    service = QueueService(data)
    service.stop()

    assert _mode(data) == 0o700
    assert {name: mode for name, mode in _modes(data).items() if mode != 0o600} == {}


def test_the_signing_key_is_created_whole_and_private(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    data.mkdir(mode=0o700)
    (data / "token.key").touch(mode=0o600)  # what a power cut between create and write used to leave: an empty key
    secret = load_secret(data)
    assert len(secret) == 32
    assert (data / "token.key").read_bytes() == secret
    assert _mode(data / "token.key") == 0o600
    assert load_secret(data) == secret
    assert sorted(p.name for p in data.iterdir()) == ["token.key"]  # no temporary file left


def test_mqtt_settings_are_rewritten_private_even_over_an_open_file(tmp_path: Path) -> None:
    from edge.devices.mqtt.broker import write_broker_files

    data = tmp_path / "qms"
    data.mkdir(mode=0o700)
    (data / "mqtt.json").write_text("{}")
    (data / "mqtt.json").chmod(0o644)  # written by an older version
    write_broker_files(tmp_path / "broker", data_dir=data, branch="jkt", secret=b"k" * 32, devices=[])
    assert _mode(data / "mqtt.json") == 0o600
    assert b"password" in (data / "mqtt.json").read_bytes()
    assert sorted(p.name for p in data.iterdir()) == ["mqtt.json"]
