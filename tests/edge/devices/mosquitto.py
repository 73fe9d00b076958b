"""A real Mosquitto for tests: generated config (auth + ACL), a free port, started and stopped by the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.auth import load_secret
from edge.devices.mqtt.broker import write_broker_files
from edge.devices.registry import Device, list_devices, mqtt_password
from edge.store.db import connect
from tests.support.appliance import free_port, terminate

START_SECONDS = 10.0


class Mosquitto:
    """`mosquitto -c <generated conf>` on 127.0.0.1:`port`, its files in a temp dir the broker user can read."""

    def __init__(self, data_dir: Path, branch: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.branch = branch
        self.port = port or free_port()
        # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700 and the broker runs as `mosquitto`.
        self.directory = Path(tempfile.mkdtemp(prefix="qms-mosquitto-"))
        self.directory.chmod(0o755)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "broker.log"
        self.configure()

    def configure(self) -> None:
        """(Re)generate passwd, acl and conf from the data dir's device registry."""
        conn = connect(self.data_dir / "qms.sqlite3", readonly=True)
        try:
            devices = list_devices(conn)
        finally:
            conn.close()
        write_broker_files(
            self.directory,
            data_dir=self.data_dir,
            branch=self.branch,
            secret=load_secret(self.data_dir),
            devices=devices,
            port=self.port,
            bind="127.0.0.1",
            persistence=False,
        )

    def start(self) -> Mosquitto:
        """Start and wait (bounded) until the port accepts connections."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.directory / "mosquitto.conf")], stdout=log,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.02)  # polling interval, bounded by the deadline
        self.stop()
        raise RuntimeError(f"mosquitto not listening after {START_SECONDS}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, wait."""
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, 10)

    def reload(self) -> None:
        """Regenerate the files and SIGHUP the broker (what `qms-edge devices mqtt-config` is followed by)."""
        self.configure()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def cleanup(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """The broker's output (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)  # polling interval, bounded by the deadline
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class DeviceClient:
    """A simulated device: a paho client with its own credentials, Last Will `offline`, recording what it gets."""

    def __init__(self, port: int, username: str, password: str | None, *, branch: str = "jkt-sudirman",
                 keepalive: int = 30, will: bool = True, client_id: str | None = None) -> None:  # fmt: skip
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"{username}-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if password is not None:
            self.client.username_pw_set(username, password)
        self.status_topic = f"qms/{branch}/device/{username}/status"
        if will:
            self.client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        self.port = port
        self.keepalive = keepalive
        self.messages: list[tuple[str, bytes, bool]] = []
        self.acks: dict[int, Any] = {}
        self.connack: Any = None
        self.connected = threading.Event()
        self.lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        if not reason.is_failure:
            self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.acks[mid] = reason

    def connect(self, *, online: bool = True) -> DeviceClient:
        """Connect, wait for the CONNACK, announce `online` (retained)."""
        self.client.connect("127.0.0.1", self.port, keepalive=self.keepalive)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, what="CONNACK")
        if self.connected.is_set() and online:
            self.client.publish(self.status_topic, b"online", qos=1, retain=True).wait_for_publish(5)
        return self

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"

    def got(self, topic: str) -> list[bytes]:
        """Payloads received on a topic so far."""
        with self.lock:
            return [p for t, p, _r in self.messages if t == topic]

    def close(self) -> None:
        """Disconnect cleanly (no Last Will)."""
        self.client.disconnect()
        self.client.loop_stop()


def device_password(data_dir: Path, device: Device) -> str:
    """The MQTT password the appliance derives for a device."""
    return mqtt_password(load_secret(data_dir), device.device_id, device.generation)
