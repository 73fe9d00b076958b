"""`qms-edge doctor`: every check a field technician would make on an appliance, each finding in words with what to do.

The checks read the data dir, the running appliance's link file and the host; everything that depends on the world
outside (the time, disk usage, a reference clock, chrony, sound cards, TCP reachability) goes through `Probes`, so a
test injects a full disk, a clock that is off or a dead printer without touching the machine. Findings are `ok`,
`warn` (worth a look, the branch still works) or `fault` (something customers or the hub will notice); the command
exits non-zero when any fault is found.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

if TYPE_CHECKING:
    from edge.devices.discovery import Seen

Status = Literal["ok", "warn", "fault"]
Printers = dict[str, tuple[str, int, str | None]]  # name -> (host, port, device file)
DeviceRow = tuple[str, str, bool, str | None]  # name, type, online, last_seen

# Thresholds, named so a technician reading the code knows why a finding fired.
DISK_MIN_FREE_BYTES = 500 * 1024 * 1024  # below this SQLite checkpoints and backups start failing
DISK_MIN_FREE_FRACTION = 0.05
CLOCK_WARN_SECONDS = 2.0  # tickets' times are shown to the minute; a couple of seconds is harmless
CLOCK_FAULT_SECONDS = 30.0  # beyond this the hub's KPIs (wait times) and certificates' validity go wrong
BACKUP_MAX_AGE = timedelta(hours=26)  # a daily backup plus slack
CERT_WARN_BEFORE = timedelta(days=14)
DEVICE_SILENT_AFTER = timedelta(minutes=5)
CONNECT_TIMEOUT = 2.0
HUB_URL_ENV = "QMS_HUB_URL"  # the hub the appliance was enrolled with (written by `qms-edge enrol` too)
NTP_SERVER_ENV = "QMS_NTP_SERVER"
TLS_CERT_ENV = "QMS_TLS_CERT"
NTP_EPOCH_OFFSET = 2208988800  # seconds between 1900-01-01 (NTP) and 1970-01-01 (Unix)


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was found, and (unless ok) what the technician should do."""

    check: str
    status: Status
    message: str
    fix: str = ""


def _ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def _warn(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "warn", message, fix)


def _fault(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "fault", message, fix)


def _now() -> datetime:
    return datetime.now(UTC)


def _reference_clock() -> tuple[str, datetime] | None:
    """The time according to the hub (its HTTP `Date`), else an NTP server; None when neither answers."""
    hub = os.environ.get(HUB_URL_ENV, "").rstrip("/")
    if hub:
        with contextlib.suppress(httpx.HTTPError, ValueError, TypeError):
            response = httpx.get(f"{hub}/api/v1/health", timeout=CONNECT_TIMEOUT)
            if date := response.headers.get("date"):
                return f"the hub ({hub})", parsedate_to_datetime(date).astimezone(UTC)
    server = os.environ.get(NTP_SERVER_ENV, "pool.ntp.org")
    with contextlib.suppress(OSError, struct.error):
        return f"NTP server {server}", sntp_time(server)
    return None


def sntp_time(server: str, timeout: float = CONNECT_TIMEOUT) -> datetime:
    """One SNTP (RFC 4330) query: the server's transmit timestamp, corrected by half the round trip."""
    packet = b"\x23" + 47 * b"\0"  # LI 0, version 4, mode 3 (client)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sent = time.time()
        sock.sendto(packet, (server, 123))
        data, _ = sock.recvfrom(512)
        received = time.time()
    seconds, fraction = struct.unpack("!II", data[40:48])
    server_time = seconds - NTP_EPOCH_OFFSET + fraction / 2**32 + (received - sent) / 2
    return datetime.fromtimestamp(server_time, UTC)


def _chrony_tracking() -> str | None:
    """`chronyc -n tracking` output, or None when chrony is not installed or its daemon does not answer."""
    if (chronyc := shutil.which("chronyc")) is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([chronyc, "-n", "tracking"], capture_output=True, text=True, timeout=5, check=False)  # noqa: S603 - fixed argv
        if done.returncode == 0:
            return done.stdout
    return None


def _sound_cards() -> list[str] | None:
    """The ALSA playback cards (`aplay -l`), or None when alsa-utils is missing."""
    if (aplay := shutil.which("aplay")) is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([aplay, "-l"], capture_output=True, text=True, timeout=5, check=False)  # noqa: S603 - fixed argv
        return [line for line in done.stdout.splitlines() if line.startswith("card ")]
    return []


def _connect(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def _system_zone() -> str:
    """The host's time zone name (TZ, /etc/timezone, or the /etc/localtime link), '' when unknown."""
    if tz := os.environ.get("TZ", "").lstrip(":"):
        return tz
    with contextlib.suppress(OSError):
        return Path("/etc/timezone").read_text().strip()
    with contextlib.suppress(OSError):
        target = str(Path("/etc/localtime").readlink())
        return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    return ""


@dataclass
class Probes:
    """The doctor's view of the world outside the data dir; tests replace single fields to inject a fault."""

    now: Callable[[], datetime] = _now
    reference_clock: Callable[[], tuple[str, datetime] | None] = _reference_clock
    disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage  # (total, used, free)
    chrony_tracking: Callable[[], str | None] = _chrony_tracking
    sound_cards: Callable[[], list[str] | None] = _sound_cards
    connect: Callable[[str, int, float], None] = _connect
    system_zone: Callable[[], str] = _system_zone
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def check_disk(data_dir: Path, probes: Probes) -> Finding:
    """Free space on the data dir's filesystem."""
    total, _used, free = probes.disk_usage(data_dir)
    text = f"{free / 2**20:.0f} MiB free of {total / 2**20:.0f} MiB on the data partition"
    if free < DISK_MIN_FREE_BYTES or (total and free / total < DISK_MIN_FREE_FRACTION):
        return _fault(
            "disk",
            f"disk almost full: {text}",
            "delete old backups or voice packs, or move backups off the card (QMS_BACKUP_DIR); a full disk stops "
            "ticket issuing",
        )
    return _ok("disk", text)


def check_clock(probes: Probes) -> Finding:
    """The clock against the hub or NTP when reachable; otherwise chrony's own opinion of its sync."""
    reference = probes.reference_clock()
    tracking = probes.chrony_tracking()
    synced = None if tracking is None else "Not synchronised" not in tracking
    if reference is not None:
        source, then = reference
        skew = (probes.now() - then).total_seconds()
        words = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} {source}"
        if abs(skew) >= CLOCK_FAULT_SECONDS:
            return _fault(
                "clock",
                f"clock is off: {words}",
                "check chrony (`chronyc sources`): the appliance needs a reachable NTP server (a Pi has no "
                "battery clock); then `sudo chronyc makestep`",
            )
        if abs(skew) >= CLOCK_WARN_SECONDS:
            return _warn("clock", f"clock drifts: {words}", "check `chronyc tracking`; chrony corrects slowly")
        return _ok("clock", f"clock within {abs(skew):.1f} s of {source}")
    if synced is None:
        return _warn(
            "clock",
            "no time reference reachable and chrony is not running",
            "install/start chrony (`systemctl status chrony`) and give it a reachable NTP server",
        )
    if not synced:
        return _fault(
            "clock",
            "clock not synchronised: chrony has no usable time source",
            "check the network and `chronyc sources`; after a power cut a Pi starts at its last shutdown time",
        )
    return _ok("clock", "chrony reports the clock synchronised (no hub or NTP reachable from here to compare)")


def check_time_zone(branch_zone: str | None, probes: Probes) -> Finding:
    """The branch's configured zone exists in the tz database; the host's zone is shown beside it."""
    host = probes.system_zone() or "unknown"
    if not branch_zone:
        return _ok("time zone", f"no branch configuration yet; host zone {host}")
    try:
        ZoneInfo(branch_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fault(
            "time zone",
            f"the branch's time zone {branch_zone!r} is unknown",
            "correct `timezone` in the branch configuration (e.g. Asia/Jakarta) and apply it",
        )
    return _ok("time zone", f"branch {branch_zone} (tickets and reports use it); host {host}")


def check_database(data_dir: Path) -> Finding:
    """`qms-edge verify`: the file's pages and the event log's hash chain."""
    from edge.backup import check_database as check_file

    path = data_dir / "qms.sqlite3"
    if not path.exists():
        return _fault("database", f"no database in {data_dir}", "check QMS_DATA_DIR / the data partition's mount")
    try:
        result = check_file(path)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and str(exc) in ("disk I/O error", "database or disk is full"):
            return _fault(
                "database",
                f"the database cannot be opened: {exc}",
                "the data partition is probably full (see the disk check): free space, then run the doctor again; "
                "do not restore a backup for this",
            )
        return _fault("database", f"the database file is unreadable: {exc}", "restore the last good backup")
    if not result.ok:
        return _fault(
            "database",
            result.problem,
            "stop the appliance, keep the broken file, restore the last good backup (`qms-edge restore`)",
        )
    return _ok("database", f"{result.events} events, chain intact, file intact")


def backups_dir(data_dir: Path, env: dict[str, str]) -> Path:
    """Where `qms-edge backup` archives are expected (the rule of edge.metrics.HostCollector.backups_dir)."""
    from edge.metrics import BACKUP_DIR_ENV

    return Path(env.get(BACKUP_DIR_ENV) or data_dir.parent / "backups")


def check_backups(data_dir: Path, probes: Probes) -> Finding:
    """The newest backup archive's age."""
    where = backups_dir(data_dir, probes.env).absolute()  # `--data-dir qms` made it "backups": say where exactly
    newest = max((p.stat().st_mtime for p in where.glob("*.tar.gz")), default=None) if where.is_dir() else None
    if newest is None:
        said = f"No backup yet: {where} has no backup archive (*.tar.gz)." if where.is_dir() else (
            f"No backup yet: the backup folder {where} does not exist.")  # fmt: skip
        return _warn(
            "backups",
            said,
            f"run `qms-edge backup {where / 'first.tar.gz'} --data-dir {data_dir.absolute()}` (and schedule it daily)",
        )
    age = probes.now() - datetime.fromtimestamp(newest, UTC)
    hours = age.total_seconds() / 3600
    if age > BACKUP_MAX_AGE:
        return _warn("backups", f"newest backup is {hours:.0f} h old", "check the daily backup job's log")
    return _ok("backups", f"newest backup {hours:.1f} h old in {where}")


def check_backup_shipping(data_dir: Path) -> Finding:
    """Scheduled backups shipped to the hub (edge/backup_ship.py): copies waiting and the last upload error."""
    from edge.backup_ship import read_status

    status = read_status(data_dir)
    if not status.get("ships"):
        return _ok("backup shipping", "backups are not shipped to a hub (not enrolled, or the hub has no backup key)")
    waiting, error = int(status.get("pending") or 0), status.get("upload_error")
    if waiting and error:
        fix = "check the link to the hub (the link check below); uploads retry by themselves"
        return _warn("backup shipping", f"{waiting} sealed backup(s) wait for the hub; last error: {error}", fix)
    return _ok("backup shipping", f"shipped to the hub; {waiting} waiting")


S3_FIXES = (  # (what the store's error says, the fault in words, what to do), first match wins
    (
        ("NoSuchBucket",),
        "the bucket {bucket} does not exist at the store",
        "create the bucket, or correct QMS_BACKUP_S3_BUCKET (and QMS_BACKUP_S3_ENDPOINT) in the appliance's settings"
        " (/etc/qms), then restart qms-edge",
    ),
    (
        (" 403 ", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "Credentials"),
        "the store refused the key",
        "check QMS_BACKUP_S3_ACCESS_KEY / QMS_BACKUP_S3_SECRET_KEY, and that the key may list, write and delete under"
        " the prefix (s3:ListBucket, s3:PutObject, s3:DeleteObject); restart qms-edge after a change",
    ),
    (
        ("EndpointConnectionError", "ConnectTimeout", "ConnectionClosed", "ReadTimeout", "failed:"),
        "the store cannot be reached",
        "check QMS_BACKUP_S3_ENDPOINT and the branch's route to it (DNS, firewall, proxy); uploads retry by themselves",
    ),
)


def check_backup_s3(data_dir: Path, probes: Probes) -> Finding:
    """Sealed backups shipped to an S3-compatible store (QMS_BACKUP_S3_*): the last upload's error in words, and a
    fault once no backup has reached the store for a day."""
    from edge.backup_ship import ShipSettings, pending, read_status
    from sync.backup_seal import taken_of

    status = read_status(data_dir)
    bucket = probes.env.get("QMS_BACKUP_S3_BUCKET", "").strip()
    settings = ShipSettings.from_env(data_dir, probes.env)
    if not status.get("ships_s3"):
        if settings.to_s3:
            return _ok("backup S3", f"set to ship to {bucket}; no backup round since (the first comes a minute after"
                                    " qms-edge starts)")  # fmt: skip
        if bucket:
            return _warn(
                "backup S3",
                f"QMS_BACKUP_S3_BUCKET is set ({bucket}) but no sealed backup goes there yet",
                "enrol the appliance (`qms-edge enrol`: the hub's backup key comes with it) and restart qms-edge;"
                " the next backup is sealed and uploaded",
            )
        return _ok("backup S3", "backups do not go to an S3 store (QMS_BACKUP_S3_BUCKET not set)")
    error, failures = status.get("s3_error"), int(status.get("s3_failures") or 0)
    waiting = pending(settings, settings.outgoing_s3) if settings.outgoing_s3.is_dir() else []
    if not error:
        return _ok("backup S3", f"shipped to the S3 store; {len(waiting)} waiting")
    named = re.search(r"in bucket '([^']*)'", str(error))
    bucket = named.group(1) if named else bucket
    what, fix = "the upload failed", "uploads retry by themselves; see the log (journalctl -u qms-edge)"
    for needles, words, todo in S3_FIXES:
        if any(n in str(error) for n in needles):
            what, fix = words.format(bucket=bucket or "?"), todo
            break
    oldest = min((t for p in waiting if (t := taken_of(p.name)) is not None), default=None)
    hours = (probes.now() - oldest).total_seconds() / 3600 if oldest else 0.0
    tries = f"{failures} failed attempt(s) in a row"
    message = f"{what}; {len(waiting)} sealed backup(s) wait, {tries}; last error: {error}"
    if oldest is not None and probes.now() - oldest > BACKUP_MAX_AGE:
        return _fault("backup S3", f"no backup has reached the S3 store for {hours:.0f} h: {message}", fix)
    return _warn("backup S3", message, fix)


def check_link(data_dir: Path, probes: Probes) -> Finding:
    """The cloud link as the running appliance last recorded it, with its last error in words."""
    from edge.replication import read_link_state

    configured = bool(probes.env.get("QMS_NATS_URL"))
    info = read_link_state(data_dir)
    link = str(info.get("link") or "unknown")
    status = str(info.get("link_status") or link)
    error = str(info.get("link_error") or "")
    if link == "connected":
        if error:
            return _warn("hub link", f"connected, but: {error}", "see the hub operations guide for the warning")
        return _ok("hub link", status)
    if link == "not configured" or (link == "unknown" and not configured):
        said = "This appliance is not paired with a hub: no hub address (QMS_NATS_URL) is configured."
        if link == "unknown":
            said += " It has not served with this data directory yet."
        return _warn("hub link", said, "pair the appliance: `qms-edge enrol --hub … --code …`")
    if link in ("appliance not running", "unknown"):
        return _fault("hub link", status, "start the appliance: `sudo systemctl start qms-edge`")
    return _fault("hub link", f"{status}" + (f"; last error: {error}" if error else ""), _link_remedy(error))


def _link_remedy(error: str) -> str:
    """What to do about a link that is down, by its last error (sync.liveness.describe_link_error's words): the network
    is no remedy for a hub that reached us and refuses the credential."""
    from sync.liveness import RETIRED

    if error.startswith(RETIRED):
        return (
            "ask HQ to reactivate the branch (hub console, Branches), or enrol again with a new key (HQ issues a new"
            " enrolment code, then `qms-edge enrol --hub … --code …`); the branch keeps working offline and keeps its"
            " events meanwhile"
        )
    if error.startswith(("authorization failed", "permission denied")):
        return "install this branch's own seed (QMS_NATS_NKEY) as the last error says, or enrol again"
    return "check the network and the hub address (QMS_NATS_URL); `qms-edge status` shows the replication lag"


def check_certificates(data_dir: Path, probes: Probes) -> list[Finding]:
    """Expiry of the appliance's TLS certificate(s): QMS_TLS_CERT and what enrolment stored under `<data>/tls/`."""
    from cryptography import x509

    paths = [Path(p) for p in [probes.env.get(TLS_CERT_ENV, "")] if p]
    paths += sorted((data_dir / "tls").glob("*.crt")) if (data_dir / "tls").is_dir() else []
    findings = []
    for path in dict.fromkeys(paths):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            findings.append(_fault("certificate", f"cannot read {path}: {exc}", "re-enrol or restore the file"))
            continue
        left = cert.not_valid_after_utc - probes.now()
        if left <= timedelta(0):
            findings.append(
                _fault(
                    "certificate",
                    f"certificate {path.name} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                    "renew it: re-enrol with a new code from the hub console (`qms-edge enrol`)",
                )
            )
        elif left < CERT_WARN_BEFORE:
            findings.append(
                _warn("certificate", f"certificate {path.name} expires in {left.days} days", "renew it soon")
            )
        else:
            findings.append(_ok("certificate", f"{path.name} valid until {cert.not_valid_after_utc:%Y-%m-%d}"))
    return findings


def check_mosquitto(data_dir: Path, probes: Probes) -> Finding:
    """The branch's MQTT broker accepts connections where the appliance's bridge is told to connect."""
    from edge.devices.mqtt.bridge import load_settings

    settings = load_settings(data_dir)
    if settings is None:
        return _ok("mosquitto", "MQTT not configured (no buttons or displays on the bus)")
    try:
        probes.connect(settings.host, settings.port, CONNECT_TIMEOUT)
    except OSError as exc:
        return _fault(
            "mosquitto",
            f"Mosquitto not reachable at {settings.host}:{settings.port} ({exc.strerror or exc}): buttons and "
            "displays are cut off",
            "`sudo systemctl restart mosquitto`, then `journalctl -u mosquitto`",
        )
    return _ok("mosquitto", f"Mosquitto answers at {settings.host}:{settings.port}")


def check_printers(printers: Printers, probes: Probes) -> list[Finding]:
    """Each configured kiosk printer: a LAN printer accepts a connection, a USB one's device file exists."""
    findings = []
    for name, (host, port, device) in sorted(printers.items()):
        if device:
            if Path(device).exists():
                findings.append(_ok("printer", f"{name}: {device} present"))
            else:
                findings.append(
                    _fault("printer", f"{name}: {device} missing", "plug the USB printer in and switch it on")
                )
            continue
        try:
            probes.connect(host, port, CONNECT_TIMEOUT)
        except OSError as exc:
            findings.append(
                _fault(
                    "printer",
                    f"{name}: printer {host}:{port} unreachable ({exc.strerror or exc})",
                    "check its power, network cable and IP address; kiosks fall back to on-screen tickets",
                )
            )
        else:
            findings.append(_ok("printer", f"{name}: {host}:{port} answers"))
    return findings


def check_speakers(probes: Probes) -> Finding:
    """A sound card for announcements."""
    cards = probes.sound_cards()
    if cards is None:
        return _warn("speakers", "alsa-utils not installed: announcements are silent", "apt-get install alsa-utils")
    if not cards:
        return _warn(
            "speakers",
            "no sound card found: announcements are silent",
            "plug in the USB speaker / amplifier and check `aplay -l`",
        )
    return _ok("speakers", "; ".join(cards))


def check_mdns(probes: Probes, scan: Callable[[float], list[Seen]] | None, port: int | None) -> Finding:
    """Devices find the appliance by mDNS (`_qms._tcp`): off, or seen on the LAN at its port while it runs."""
    from edge.devices.discovery import SERVICE_TYPE

    flag = probes.env.get("QMS_MDNS", "1").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return _warn("mdns", "mDNS advertising is off (QMS_MDNS=0)", "devices need the appliance's address typed in")
    if scan is None or port is None:
        return _ok("mdns", "mDNS advertising on (the appliance is not running: not scanned)")
    seen = [s for s in scan(2.0) if s.service_type == SERVICE_TYPE and s.port == port]
    if not seen:
        return _fault(
            "mdns",
            f"the appliance (port {port}) is not visible by mDNS on the LAN: devices cannot find it",
            "check the LAN allows multicast (UDP 5353) and QMS_MDNS_INTERFACES; restart qms-edge",
        )
    return _ok("mdns", f"visible as {seen[0].name} on {', '.join(seen[0].addresses)}")


def check_devices(rows: list[DeviceRow], probes: Probes) -> list[Finding]:
    """Active devices (name, type, online, last_seen): the silent ones by name with when they were last seen."""
    now = probes.now()
    silent = []
    for name, kind, online, last_seen in rows:
        if online:
            continue
        seen = datetime.fromisoformat(last_seen) if last_seen else None
        if seen is None or now - seen > DEVICE_SILENT_AFTER:
            silent.append(f"{kind} {name} (last seen {seen:%Y-%m-%d %H:%M} UTC)" if seen else f"{kind} {name} (never)")
    if silent:
        return [_warn("devices", f"offline: {', '.join(silent)}", "check their power and Wi-Fi; `qms-edge devices`")]
    return [_ok("devices", f"{len(rows)} active device(s), all online" if rows else "no devices registered")]


def check_offline_refused(data_dir: Path) -> Finding:
    """Offline kiosk tickets the appliance refused that no one has handled: customers holding unknown numbers."""
    from edge.offline_refused import count_open
    from edge.store.db import connect

    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        waiting = count_open(conn)
    except sqlite3.OperationalError:  # a database the appliance has not migrated yet has none
        waiting = 0
    finally:
        conn.close()
    if waiting:
        return _warn("offline", f"{waiting} offline kiosk ticket(s) refused and not yet handled",
                     "a supervisor issues a real ticket or dismisses each on the Supervisor page (Offline tickets "
                     "refused); `GET /api/v1/kiosk/offline-refused` lists them")  # fmt: skip
    return _ok("offline", "no refused offline kiosk tickets waiting")


def _read_branch(data_dir: Path) -> tuple[str | None, Printers, list[DeviceRow]]:
    """The branch's zone, its kiosk printers and active devices, read-only (never while a broken file is open)."""
    from edge.devices.registry import list_devices
    from edge.store.db import connect
    from edge.store.projections import current_config

    conn = connect(data_dir / "qms.sqlite3", readonly=True)
    try:
        config = current_config(conn)
        devices: list[DeviceRow] = [
            (d.name, str(d.type), d.online, d.last_seen) for d in list_devices(conn) if d.status == "active"
        ]
    finally:
        conn.close()
    if config is None:
        return None, {}, devices
    kiosk = config.kiosk
    printers = {}
    if kiosk.printer is not None:
        printers["kiosk printer"] = (kiosk.printer.host or "", kiosk.printer.port, kiosk.printer.device)
    for kiosk_id, printer in kiosk.printers.items():
        printers[f"printer of {kiosk_id}"] = (printer.host or "", printer.port, printer.device)
    return config.timezone, printers, devices


def run(
    data_dir: Path,
    probes: Probes | None = None,
    *,
    scan: Callable[[float], list[Seen]] | None = None,
    port: int | None = None,
) -> list[Finding]:
    """All checks, in the order a technician would look; `scan` + `port` (the running appliance's) check mDNS."""
    probes = probes or Probes()
    findings = [check_disk(data_dir, probes), check_clock(probes)]
    database = check_database(data_dir)
    zone: str | None = None
    printers: Printers = {}
    devices: list[DeviceRow] = []
    if database.status == "ok":
        zone, printers, devices = _read_branch(data_dir)
    findings.append(check_time_zone(zone, probes))
    findings += [
        database,
        check_backups(data_dir, probes),
        check_backup_shipping(data_dir),
        check_backup_s3(data_dir, probes),
        check_link(data_dir, probes),
    ]
    findings += check_certificates(data_dir, probes)
    findings.append(check_mosquitto(data_dir, probes))
    findings += check_printers(printers, probes)
    findings += [check_speakers(probes), check_mdns(probes, scan, port)]
    findings += check_devices(devices, probes)
    if database.status == "ok":
        findings.append(check_offline_refused(data_dir))
    return findings


def report(findings: list[Finding]) -> str:
    """The human-readable report: one line per check, what to do under each finding that is not ok."""
    marks = {"ok": "ok   ", "warn": "WARN ", "fault": "FAULT"}
    lines = []
    for f in findings:
        lines.append(f"{marks[f.status]} {f.check:12} {f.message}")
        if f.fix:
            lines.append(f"{'':19}-> {f.fix}")
    faults = sum(f.status == "fault" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    lines.append(f"{faults} fault(s), {warns} warning(s)" if faults or warns else "all checks passed")
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> list[dict[str, str]]:
    """The findings as JSON-ready dicts."""
    return [asdict(f) for f in findings]
