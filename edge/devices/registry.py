"""The device registry: kiosks, displays, call buttons and LED displays, paired by a short code, revocable at once.

Write functions take the writer's connection (run them through `QueueService.submit_store`); reads take any.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from edge.auth import TokenIssuer, User
from edge.devices.mqtt.topics import SEGMENT_RE
from edge.engine.errors import DomainError, Invalid, NotFound
from sync.liveness import DeviceState

DeviceType = Literal["kiosk", "display", "button", "led"]
DEVICE_TYPES: tuple[DeviceType, ...] = ("kiosk", "display", "button", "led")
DeviceStatus = Literal["pending", "active", "revoked"]
PAIRING_TTL = timedelta(minutes=15)
PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen, typed on a keypad
PAIRING_LENGTH = 8
_COLUMNS = (
    "device_id, type, name, area_id, counter_id, status, generation, online, last_seen, config_version,"
    " applied_version, last_good_version, apply_error, created_at, paired_at, revoked_at"
)


class Device(msgspec.Struct, frozen=True, kw_only=True):
    """One registered device as the admin API shows it (never its secrets)."""

    device_id: str
    type: DeviceType
    name: str
    area_id: str | None = None
    counter_id: str | None = None
    status: DeviceStatus = "pending"
    generation: int = 0
    online: bool = False
    last_seen: str | None = None
    config_version: int = 0
    applied_version: int = 0
    last_good_version: int = 0
    apply_error: str | None = None
    created_at: str = ""
    paired_at: str | None = None
    revoked_at: str | None = None


class PairingFailed(DomainError):
    """The pairing code is unknown, used or expired."""

    status = 401
    code = "invalid_pairing_code"


class DeviceRevoked(DomainError):
    """The device was revoked: its token and MQTT account no longer work."""

    status = 401
    code = "device_revoked"


def new_pairing_code() -> str:
    """A short random code an admin reads off a screen (8 characters from 32: 40 bits, valid 15 minutes)."""
    return "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(PAIRING_LENGTH))


def normalize_code(code: str) -> str:
    """Codes are case- and separator-insensitive (`abcd-efgh` = `ABCDEFGH`)."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def mqtt_password(secret: bytes, device_id: str, generation: int) -> str:
    """A device's MQTT password, derived from the appliance key: never stored, regenerated with the broker files."""
    mac = hmac.new(secret, f"mqtt:{device_id}:{generation}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def credentials(secret: bytes, device: Device, branch_id: str) -> dict[str, object]:
    """What a freshly paired device needs (shown once): an API token of this pairing and its MQTT login."""
    counters = [device.counter_id] if device.counter_id else []
    user = User(username=device.device_id, role="device", counters=counters)
    token, lifetime = TokenIssuer(secret).issue(user, branch_id, generation=device.generation)
    return {
        "device_id": device.device_id,
        "branch_id": branch_id,
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "mqtt_username": device.device_id,
        "mqtt_password": mqtt_password(secret, device.device_id, device.generation),
    }


def _row(row: tuple[object, ...]) -> Device:
    names = [n.strip() for n in _COLUMNS.split(",")]
    data = dict(zip(names, row, strict=True))
    data["online"] = bool(data["online"])
    return msgspec.convert(data, Device)


def get_device(conn: sqlite3.Connection, device_id: str) -> Device | None:
    """One device, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM devices WHERE device_id = ?", (device_id,)).fetchone()  # noqa: S608 - fixed column list
    return _row(row) if row else None


def list_devices(conn: sqlite3.Connection) -> list[Device]:
    """Every device, by id."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM devices ORDER BY device_id").fetchall()  # noqa: S608 - fixed column list
    return [_row(r) for r in rows]


def add_device(
    conn: sqlite3.Connection,
    *,
    device_id: str,
    device_type: str,
    code: str,
    now: datetime,
    name: str | None = None,
    area_id: str | None = None,
    counter_id: str | None = None,
) -> Device:
    """Register a device as `pending` with a pairing code (re-adding a pending or revoked id issues a new code)."""
    if not SEGMENT_RE.match(device_id):
        raise Invalid(f"device id {device_id!r}: letters, digits, `_.:-`, at most 64", code="invalid_device")
    if device_type not in DEVICE_TYPES:
        raise Invalid(f"device type {device_type!r}: one of {', '.join(DEVICE_TYPES)}", code="invalid_device")
    if device_type in ("button", "led") and not counter_id:
        raise Invalid(f"a {device_type} device must be assigned to a counter", code="invalid_device")
    existing = get_device(conn, device_id)
    if existing is not None and existing.status == "active":
        raise DomainError(f"device {device_id!r} is already paired; revoke it first", code="device_exists")
    conn.execute(
        "INSERT INTO devices (device_id, type, name, area_id, counter_id, status, pairing_hash, pairing_expires_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
        " type = excluded.type, name = excluded.name, area_id = excluded.area_id, counter_id = excluded.counter_id,"
        " status = 'pending', pairing_hash = excluded.pairing_hash, pairing_expires_at = excluded.pairing_expires_at,"
        " revoked_at = NULL",
        (
            device_id,
            device_type,
            name or device_id,
            area_id,
            counter_id,
            _code_hash(code),
            (now + PAIRING_TTL).isoformat(),
            now.isoformat(),
        ),
    )
    device = get_device(conn, device_id)
    assert device is not None
    return device


def pair(conn: sqlite3.Connection, code: str, now: datetime) -> Device:
    """Redeem a pairing code: the device becomes `active` with a new generation (new MQTT password)."""
    row = conn.execute(
        "SELECT device_id, pairing_expires_at FROM devices WHERE pairing_hash = ? AND status = 'pending'",
        (_code_hash(code),),
    ).fetchone()
    if row is None or datetime.fromisoformat(row[1]) < now:
        raise PairingFailed("the pairing code is unknown, already used or expired")
    conn.execute(
        "UPDATE devices SET status = 'active', pairing_hash = NULL, pairing_expires_at = NULL,"
        " generation = generation + 1, paired_at = ? WHERE device_id = ?",
        (now.isoformat(), row[0]),
    )
    device = get_device(conn, row[0])
    assert device is not None
    return device


def revoke(conn: sqlite3.Connection, device_id: str, now: datetime) -> Device:
    """Cut a device off: its token is refused from now on and its MQTT account leaves the broker files."""
    if get_device(conn, device_id) is None:
        raise NotFound(f"no device {device_id!r}", code="device_not_found")
    conn.execute(
        "UPDATE devices SET status = 'revoked', pairing_hash = NULL, online = 0, revoked_at = ? WHERE device_id = ?",
        (now.isoformat(), device_id),
    )
    device = get_device(conn, device_id)
    assert device is not None
    return device


def record_presence(conn: sqlite3.Connection, device_id: str, online: bool, now: datetime) -> bool:
    """Store a device's online/offline and last-seen time; False if the device is not registered."""
    cur = conn.execute(
        "UPDATE devices SET online = ?, last_seen = ? WHERE device_id = ?", (int(online), now.isoformat(), device_id)
    )
    return cur.rowcount > 0


WEB_DEVICE_STALE = timedelta(seconds=60)  # a kiosk or board that has not polled for this long is offline
WEB_DEVICE_TYPES = ("kiosk", "display")


def fleet_states(devices: list[Device], now: datetime) -> list[DeviceState]:
    """The active devices as the heartbeat reports them to HQ: MQTT devices by their session (last will), kiosks and
    boards by how recently they polled (`WEB_DEVICE_STALE`)."""
    states = []
    for d in devices:
        if d.status != "active":
            continue
        seen = datetime.fromisoformat(d.last_seen) if d.last_seen else None
        online = d.online and (d.type not in WEB_DEVICE_TYPES or (seen is not None and now - seen <= WEB_DEVICE_STALE))
        states.append(DeviceState(device_id=d.device_id, type=d.type, name=d.name, online=online, last_seen=seen,
                                  config_version=d.config_version, applied_version=d.applied_version))  # fmt: skip
    return states


def device_status(conn: sqlite3.Connection, device_id: str) -> DeviceStatus | None:
    """The registry status of an id (None: not a registered device)."""
    row = conn.execute("SELECT status FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    return row[0] if row else None
