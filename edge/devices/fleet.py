"""Fleet config (US-ADMIN-010, US-KIOSK-006): versioned per-device config, acknowledged, rolled back on failure.

A device fetches its newest version, applies it and acknowledges it. A failed apply is reported with its error and
the device goes back to its last good version, which the appliance remembers and serves again on request.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from edge.devices.registry import get_device
from edge.engine.errors import Invalid, NotFound

MAX_CONFIG_BYTES = 64 * 1024


def set_config(conn: sqlite3.Connection, device_id: str, doc: dict[str, Any], now: datetime) -> int:
    """Store a new config version for a device (old versions stay, for rollback); returns the new version."""
    device = get_device(conn, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", code="device_not_found")
    body = msgspec.json.encode(doc)
    if len(body) > MAX_CONFIG_BYTES:
        raise Invalid(f"device config larger than {MAX_CONFIG_BYTES} bytes", code="invalid_device_config")
    version = device.config_version + 1
    conn.execute(
        "INSERT INTO device_configs (device_id, version, doc, created_at) VALUES (?, ?, ?, ?)",
        (device_id, version, body.decode(), now.isoformat()),
    )
    conn.execute("UPDATE devices SET config_version = ? WHERE device_id = ?", (version, device_id))
    return version


def get_config(conn: sqlite3.Connection, device_id: str, version: int | None = None) -> dict[str, Any]:
    """`{version, config, last_good_version, applied_version}`: the newest version, or the one asked for."""
    device = get_device(conn, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", code="device_not_found")
    wanted = device.config_version if version is None else version
    row = conn.execute(
        "SELECT doc FROM device_configs WHERE device_id = ? AND version = ?", (device_id, wanted)
    ).fetchone()
    if row is None and wanted != 0:
        raise NotFound(f"device {device_id!r} has no config version {wanted}", code="config_version_not_found")
    return {
        "device_id": device_id,
        "version": wanted,
        "config": msgspec.json.decode(row[0]) if row else {},
        "last_good_version": device.last_good_version,
        "applied_version": device.applied_version,
    }


def acknowledge(conn: sqlite3.Connection, device_id: str, version: int, ok: bool, error: str | None) -> dict[str, Any]:
    """Record the outcome of an apply: ok -> it is the last good version; failed -> back to the last good one."""
    device = get_device(conn, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", code="device_not_found")
    if version < 1 or version > device.config_version:
        raise NotFound(f"device {device_id!r} has no config version {version}", code="config_version_not_found")
    if ok:
        conn.execute(
            "UPDATE devices SET applied_version = ?, last_good_version = ?, apply_error = NULL WHERE device_id = ?",
            (version, version, device_id),
        )
        return {"run_version": version, "rolled_back": False}
    conn.execute(
        "UPDATE devices SET applied_version = last_good_version, apply_error = ? WHERE device_id = ?",
        (f"version {version}: {error or 'apply failed'}"[:500], device_id),
    )
    return {"run_version": device.last_good_version, "rolled_back": True}
