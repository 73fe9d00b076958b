"""`/api/v1/devices`: registry and pairing (admin), presence (admin, supervisor), fleet config (devices)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta, Struct

from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from edge.auth import Principal
from edge.devices import fleet, registry
from edge.devices.mqtt.topics import SEGMENT_RE
from edge.web.deps import Appliance, audit_entry, client_address, provide_principal, require_role
from edge.web.problems import ApiError

AppDep = NamedDependency[Appliance]
Caller = NamedDependency[Principal]
DeviceId = Annotated[str, Meta(pattern=SEGMENT_RE.pattern)]


class AddDevice(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /devices`."""

    device_id: DeviceId
    type: Literal["kiosk", "display", "button", "led"]
    name: Annotated[str, Meta(max_length=100)] | None = None
    area_id: Annotated[str, Meta(max_length=64)] | None = None
    counter_id: Annotated[str, Meta(max_length=64)] | None = None


class PairBody(Struct, forbid_unknown_fields=True):
    """`POST /devices/pair`."""

    code: Annotated[str, Meta(min_length=4, max_length=32)]


class ConfigBody(Struct, forbid_unknown_fields=True):
    """`PUT /devices/{id}/config`."""

    config: dict[str, Any]


class AckBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /devices/me/config/ack`."""

    version: Annotated[int, Meta(ge=1)]
    ok: bool
    error: Annotated[str, Meta(max_length=500)] | None = None


async def _write(app: Appliance, fn: Any, *, logins_changed: bool = False, audit: AuditEntry | None = None) -> Any:
    """Run a registry write in the single writer (with its audit row in the same transaction), then drop the access
    cache (and update the broker's logins)."""

    def write(conn: sqlite3.Connection) -> Any:
        result = fn(conn)
        if audit is not None:
            insert_audit(conn, audit, datetime.now(UTC))
        return result

    try:
        return await asyncio.wrap_future(app.service.submit_store(write))
    finally:
        if app.devices is not None:
            app.devices.access.invalidate()
            if logins_changed:
                await asyncio.to_thread(app.devices.registry_changed)


def _view(app: Appliance, device: registry.Device) -> dict[str, Any]:
    data = msgspec.to_builtins(device)
    live = app.devices.presence().get(device.device_id) if app.devices else None
    if live is not None:  # the bridge's view is fresher than the stored one (which it writes asynchronously)
        data["online"] = live[0]
        data["last_seen"] = live[1].isoformat()
    return data


def _device_principal(principal: Principal) -> str:
    if principal.role != "device":
        raise ApiError(403, "forbidden", "only a device may fetch or acknowledge its own config")
    return principal.username


class DeviceController(Controller):
    """Devices of the branch: pair, list, revoke, and their versioned config."""

    path = "/devices"
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", summary="List devices with presence")
    async def list_devices(self, app: AppDep, principal: Caller) -> dict[str, Any]:
        """Every device with its status, assignment, online/offline, last seen and config versions."""
        require_role(principal, "admin", "supervisor")
        devices = app.service.read(registry.list_devices)
        return {"devices": [_view(app, d) for d in devices]}

    @post("/", status_code=201, summary="Register a device and get its pairing code")
    async def add(
        self, request: Request[Any, Any, Any], data: JSONBody[AddDevice], app: AppDep, principal: Caller
    ) -> dict[str, Any]:
        """Register (or re-register) a device; the pairing code is shown once and expires in 15 minutes."""
        require_role(principal, "admin")
        code = registry.new_pairing_code()
        now = datetime.now(UTC)
        device = await _write(
            app,
            lambda conn: registry.add_device(
                conn,
                device_id=data.device_id,
                device_type=data.type,
                code=code,
                now=now,
                name=data.name,
                area_id=data.area_id,
                counter_id=data.counter_id,
            ),
            audit=audit_entry(
                request,
                principal.username,
                principal.role,
                "device_add",
                f"device:{data.device_id}",
                type=data.type,
                area=data.area_id,
                counter=data.counter_id,
                via="api",
            ),
        )
        expires = (now + registry.PAIRING_TTL).isoformat()
        return {"device": _view(app, device), "pairing_code": code, "pairing_expires_at": expires}

    @post("/{device_id:str}/revoke", status_code=200, summary="Revoke a device")
    async def revoke(
        self, request: Request[Any, Any, Any], device_id: FromPath[str], app: AppDep, principal: Caller
    ) -> dict[str, Any]:
        """Cut a device off at once: its token is refused from the next request and its broker login is removed."""
        require_role(principal, "admin")
        now = datetime.now(UTC)
        audit = audit_entry(
            request, principal.username, principal.role, "device_revoke", f"device:{device_id}", via="api"
        )
        device = await _write(app, lambda conn: registry.revoke(conn, device_id, now), logins_changed=True, audit=audit)
        return _view(app, device)

    @put("/{device_id:str}/config", status_code=200, summary="Publish a new config version for a device")
    async def set_config(
        self,
        request: Request[Any, Any, Any],
        device_id: FromPath[str],
        data: JSONBody[ConfigBody],
        app: AppDep,
        principal: Caller,
    ) -> dict[str, Any]:
        """Store the next config version; the device fetches it by version."""
        require_role(principal, "admin")
        now = datetime.now(UTC)
        audit = audit_entry(
            request, principal.username, principal.role, "device_config", f"device:{device_id}", via="api"
        )
        version = await _write(app, lambda conn: fleet.set_config(conn, device_id, data.config, now), audit=audit)
        return {"device_id": device_id, "version": version}

    @get("/me/config", summary="A device's config (newest, or ?version=)")
    async def my_config(
        self, app: AppDep, principal: Caller, version: FromQuery[int | None] = None
    ) -> Response[dict[str, Any]]:
        """The calling device's config: the newest version, or `?version=N` (e.g. its last good one)."""
        device_id = _device_principal(principal)
        found = app.service.read(lambda conn: fleet.get_config(conn, device_id, version))
        return Response(found, headers={"ETag": f'"{found["version"]}"'})

    @post("/me/config/ack", status_code=200, summary="Acknowledge a config version")
    async def ack(self, data: JSONBody[AckBody], app: AppDep, principal: Caller) -> dict[str, Any]:
        """Report an apply: `ok` makes it the last good version; a failure is recorded and rolled back."""
        device_id = _device_principal(principal)
        return await _write(app, lambda conn: fleet.acknowledge(conn, device_id, data.version, data.ok, data.error))


class PairingController(Controller):
    """`POST /devices/pair`: a device redeems the code the admin page showed (no token yet: the code is the secret)."""

    path = "/devices/pair"

    @post("/", status_code=200, summary="Pair a device with its code")
    async def pair(self, request: Request[Any, Any, Any], data: JSONBody[PairBody], app: AppDep) -> dict[str, Any]:
        """Redeem a pairing code: the device's token and MQTT credentials (shown once). Failures are throttled."""
        attempt = app.throttle.attempt(f"pair:{client_address(request)}")  # counted before the code is tried
        if attempt.wait:
            raise ApiError(
                429, "too_many_attempts", "too many failed pairings; try later",
                headers={"Retry-After": str(attempt.wait)}, retry_after=attempt.wait,
            )  # fmt: skip
        now = datetime.now(UTC)
        paired = audit_entry(request, "?", "device", "device_paired", None, via="api")  # actor: the device, once known

        def pair(conn: sqlite3.Connection) -> registry.Device:
            device = registry.pair(conn, data.code, now)
            insert_audit(
                conn, msgspec.structs.replace(paired, actor=device.device_id, target=f"device:{device.device_id}"), now
            )
            return device

        device = await _write(app, pair, logins_changed=True)
        attempt.succeeded()
        return credentials(app, device)


def credentials(app: Appliance, device: registry.Device) -> dict[str, Any]:
    """What a freshly paired device needs: its API token and its MQTT login."""
    from edge.auth import load_secret

    return registry.credentials(load_secret(app.service.data_dir), device, app.service.view.state.branch_id)
