"""`qms-edge devices …`: register, pair, list and revoke devices, generate the broker files, scan the LAN."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from edge.devices import registry

devices_app = typer.Typer(help="Kiosks, displays, call buttons and LED displays of this branch.", no_args_is_help=True)
DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar="QMS_DATA_DIR", help="Where the database lives.")]
DEFAULT_DATA = Path("/var/lib/qms-edge")
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _write(data_dir: Path, fn: Any, action: str | None = None, target: str | None = None, **detail: Any) -> Any:
    """Run a registry write through a single writer on the data dir (a running appliance sees it at once), with
    its audit row (`action`) in the same transaction."""
    from edge.audit import insert, technician_entry
    from edge.engine.errors import DomainError
    from edge.service import QueueService

    if action is not None:
        write = fn

        def fn(conn: Any) -> Any:
            result = write(conn)
            insert(conn, technician_entry(action, target, detail), datetime.now(UTC))
            return result

    if not (data_dir / "qms.sqlite3").exists():
        raise _fail(f"no appliance database in {data_dir} (use --data-dir or QMS_DATA_DIR)")
    service = QueueService(data_dir)
    try:
        service.start()
        return service.submit_store(fn).result(timeout=30)
    except DomainError as exc:
        raise _fail(f"refused ({exc.code}): {exc.detail}") from None
    finally:
        service.stop()


def _read(data_dir: Path, fn: Any) -> Any:
    from edge.store.db import connect

    if not (data_dir / "qms.sqlite3").exists():
        raise _fail(f"no appliance database in {data_dir} (use --data-dir or QMS_DATA_DIR)")
    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        return fn(conn)
    finally:
        conn.close()


def _update_broker(data_dir: Path) -> str:
    """Rewrite and reload the broker's logins when this data dir has MQTT configured; says what happened."""
    from edge.auth import load_secret
    from edge.devices.mqtt.broker import regenerate
    from edge.store.projections import load_state

    devices = _read(data_dir, registry.list_devices)
    branch = _read(data_dir, lambda conn: load_state(conn).branch_id)
    try:
        if regenerate(data_dir, branch=branch, secret=load_secret(data_dir), devices=devices):
            return "broker logins rewritten and the broker reloaded"
    except (OSError, RuntimeError) as exc:
        return f"could not update the broker ({exc}); run `qms-edge devices mqtt-config` and reload mosquitto"
    return "reload the broker after `qms-edge devices mqtt-config` (no running broker of this data dir found)"


@devices_app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(help="A stable id, e.g. `btn-counter-1`.")],
    device_type: Annotated[str, typer.Option("--type", help="kiosk, display, button or led.")] = "button",
    counter: Annotated[str, typer.Option(help="The counter a button/LED display belongs to.")] = "",
    area: Annotated[str, typer.Option(help="The area a kiosk/display serves.")] = "",
    name: Annotated[str, typer.Option(help="A readable name.")] = "",
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Register a device and print its pairing code (valid 15 minutes)."""
    code = registry.new_pairing_code()
    now = datetime.now(UTC)
    device = _write(
        data_dir,
        lambda conn: registry.add_device(
            conn, device_id=device_id, device_type=device_type, code=code, now=now, name=name or None,
            area_id=area or None, counter_id=counter or None,
        ),
        "device_add", f"device:{device_id}", type=device_type, counter=counter, area=area,
    )  # fmt: skip
    typer.echo(f"device {device.device_id} ({device.type}) registered; pairing code {code[:4]}-{code[4:]}")
    typer.echo(f"valid until {(now + registry.PAIRING_TTL).isoformat(timespec='seconds')}")


@devices_app.command("pair")
def pair(
    code: Annotated[str, typer.Argument(help="The pairing code `qms-edge devices add` or the admin page showed.")],
    data_dir: DataDir = DEFAULT_DATA,
    as_json: AsJson = False,
) -> None:
    """Pair a device by its code and print its credentials (for devices you provision by hand, e.g. ESPHome)."""
    from edge.auth import load_secret
    from edge.store.projections import load_state

    now = datetime.now(UTC)
    device = _write(data_dir, lambda conn: registry.pair(conn, code, now), "device_paired", None, via="cli")
    branch = _read(data_dir, lambda conn: load_state(conn).branch_id)
    creds = registry.credentials(load_secret(data_dir), device, branch)
    if as_json:
        typer.echo(json.dumps(creds, indent=2))
        return
    typer.echo(f"device {device.device_id} paired (branch {branch}); put these into the device's secrets:")
    for key, value in creds.items():
        typer.echo(f"  {key}: {value}")
    typer.echo(_update_broker(data_dir))


@devices_app.command("list")
def list_(data_dir: DataDir = DEFAULT_DATA, as_json: AsJson = False) -> None:
    """List devices with status, assignment, online/offline, last seen and config versions."""
    devices = _read(data_dir, registry.list_devices)
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(devices), indent=2))
        return
    for d in devices:
        where = f"counter {d.counter_id}" if d.counter_id else f"area {d.area_id or '-'}"
        typer.echo(
            f"{d.device_id:20} {d.type:8} {d.status:8} {where:16} {'online' if d.online else 'offline':8}"
            f" last seen {d.last_seen or '-'}  config v{d.applied_version}/{d.config_version}"
            + (f"  error: {d.apply_error}" if d.apply_error else "")
        )


@devices_app.command("revoke")
def revoke(device_id: str, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Revoke a device: its token is refused at once and its MQTT login is removed from the broker."""
    now = datetime.now(UTC)
    _write(data_dir, lambda conn: registry.revoke(conn, device_id, now), "device_revoke", f"device:{device_id}")
    typer.echo(f"device {device_id} revoked; {_update_broker(data_dir)}")


@devices_app.command("mqtt-config")
def mqtt_config(
    out: Annotated[Path, typer.Option(help="Where to write mosquitto.conf, passwd and acl.")] = Path(
        "/etc/mosquitto/qms"
    ),
    port: Annotated[int, typer.Option(help="The broker's port.")] = 1883,
    bind: Annotated[str, typer.Option(help="The address the broker listens on.")] = "0.0.0.0",
    persistence: Annotated[bool, typer.Option(help="Keep retained messages across broker restarts.")] = True,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Generate the broker's files from the registry: one login per device, an ACL to its own topics, no anonymous."""
    from edge.auth import load_secret
    from edge.devices.mqtt.broker import write_broker_files
    from edge.store.projections import load_state

    devices = _read(data_dir, registry.list_devices)
    branch = _read(data_dir, lambda conn: load_state(conn).branch_id)
    if not branch:
        raise _fail("the branch has no configuration yet (qms-edge config apply)")
    try:
        written = write_broker_files(out, data_dir=data_dir, branch=branch, secret=load_secret(data_dir),
                                     devices=devices, port=port, bind=bind, persistence=persistence)  # fmt: skip
    except (RuntimeError, OSError) as exc:
        raise _fail(str(exc)) from None
    for path in written:
        typer.echo(f"wrote {path}")
    active = sum(1 for d in devices if d.status == "active")
    typer.echo(f"{active} device login(s) + the appliance's; start with `mosquitto -c {out / 'mosquitto.conf'}`")
    typer.echo("or reload a running broker (systemctl reload mosquitto / SIGHUP); restart qms-edge to (re)connect")


@devices_app.command("scan")
def scan(
    seconds: Annotated[float, typer.Option(help="How long to listen.")] = 3.0,
    as_json: AsJson = False,
) -> None:
    """List appliances (`_qms._tcp`), QMS devices and ESPHome boards announcing themselves by mDNS on the LAN."""
    from edge.devices.discovery import close_shared
    from edge.devices.discovery import scan as browse

    try:
        seen = browse(seconds)
    finally:
        close_shared()
    if as_json:
        typer.echo(json.dumps([s.__dict__ for s in seen], indent=2))
        return
    if not seen:
        typer.echo("nothing found")
    for s in seen:
        props = " ".join(f"{k}={v}" for k, v in sorted(s.properties.items()))
        typer.echo(f"{s.name:40} {','.join(s.addresses)}:{s.port}  {props}")
