"""Device access: every device token and MQTT command is checked against the registry (cached between writes)."""

from __future__ import annotations

import sqlite3
import threading

from edge.auth import find_user
from edge.devices.registry import Device, get_device
from edge.service import QueueService


class DeviceAccess:
    """Answers "may this device act (for this counter)?" at once after a revoke, without a query per request."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._cache: dict[str, Device | None] = {}
        self._accounts: dict[str, bool] = {}
        self._data_version: int | None = None

    def invalidate(self) -> None:
        """Forget everything (called after every registry write in this process)."""
        with self._lock:
            self._cache.clear()
            self._accounts.clear()

    def _fresh(self, conn: sqlite3.Connection) -> None:
        # data_version changes whenever another connection (the writer, the CLI) committed: then the cache may lie.
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._cache.clear()
            self._accounts.clear()

    def device(self, device_id: str) -> Device | None:
        """The registered device, read through the cache."""

        def load(conn: sqlite3.Connection) -> Device | None:
            with self._lock:
                self._fresh(conn)
                if device_id not in self._cache:
                    self._cache[device_id] = get_device(conn, device_id)
                return self._cache[device_id]

        return self.service.read(load)  # type: ignore[no-any-return,unused-ignore]

    def _account_active(self, username: str) -> bool:
        def load(conn: sqlite3.Connection) -> bool:
            with self._lock:
                self._fresh(conn)
                if username not in self._accounts:
                    found = find_user(conn, username)
                    self._accounts[username] = bool(found and found[0].active and found[0].role == "device")
                return self._accounts[username]

        return self.service.read(load)  # type: ignore[no-any-return,unused-ignore]

    def token_refusal(self, device_id: str, generation: int | None = None) -> str | None:
        """Why a device token must be refused (`device_revoked`, `device_unknown`), or None.

        Registry devices must be `active` and the token must come from their current pairing (re-pairing a device
        retires the tokens of its earlier pairings); a device account made with `qms-edge users add --role device`
        must still exist and be active.
        """
        device = self.device(device_id)
        if device is not None:
            return None if device.status == "active" and generation == device.generation else "device_revoked"
        return None if self._account_active(device_id) else "device_unknown"

    def command_refusal(self, device_id: str, counter_id: str) -> str | None:
        """Why an MQTT command from this device for this counter is refused, or None."""
        device = self.device(device_id)
        if device is None:
            return "device_unknown"
        if device.status != "active":
            return "device_revoked"
        if device.counter_id != counter_id:
            return "counter_not_assigned"
        return None
