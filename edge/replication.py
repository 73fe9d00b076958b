"""The appliance's cloud link: relay settings, the SQLite event source and cursor, and replication lag.

The relay itself (`sync.relay`) is storage-agnostic; this module binds it to the appliance: it reads the event log on
the read-only connection, writes the cursor through the single writer (`submit_store`), and reports lag from the
cursor table, so `qms-edge status` can show it without the server running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import msgspec

from edge import pii
from edge.analytics.hq_alerts import AlertsWatch
from edge.appointments.watch import BookingsWatch
from edge.devices.registry import fleet_states, list_devices
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.hq_commands import run_hq_command
from edge.service import QueueService
from edge.staff_watch import StaffWatch
from edge.store.datadir import write_private
from sync import crypto
from sync.config_watch import ConfigEntry, ConfigWatch
from sync.contract_config import BranchConfig, config_decoder, config_hash, short_hash
from sync.liveness import DEFAULT_INTERVAL, Beater, DeviceState, Heartbeat, HqCommand, HqReply, link_words
from sync.relay import LinkSettings, Outgoing, Relay, RelayStatus

CURSOR_NAME = "cloud"
LINK_FILE = "cloud-link.json"  # the running appliance's link state, for `qms-edge status` in another process
log = logging.getLogger("qms.replication")


def heartbeat_interval(env: dict[str, str] | None = None) -> float:
    """Seconds between heartbeats: `QMS_HEARTBEAT_SECONDS`, default 30."""
    value = (os.environ if env is None else env).get("QMS_HEARTBEAT_SECONDS", "").strip()
    return max(0.05, float(value)) if value else DEFAULT_INTERVAL


@dataclass(frozen=True)
class CloudLink:
    """Relay settings: CLI options or `QMS_NATS_URL`, `QMS_TENANT`, `QMS_BRANCH`, `QMS_NATS_NKEY` (seed file),
    `QMS_NATS_USER`/`QMS_NATS_PASSWORD`, `QMS_HEARTBEAT_SECONDS` (default 30)."""

    nats_url: str
    tenant: str
    branch_id: str | None = None  # until the first configuration arrives from the cloud
    nkey_seed_file: str | None = None
    user: str | None = None
    password: str | None = None
    batch_size: int = 1000
    config_poll_seconds: float = 2.0
    heartbeat_seconds: float = field(default_factory=heartbeat_interval)
    tls_ca: str | None = None  # QMS_NATS_TLS_CA / _CERT / _KEY: TLS (mutual with a certificate) to the hub's NATS
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CloudLink | None:
        """The link configured in the environment, or None (a standalone branch)."""
        env = dict(os.environ) if env is None else env
        url = env.get("QMS_NATS_URL", "").strip()
        if not url:
            return None
        return cls(
            nats_url=url,
            tenant=env.get("QMS_TENANT", "default"),
            branch_id=env.get("QMS_BRANCH") or None,
            nkey_seed_file=env.get("QMS_NATS_NKEY") or None,
            user=env.get("QMS_NATS_USER") or None,
            password=env.get("QMS_NATS_PASSWORD") or None,
            heartbeat_seconds=heartbeat_interval(env),
            tls_ca=env.get("QMS_NATS_TLS_CA") or None,
            tls_cert=env.get("QMS_NATS_TLS_CERT") or None,
            tls_key=env.get("QMS_NATS_TLS_KEY") or None,
        )

    def settings(self, branch_id: str) -> LinkSettings:
        """Connection settings for one branch."""
        servers = tuple(s.strip() for s in self.nats_url.split(",") if s.strip())
        return LinkSettings(
            servers=servers,
            tenant=self.tenant,
            branch_id=branch_id,
            nkey_seed_file=self.nkey_seed_file,
            user=self.user,
            password=self.password,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
        )


def read_outgoing(conn: sqlite3.Connection, after: int, limit: int) -> list[Outgoing]:
    """Events after `after` as the JSON the cloud verifies: the logged event with its hash put back."""
    rows = conn.execute(
        "SELECT seq, body, hash, ticket_id, type FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    # A ticket's contact key goes beside its ticket.created (a NATS header), never into the log (edge.pii).
    keys = pii.keys_of(conn, [tid for _, _, _, tid, kind in rows if kind == "ticket.created" and tid])
    out = []
    for seq, body, hash_, ticket_id, kind in rows:
        # The stored fields as they were hashed: re-encoding through today's structs would add fields introduced
        # since (with their defaults) and the cloud could no longer verify an older event's hash.
        fields = msgspec.json.decode(body)
        fields["hash"] = hash_
        occurred_at = datetime.fromisoformat(fields["occurred_at"]).timestamp()
        key = keys.get(ticket_id) if kind == "ticket.created" and fields.get("contact_sealed") else None
        out.append(Outgoing(seq=seq, payload=msgspec.json.encode(fields), occurred_at=occurred_at, hash=hash_,
                            contact_key=crypto.encode_key(key) if key else ""))  # fmt: skip
    return out


def load_cursor(conn: sqlite3.Connection, name: str = CURSOR_NAME) -> int:
    """The last seq the cloud's stream acknowledged (0 before the first ack)."""
    row = conn.execute("SELECT acked_seq FROM replication_cursor WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def load_cursor_state(conn: sqlite3.Connection, name: str = CURSOR_NAME) -> tuple[int, int]:
    """The cursor and its resend epoch ((0, 0) before the first ack)."""
    row = conn.execute("SELECT acked_seq, epoch FROM replication_cursor WHERE name = ?", (name,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def store_cursor(conn: sqlite3.Connection, seq: int, epoch: int = 0, name: str = CURSOR_NAME) -> None:
    """Advance the cursor (inside the writer's transaction); it never moves backwards, and a relay still in an
    older resend epoch cannot move it at all (its batch predates the rewind)."""
    conn.execute(
        "INSERT INTO replication_cursor (name, acked_seq, acked_at, epoch) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq),"
        " acked_at = excluded.acked_at WHERE replication_cursor.epoch = excluded.epoch",
        (name, seq, datetime.now(UTC).isoformat(), epoch),
    )


class ResendRefused(Exception):
    """The seq to resend from is outside the log."""


def rewind_cursor(conn: sqlite3.Connection, from_seq: int, name: str = CURSOR_NAME) -> tuple[int, int, int]:
    """Make the relay ship again from `from_seq` (inside a write transaction): the cursor goes to `from_seq - 1` and
    the resend epoch up by one; returns (cursor before, new epoch, last seq in the log)."""
    head = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    if not 1 <= from_seq <= head + 1:
        raise ResendRefused(f"--from-seq must be between 1 and {head + 1} (the log ends at seq {head})")
    before, epoch = load_cursor_state(conn, name)
    conn.execute(
        "INSERT INTO replication_cursor (name, acked_seq, acked_at, epoch) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET acked_seq = excluded.acked_seq, acked_at = excluded.acked_at,"
        " epoch = excluded.epoch",
        (name, from_seq - 1, datetime.now(UTC).isoformat(), epoch + 1),
    )
    return before, epoch + 1, int(head)


class ServiceSource:
    """The relay's `EventSource` over a running QueueService: reads on the shared read connection, writes the
    cursor through the single writer."""

    def __init__(self, service: QueueService) -> None:
        self.service = service

    def read_after(self, seq: int, limit: int) -> Sequence[Outgoing]:
        """Committed events after `seq` (called from a worker thread)."""
        result: list[Outgoing] = self.service.read(lambda conn: read_outgoing(conn, seq, limit))
        book = self.service.correlations  # the request behind each event, while it is remembered
        return [replace(o, correlation_id=cid) if (cid := book.get(o.seq)) else o for o in result]

    async def save_cursor(self, seq: int, epoch: int) -> None:
        """Persist the cursor in the writer's transaction and wait for its commit."""
        await asyncio.wrap_future(self.service.submit_store(lambda conn: store_cursor(conn, seq, epoch)))

    def read_cursor(self) -> tuple[int, int]:
        """The stored cursor and resend epoch (a `qms-edge replication resend` may have rewound it)."""
        state: tuple[int, int] = self.service.read(load_cursor_state)
        return state


def lag(conn: sqlite3.Connection, now: float | None = None) -> dict[str, Any]:
    """Replication lag from the cursor table and the log: events not yet acknowledged and the age of the oldest."""
    now = time.time() if now is None else now
    head = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    try:
        row = conn.execute(
            "SELECT acked_seq, acked_at FROM replication_cursor WHERE name = ?", (CURSOR_NAME,)
        ).fetchone()
    except sqlite3.OperationalError:  # a database the appliance has not migrated yet: nothing shipped
        row = None
    acked = int(row[0]) if row else 0
    oldest = conn.execute("SELECT occurred_at FROM events WHERE seq = ?", (acked + 1,)).fetchone()
    seconds = max(0.0, now - datetime.fromisoformat(oldest[0]).timestamp()) if oldest else 0.0
    return {
        "acked_seq": acked,
        "log_seq": head,
        "lag_events": head - acked,
        "lag_seconds": round(seconds, 3),
        "last_ack_at": row[1] if row else None,
    }


def cloud_config_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The last configuration version received from the cloud and what became of it."""
    try:
        row = conn.execute(
            "SELECT kv_revision, version, outcome, detail, updated_at FROM cloud_config WHERE key = ?", (CURSOR_NAME,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    return dict(zip(("kv_revision", "version", "outcome", "detail", "updated_at"), row, strict=True))


def describe(status: RelayStatus | None, lag_info: dict[str, Any], configured: bool) -> dict[str, Any]:
    """The replication section of `/api/v1/replication` and `qms-edge status`."""
    if not configured:
        return {"state": "not configured", "link": "not configured", "link_status": "not configured", **lag_info}
    info: dict[str, Any] = {"state": status.state if status else "stopped", **lag_info}
    link = status.link if status else "stopped"
    since = status.down_since if status else None
    info.update(link=link, link_since=since, link_status=link_words(link, since))
    if status is not None:
        info.update(
            link_error=status.link_error,
            last_error=status.last_error,
            retry_in=round(status.retry_in, 2) if status.retry_in is not None else None,
            shipped=status.shipped,
            duplicates=status.duplicates,
            resend_epoch=status.epoch,
        )
    return info


class _VersionOnly(msgspec.Struct):
    """Just enough of a document to name the version being refused when the rest does not parse."""

    version: int = 0


def load_config_revision(conn: sqlite3.Connection) -> int:
    """The last KV revision of the branch's config key that was handled (applied or refused)."""
    row = conn.execute("SELECT kv_revision FROM cloud_config WHERE key = ?", (CURSOR_NAME,)).fetchone()
    return int(row[0]) if row else 0


def store_config_outcome(conn: sqlite3.Connection, revision: int, version: int, outcome: str, detail: str) -> None:
    """Remember what became of a distributed version (inside the writer's transaction)."""
    conn.execute(
        "INSERT INTO cloud_config (key, kv_revision, version, outcome, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET kv_revision = excluded.kv_revision, version = excluded.version,"
        " outcome = excluded.outcome, detail = excluded.detail, updated_at = excluded.updated_at",
        (CURSOR_NAME, revision, version, outcome, detail, datetime.now(UTC).isoformat()),
    )


class CloudConfigHandler:
    """Applies a configuration version from the cloud through the single writer, or records why it was refused
    (a `config.rejected` event, which replicates back to the cloud)."""

    def __init__(self, service: QueueService, branch_id: str) -> None:
        self.service = service
        self.branch_id = branch_id

    async def __call__(self, entry: ConfigEntry) -> None:
        """Handle one KV revision."""
        try:
            config = config_decoder.decode(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            version = _version_hint(entry.value)
            await self._reject(entry, version, [f"the document does not parse: {exc}"], entry.config_hash)
            return
        digest = config_hash(config)
        problem = self._problem(entry, config, digest)
        if problem == "already_applied":
            await self._record(entry, config.version, "already_applied", "")
            return
        if problem:
            await self._reject(entry, config.version, [problem], digest)
            return
        command = c.ApplyConfig(actor="cloud", config=config, base_version=None, source="cloud", version=config.version)
        try:
            await asyncio.wrap_future(self.service.submit(command))
        except DomainError as exc:
            details = exc.extra.get("errors")
            errors = [str(d) for d in details] if isinstance(details, list) and details else [exc.detail]
            await self._reject(entry, config.version, errors, digest)
            return
        await self._record(entry, config.version, "applied", "")

    def _problem(self, entry: ConfigEntry, config: BranchConfig, digest: str) -> str | None:
        """Why this entry cannot be applied as is (or `already_applied`); None when it can."""
        if entry.config_hash and entry.config_hash != digest:
            return f"the document does not match its hash ({short_hash(entry.config_hash)} != {short_hash(digest)})"
        if config.branch_id != self.branch_id:
            return f"the document is for branch {config.branch_id!r}"
        current = self.service.view.state.config
        if current is None or current.version != config.version:
            return None
        running = config_hash(current)
        if running == digest:
            return "already_applied"
        # Same number, another document: a local edit the cloud never saw took this number first.
        return (
            f"this branch already runs a different v{config.version} ({short_hash(running)}, edited at the branch);"
            f" the cloud's v{config.version} is {short_hash(digest)}: push again based on v{config.version}"
        )

    async def _reject(self, entry: ConfigEntry, version: int, errors: list[str], digest: str = "") -> None:
        command = c.RejectConfig(actor="cloud", version=version, errors=errors, source="cloud", config_hash=digest)
        await asyncio.wrap_future(self.service.submit(command))
        await self._record(entry, version, "rejected", "; ".join(errors))

    async def _record(self, entry: ConfigEntry, version: int, outcome: str, detail: str) -> None:
        await asyncio.wrap_future(
            self.service.submit_store(lambda conn: store_config_outcome(conn, entry.revision, version, outcome, detail))
        )


def _version_hint(raw: bytes) -> int:
    try:
        return msgspec.json.decode(raw, type=_VersionOnly).version
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0


class Replication:
    """The relay (and the config watcher) of one running appliance, started and stopped with the web app."""

    def __init__(self, service: QueueService, link: CloudLink | None) -> None:
        self.service = service
        self.link = link
        self.relay: Relay | None = None
        self.beater: Beater | None = None
        self.config_watch: ConfigWatch | None = None
        self.staff_watch: StaffWatch | None = None
        self.extra_devices: Callable[[], list[DeviceState]] | None = None  # e.g. the boards (edge/web/app.py)
        self.bookings_watch: BookingsWatch | None = None
        self.alerts_watch: AlertsWatch | None = None
        self.link_file = Path(service.data_dir) / LINK_FILE

    async def start(self) -> None:
        """Start shipping (no-op for a standalone branch or one without a configuration yet)."""
        if self.link is None:
            write_link_file(self.link_file, describe(None, {}, configured=False))
            return
        branch_id = self.service.view.state.branch_id or self.link.branch_id
        if not branch_id:
            log.warning("cloud link configured but no branch id yet: set QMS_BRANCH (--branch) or apply a config")
            write_link_file(self.link_file, {"link": "down", "link_status": "down", "link_error": "no branch id yet:"
                                             " set QMS_BRANCH (--branch) or apply a configuration"})  # fmt: skip
            return
        settings = self.link.settings(branch_id)
        cursor, epoch = self.service.read(load_cursor_state)
        self.beater = Beater(settings.tenant, branch_id, self._heartbeat, self.link.heartbeat_seconds)
        self.beater.on_command = self._hq_command  # HQ's supervisor interventions
        self.relay = Relay(
            settings,
            ServiceSource(self.service),
            cursor=cursor,
            epoch=epoch,
            batch_size=self.link.batch_size,
            beater=self.beater,
            on_change=self._link_changed,
        )
        self.service.subscribe_commits(lambda _events: self.relay.notify() if self.relay else None)
        self.relay.start()
        handler = CloudConfigHandler(self.service, branch_id)
        self.config_watch = ConfigWatch(
            settings,
            handler,
            handled_revision=self.service.read(load_config_revision),
            poll_seconds=self.link.config_poll_seconds,
        )
        self.config_watch.start()
        self.staff_watch = StaffWatch(settings, self.service)  # HQ's staff accounts (sync/staff.py)
        self.staff_watch.start()
        self.bookings_watch = BookingsWatch(settings, Path(self.service.data_dir))  # appointments: check-in offline
        self.bookings_watch.start()
        self.alerts_watch = AlertsWatch(settings, Path(self.service.data_dir))  # HQ's anomaly alerts for the floor
        self.alerts_watch.start()

    async def stop(self) -> None:
        """Stop the relay and the watcher (the cursor is durable; the next start resumes)."""
        if self.config_watch is not None:
            await self.config_watch.stop()
        if self.staff_watch is not None:
            await self.staff_watch.stop()
        if self.bookings_watch is not None:
            await self.bookings_watch.stop()
        if self.alerts_watch is not None:
            await self.alerts_watch.stop()
        if self.relay is not None:
            await self.relay.stop()

    async def _heartbeat(self) -> Heartbeat:
        """This branch's beat: its log head, the relay's cursor and lag, its software version, its devices."""
        assert self.relay is not None
        assert self.beater is not None
        info = await asyncio.to_thread(self.service.read, lag)
        return Heartbeat(
            tenant=self.relay.link.tenant,
            branch_id=self.relay.link.branch_id,
            sent_at=datetime.now(UTC),
            last_seq=info["log_seq"],
            acked_seq=max(info["acked_seq"], self.relay.status.acked_seq),
            lag_events=info["lag_events"],
            interval_seconds=self.beater.interval,
            software_version=software_version(),
            devices=[
                *fleet_states(await asyncio.to_thread(self.service.read, list_devices), datetime.now(UTC)),
                *(self.extra_devices() if self.extra_devices is not None else []),
            ],
        )

    async def _hq_command(self, command: HqCommand) -> HqReply:
        """An intervention from HQ's supervisor view (edge/hq_commands.py): run like a local one with `hq:<user>` as
        actor and audited here too; refused with its reason (unknown counter, a ticket at it, …)."""
        return await run_hq_command(self.service, command)

    def _link_changed(self, status: RelayStatus) -> None:
        """Keep the link state on disk for `qms-edge status` (a separate process)."""
        write_link_file(self.link_file, {**asdict(status), "link_status": link_words(status.link, status.down_since)})

    def status(self) -> dict[str, Any]:
        """State and lag, for the API."""
        info = describe(self.relay.status if self.relay else None, self.service.read(lag), self.link is not None)
        if self.beater is not None:
            last = self.beater.last_sent_at
            info["heartbeat"] = {"interval_seconds": self.beater.interval, "sent": self.beater.sent,
                                 "last_sent_at": last.isoformat() if last else None}  # fmt: skip
        if self.config_watch is not None:
            watch = self.config_watch
            info["config_watch"] = {"state": watch.state, "last_error": watch.last_error, "retry_in": watch.retry_in}
        info["cloud_config"] = self.service.read(cloud_config_state)
        return info


def software_version() -> str:
    """The installed qms version (sent in heartbeats)."""
    try:
        return package_version("qms")
    except PackageNotFoundError:
        return "unknown"


def write_link_file(path: Path, info: dict[str, Any]) -> None:
    """Write the link state atomically with the writer's pid and time (0600: it names the seed file)."""
    body = {**info, "pid": os.getpid(), "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        # Not synced: a status note rewritten on every link change; losing the newest one in a power cut is harmless.
        write_private(path, json.dumps(body, default=str).encode(), durable=False)
    except OSError as exc:  # a read-only data dir must not stop replication
        log.warning("cannot write %s: %s", path, exc)


def read_link_state(data_dir: Path) -> dict[str, Any]:
    """The link as `qms-edge status` shows it: what the running appliance last wrote, or why nothing is known."""
    path = Path(data_dir) / LINK_FILE
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"link": "unknown", "link_status": "unknown (the appliance has not run with this data directory)"}
    if not _alive(int(info.get("pid") or 0)):
        info["link_status"] = f"appliance not running (last known: {info.get('link_status') or info.get('link')})"
        info["link"] = "appliance not running"
    return info


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the service account)
        return True
    return True
