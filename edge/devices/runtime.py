"""Starts and stops the device side of the appliance with the web app: MQTT bridge, mDNS advertisement, access."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.auth import load_secret
from edge.devices.access import DeviceAccess
from edge.devices.discovery import Advertiser, mdns_enabled, service_info
from edge.devices.mqtt.bridge import MqttBridge, load_settings
from edge.devices.mqtt.broker import regenerate
from edge.devices.registry import list_devices, record_presence
from edge.service import QueueService

log = logging.getLogger("qms.devices")


def app_version() -> str:
    """The installed qms version (the mDNS `version` TXT record)."""
    try:
        return importlib.metadata.version("qms")
    except importlib.metadata.PackageNotFoundError:
        return "0"


@dataclass
class DeviceRuntime:
    """The appliance's device adapters; each one degrades on its own and never stops the queue."""

    service: QueueService
    data_dir: Path
    mdns: bool = False
    http_port: int = 8080
    access: DeviceAccess = field(init=False)
    bridge: MqttBridge | None = None
    advertiser: Advertiser | None = None

    def __post_init__(self) -> None:
        self.access = DeviceAccess(self.service)

    def start(self) -> None:
        """Start the bridge when the data dir has MQTT settings, and the mDNS advertisement when enabled."""
        settings = load_settings(self.data_dir)
        if settings is not None:
            self.bridge = MqttBridge(
                self.service, settings, on_presence=self._presence, check_device=self.access.command_refusal
            )
            self.bridge.start()
        state = self.service.view.state
        if self.mdns and state.config is not None:
            info = service_info(
                tenant=state.config.tenant_id, branch=state.branch_id, port=self.http_port, version=app_version()
            )
            self.advertiser = Advertiser(info)
            self.advertiser.start()

    def stop(self) -> None:
        """Stop whatever was started."""
        for adapter in (self.bridge, self.advertiser):
            if adapter is None:
                continue
            try:
                adapter.stop()
            except Exception:
                log.exception("stopping %s failed", type(adapter).__name__)

    def registry_changed(self) -> None:
        """After a pairing or revocation: forget cached access and rewrite + reload the broker's logins and ACL."""
        self.access.invalidate()
        state = self.service.view.state
        if not state.branch_id:
            return
        try:
            devices = self.service.read(list_devices)
            reloaded = regenerate(self.data_dir, branch=state.branch_id, secret=load_secret(self.data_dir),
                                  devices=devices)  # fmt: skip
        except (OSError, RuntimeError, subprocess.SubprocessError):
            log.exception("could not update the broker's logins; run `qms-edge devices mqtt-config` and reload it")
            return
        if reloaded:
            log.info("broker logins and ACL rewritten and reloaded")

    def _presence(self, device_id: str, online: bool, at: datetime) -> None:
        """Store presence through the single writer without waiting for it (called on the MQTT thread)."""
        self.service.submit_store(lambda conn: record_presence(conn, device_id, online, at))

    def presence(self) -> dict[str, tuple[bool, datetime]]:
        """Live presence as the bridge last heard it."""
        return dict(self.bridge.presence) if self.bridge else {}


def serve_settings(http_port: int, mdns: bool | None = None) -> dict[str, Any]:
    """The device-related app settings for `qms-edge serve` (mDNS: `--mdns/--no-mdns`, else on unless `QMS_MDNS=0`)."""
    return {"mdns": mdns_enabled() if mdns is None else mdns, "http_port": http_port}
