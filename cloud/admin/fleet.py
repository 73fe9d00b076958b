"""The device fleet at HQ (US-ADMIN-009/010): every kiosk, board, call button and LED display of every branch, as
the branch's heartbeat reports them (`sync.liveness.DeviceState`), with online/offline, last seen and the config
version each acknowledged.

A device is online at HQ only while all of these hold: its branch said so in its newest beat, that beat is recent
(`STALE`), and — for kiosks and boards, which prove themselves by polling — it was seen within `STALE`. So a device
whose heartbeat stops is offline at HQ within a minute, whether the branch reports it or the branch itself goes
quiet. `record_devices` runs in the heartbeat's transaction (cloud/liveness.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.admin.tables import fleet_devices
from sync.liveness import Heartbeat

STALE = timedelta(seconds=60)
POLLING_TYPES = ("kiosk", "display")  # online while they keep polling the appliance; MQTT devices by their session


def record_devices(conn: Connection, beat: Heartbeat, received_at: datetime) -> None:
    """Replace the branch's device list with the beat's (a beat without a list, from an older appliance, keeps it)."""
    if beat.devices is None:
        return
    key = (fleet_devices.c.tenant_id == beat.tenant) & (fleet_devices.c.branch_id == beat.branch_id)
    conn.execute(sa.delete(fleet_devices).where(key))
    rows = [
        {
            "tenant_id": beat.tenant,
            "branch_id": beat.branch_id,
            "device_id": d.device_id[:64],
            "type": d.type[:16],
            "name": d.name[:120],
            "online": d.online,
            "last_seen": d.last_seen.astimezone(UTC).isoformat() if d.last_seen else None,
            "config_version": d.config_version,
            "applied_version": d.applied_version,
            "reported_at": received_at.isoformat(),
        }
        for d in {d.device_id: d for d in beat.devices}.values()
    ]
    if rows:
        conn.execute(fleet_devices.insert(), rows)


@dataclass(frozen=True)
class FleetDevice:
    """One device as the fleet page shows it."""

    tenant: str
    branch_id: str
    device_id: str
    type: str
    name: str
    online: bool
    last_seen: datetime | None
    config_version: int
    applied_version: int

    @property
    def config_acked(self) -> bool:
        """Whether the device runs the config version the appliance assigned it."""
        return self.applied_version >= self.config_version


def judge(reported_online: bool, kind: str, last_seen: datetime | None, reported_at: datetime, now: datetime) -> bool:
    """Online at HQ: reported online, in a recent beat, and (kiosks, boards) seen recently."""
    if not reported_online or now - reported_at > STALE:
        return False
    return kind not in POLLING_TYPES or (last_seen is not None and now - last_seen <= STALE)


def fleet(
    conn: Connection,
    tenants: Collection[str] | None,
    now: datetime | None = None,
    branch: str | None = None,
    kind: str | None = None,
) -> list[FleetDevice]:
    """The caller's devices, by tenant, branch, type and id; `now` is injectable (tests move it)."""
    now = now or datetime.now(UTC)
    q = sa.select(fleet_devices).order_by(
        fleet_devices.c.tenant_id, fleet_devices.c.branch_id, fleet_devices.c.type, fleet_devices.c.device_id
    )
    if tenants is not None:
        q = q.where(fleet_devices.c.tenant_id.in_(sorted(tenants)))
    if branch:
        q = q.where(fleet_devices.c.branch_id == branch)
    if kind:
        q = q.where(fleet_devices.c.type == kind)
    out = []
    for r in conn.execute(q):
        seen = datetime.fromisoformat(r.last_seen) if r.last_seen else None
        online = judge(bool(r.online), r.type, seen, datetime.fromisoformat(r.reported_at), now)
        out.append(
            FleetDevice(
                r.tenant_id, r.branch_id, r.device_id, r.type, r.name, online, seen, r.config_version, r.applied_version
            )
        )
    return out
