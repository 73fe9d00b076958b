"""Access: every token is checked against the accounts and the device registry (cached between writes), MQTT too."""

from __future__ import annotations

import sqlite3
import threading

from edge.auth import Principal, User, find_user
from edge.devices.registry import Device, get_device
from edge.service import QueueService


class DeviceAccess:
    """Answers "may this device act (for this counter)?" at once after a revoke, without a query per request."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._cache: dict[str, Device | None] = {}
        self._accounts: dict[str, User | None] = {}
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

    def account(self, username: str) -> User | None:
        """A user account (staff or device) as it stands now, read through the cache."""

        def load(conn: sqlite3.Connection) -> User | None:
            with self._lock:
                self._fresh(conn)
                if username not in self._accounts:
                    found = find_user(conn, username)
                    self._accounts[username] = found[0] if found else None
                return self._accounts[username]

        return self.service.read(load)  # type: ignore[no-any-return,unused-ignore]

    def token_refusal(self, principal: Principal) -> str | None:
        """Why a token must be refused now although its signature and expiry are fine, or None.

        A paired device (`device_revoked`) must be `active` and the token must come from its current pairing
        (re-pairing retires the tokens of earlier pairings). Any other token belongs to a user account
        (`device_unknown` for a missing device account, `token_revoked` otherwise) that must exist, be active and
        still be in the token's epoch: changing a user's password, role, counters or active flag retires their tokens.
        """
        if principal.role == "device":
            device = self.device(principal.username)
            if device is not None:
                current = device.status == "active" and principal.generation == device.generation
                return None if current else "device_revoked"
        user = self.account(principal.username)
        if user is None or not user.active or user.role != principal.role or user.token_epoch != principal.epoch:
            return "device_unknown" if principal.role == "device" else "token_revoked"
        return None

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
