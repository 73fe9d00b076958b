"""Scheduled backups, sealed to the hub's key and shipped to it (issue 16, E-PLAT-03).

`qms-edge serve` runs one background thread (`Scheduler`): every QMS_BACKUP_INTERVAL_SECONDS (default a day; 0 = off)
it writes a backup archive into the backups dir (edge/backup.py; the newest QMS_BACKUP_KEEP, default 7, are kept
there for `qms-edge drill` and a quick local restore), seals a copy to the hub's public backup key (the one enrolment
stored in `<data>/backup-recipient.pem`, or QMS_BACKUP_RECIPIENT; sync/backup_seal.py) into `<backups>/outgoing/`,
and uploads what is waiting there to the hub (`PUT /api/v1/backups/<tenant>/<branch>/<name>`, signed with the
branch's NKey). A sealed copy leaves `outgoing/` only when the hub confirmed its size and SHA-256; a failed upload is
retried with backoff (30 s doubling to an hour) and on the next start, and at most QMS_BACKUP_KEEP copies wait.
Everything runs in that thread with its own read-only SQLite connection: the queue's writer never waits for it.
What happened is in `<data>/backup-ship.json`, which `/metrics` and `qms-edge doctor` read.

Every backup expires (QMS_BACKUP_MAX_AGE_DAYS, default 7; edge/backup.py leaves out of it the contacts due before
then): its name says when (`qms-<taken>-until-<expires>.tar.gz`), each round deletes the expired archives and sealed
copies here (and the thread wakes at the earliest expiry), the hub deletes its copies by the same name, and so does
the S3 sweep. With QMS_BACKUP_S3_BUCKET set (sync/backup_s3.py) the sealed copy also goes to an S3-compatible store
(`<backups>/outgoing-s3/` until the store confirms it), and each round deletes the branch's expired objects there; a
store that refuses or cannot be reached is recorded and retried like the hub, never more.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from edge.backup import BackupError, create_backup, lifetime
from edge.store.datadir import write_private
from sync import backup_s3, backup_seal

log = logging.getLogger(__name__)

STATUS_FILE = "backup-ship.json"
RECIPIENT_FILE = "backup-recipient.pem"
OUTGOING, OUTGOING_S3 = "outgoing", "outgoing-s3"
INTERVAL_ENV, KEEP_ENV, RECIPIENT_ENV = "QMS_BACKUP_INTERVAL_SECONDS", "QMS_BACKUP_KEEP", "QMS_BACKUP_RECIPIENT"
DEFAULT_INTERVAL = 86400.0
DEFAULT_KEEP = 7
RETRY_BASE, RETRY_MAX = 30.0, 3600.0
FIRST_RUN_DELAY = 60.0  # the first round after start-up (or after `interval`, when shorter)
UPLOAD_TIMEOUT = 300.0


class ShipFailed(Exception):
    """An upload the hub did not confirm; the message says why (never a secret)."""


@dataclass(frozen=True)
class ShipSettings:
    """Where backups go and whom they are shipped to."""

    data_dir: Path
    backups: Path
    interval: float = DEFAULT_INTERVAL
    keep: int = DEFAULT_KEEP
    hub: str = ""
    tenant: str = ""
    branch_id: str = ""
    seed_file: Path | None = None
    recipient: Path | None = None
    max_age: timedelta = timedelta(days=7)
    s3: backup_s3.S3Target | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, data_dir: Path, env: dict[str, str] | None = None) -> ShipSettings:
        """From the appliance's environment (edge.env and the `cloud.env` enrolment wrote)."""
        env = dict(os.environ) if env is None else env
        recipient = Path(env[RECIPIENT_ENV]) if env.get(RECIPIENT_ENV) else data_dir / RECIPIENT_FILE
        seed = env.get("QMS_NATS_NKEY", "")
        return cls(
            data_dir=data_dir,
            backups=Path(env.get("QMS_BACKUP_DIR") or data_dir.parent / "backups"),
            interval=float(env.get(INTERVAL_ENV) or DEFAULT_INTERVAL),
            keep=max(1, int(env.get(KEEP_ENV) or DEFAULT_KEEP)),
            hub=env.get("QMS_HUB_URL", "").rstrip("/"),
            tenant=env.get("QMS_TENANT", ""),
            branch_id=env.get("QMS_BRANCH", ""),
            seed_file=Path(seed) if seed else None,
            recipient=recipient if recipient.is_file() else None,
            max_age=lifetime(env),
            s3=backup_s3.S3Target.from_env(env),
            env=env,
        )

    @property
    def ships(self) -> bool:
        """True when backups can be sealed and shipped (hub, branch, its NKey and the hub's backup key known)."""
        return bool(self.hub and self.tenant and self.branch_id and self.seed_file and self.recipient)

    @property
    def to_s3(self) -> bool:
        """True when sealed copies also go to an S3-compatible store (a bucket, a branch and a key to seal to)."""
        return bool(self.s3 and self.tenant and self.branch_id and self.recipient)

    @property
    def outgoing(self) -> Path:
        """Sealed copies waiting for the hub."""
        return self.backups / OUTGOING

    @property
    def outgoing_s3(self) -> Path:
        """Sealed copies waiting for the S3 store."""
        return self.backups / OUTGOING_S3


def read_status(data_dir: Path) -> dict[str, Any]:
    """The shipping record (`{}` before the first run)."""
    try:
        found = json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_status(data_dir: Path, status: dict[str, Any]) -> None:
    write_private(data_dir / STATUS_FILE, json.dumps(status, sort_keys=True).encode())


def pending(settings: ShipSettings, queue: Path | None = None) -> list[Path]:
    """Sealed copies not yet confirmed by the hub (or by the store whose queue is given), oldest first."""
    return sorted((queue or settings.outgoing).glob(f"qms-*{backup_seal.SUFFIX}"))


def take_backup(settings: ShipSettings, now: datetime | None = None) -> tuple[Path, Path | None]:
    """Write an archive into the backups dir (expired ones deleted, the newest `keep` kept) and, when shipping, its
    sealed copy into `outgoing/` (and `outgoing-s3/`); returns both paths (the copy None when not shipping)."""
    now = now or datetime.now(UTC)
    settings.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = backup_seal.backup_name(now, now + settings.max_age)
    archive = create_backup(settings.data_dir, settings.backups / name, now=now, max_age=settings.max_age).path
    sweep_local(settings, now)
    _keep_newest(sorted(settings.backups.glob("qms-*.tar.gz")), settings.keep)
    queues = [q for q, on in ((settings.outgoing, settings.ships), (settings.outgoing_s3, settings.to_s3)) if on]
    if not queues or settings.recipient is None:
        return archive, None
    for queue in queues:
        queue.mkdir(exist_ok=True, mode=0o700)
    sealed = queues[0] / f"{name}{backup_seal.SUFFIX}"
    backup_seal.seal_file(archive, sealed, backup_seal.load_public(settings.recipient.read_bytes()))
    for queue in queues[1:]:
        os.link(sealed, queue / sealed.name)  # one sealed file, one name per target that still needs it
    for queue in queues:  # a target gone for weeks: the oldest waiting copies give way
        _keep_newest(pending(settings, queue), settings.keep)
    return archive, sealed


def sweep_local(settings: ShipSettings, now: datetime | None = None) -> list[str]:
    """Delete the archives and waiting sealed copies past their expiry (the name's, or `max_age` after they were
    written for names from before expiries); the names deleted."""
    now = now or datetime.now(UTC)
    gone = []
    for folder in (settings.backups, settings.outgoing, settings.outgoing_s3):
        for path in sorted(folder.glob("qms-*")) if folder.is_dir() else []:
            if not path.is_file():
                continue
            written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if backup_seal.expired(path.name, now, settings.max_age, written):
                path.unlink(missing_ok=True)
                gone.append(path.name)
    return gone


def next_expiry(settings: ShipSettings) -> datetime | None:
    """The earliest expiry of what the backups dir holds (None when it holds nothing with one)."""
    found = [
        until
        for folder in (settings.backups, settings.outgoing, settings.outgoing_s3)
        if folder.is_dir()
        for path in folder.glob("qms-*")
        if (until := backup_seal.expires_of(path.name)) is not None
    ]
    return min(found, default=None)


def _keep_newest(paths: list[Path], keep: int) -> None:
    for old in paths[:-keep] if len(paths) > keep else []:
        old.unlink(missing_ok=True)


def upload(settings: ShipSettings, sealed: Path, client: httpx.Client) -> dict[str, Any]:
    """PUT one sealed copy, signed with the branch's NKey; the hub's confirmation (name, size, sha256)."""
    import nkeys

    if settings.seed_file is None:
        raise ShipFailed("no branch NKey (QMS_NATS_NKEY): enrol the appliance first")
    size = sealed.stat().st_size
    sha = hashlib.sha256()
    with sealed.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    digest, stamp = sha.hexdigest(), int(time.time())
    message = backup_seal.upload_message(settings.tenant, settings.branch_id, sealed.name, size, digest, stamp)
    keypair = nkeys.from_seed(bytearray(settings.seed_file.read_bytes().strip()))
    try:
        signature = base64.b64encode(keypair.sign(message)).decode()
    finally:
        keypair.wipe()
    headers = {
        backup_seal.SIGNATURE_HEADER: signature,
        backup_seal.TIMESTAMP_HEADER: str(stamp),
        backup_seal.SHA256_HEADER: digest,
        "Content-Length": str(size),
        "Content-Type": "application/octet-stream",
    }
    url = f"{settings.hub}/api/v1/backups/{settings.tenant}/{settings.branch_id}/{sealed.name}"
    try:
        with sealed.open("rb") as body:
            answer = client.put(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ShipFailed(f"cannot reach the hub at {settings.hub}: {exc}") from None
    if answer.status_code not in {200, 201}:
        detail = answer.json().get("detail", "") if "json" in answer.headers.get("content-type", "") else ""
        raise ShipFailed(f"the hub refused {sealed.name}: {answer.status_code} {detail}".strip())
    confirmed: dict[str, Any] = answer.json()
    if confirmed.get("sha256") != digest or confirmed.get("size") != size:
        raise ShipFailed(f"the hub's copy of {sealed.name} does not match (size or SHA-256)")
    return confirmed


def ship_pending(settings: ShipSettings, client: httpx.Client | None = None) -> list[str]:
    """Upload every waiting sealed copy, oldest first, deleting each once confirmed; stops at the first failure
    (ShipFailed). Returns the names shipped."""
    owned = client is None
    client = client or httpx.Client(timeout=UPLOAD_TIMEOUT)
    shipped: list[str] = []
    try:
        for sealed in pending(settings):
            upload(settings, sealed, client)
            sealed.unlink()
            shipped.append(sealed.name)
    finally:
        if owned:
            client.close()
    return shipped


def ship_pending_s3(settings: ShipSettings, client: Any = None, now: datetime | None = None) -> tuple[list[str], int]:
    """Upload every sealed copy waiting for the S3 store, oldest first (each deleted once confirmed), then delete the
    branch's expired objects there; (names shipped, objects deleted). S3Failed at the first failure."""
    target = settings.s3
    if target is None:
        return [], 0
    client = client or target.client()
    shipped = []
    for sealed in pending(settings, settings.outgoing_s3):
        backup_s3.put(target, client, settings.tenant, settings.branch_id, sealed)
        sealed.unlink()
        shipped.append(sealed.name)
    now = now or datetime.now(UTC)
    swept = backup_s3.sweep(target, client, settings.tenant, settings.branch_id, now, settings.max_age)
    return shipped, len(swept)


def _round_s3(settings: ShipSettings, status: dict[str, Any], now: datetime) -> None:
    """The S3 part of a round, its outcome in `status`; a failure is logged and retried, never raised."""
    try:
        shipped, swept = ship_pending_s3(settings, now=now)
        status.update(s3_last_success_at=time.time(), s3_error=None, s3_failures=0, s3_swept=swept)
        if shipped:
            status.update(s3_last_upload_at=time.time(), s3_last_uploaded=shipped[-1])
    except (backup_s3.S3Failed, OSError, ValueError) as exc:
        status.update(s3_error=str(exc), s3_error_at=time.time())
        status["s3_failures"] = int(status.get("s3_failures") or 0) + 1
        log.warning("backup upload to S3 failed (%d in a row), will retry: %s", status["s3_failures"], exc)
    status["s3_pending"] = len(pending(settings, settings.outgoing_s3)) if settings.outgoing_s3.is_dir() else 0


def run_once(settings: ShipSettings, *, backup_due: bool = True, clock: datetime | None = None) -> dict[str, Any]:
    """One round: expired backups deleted, a backup when due, then ship what waits (hub, S3); the outcome recorded
    in the status file and returned. `clock` stands in for the time (tests)."""
    status = read_status(settings.data_dir)
    moment = clock or datetime.now(UTC)
    now = moment.timestamp()
    try:
        if swept := sweep_local(settings, moment):
            log.info("deleted %d expired backup file(s)", len(swept))
    except OSError as exc:
        log.warning("expired backups not deleted: %s", exc)
    if backup_due:
        status["last_attempt_at"] = now
        try:
            archive, _ = take_backup(settings, moment)
            status.update(last_backup_at=now, last_backup=archive.name, backup_error=None)
        except (BackupError, OSError, ValueError) as exc:
            status["backup_error"] = str(exc)
            log.warning("scheduled backup failed: %s", exc)
    if settings.ships and pending(settings):
        try:
            shipped = ship_pending(settings)
            status.update(last_upload_at=time.time(), last_uploaded=shipped[-1] if shipped else None)
            status.update(upload_error=None, upload_failures=0)
        except (ShipFailed, OSError, ValueError) as exc:
            status.update(upload_error=str(exc), upload_error_at=time.time())
            status["upload_failures"] = int(status.get("upload_failures") or 0) + 1
            log.warning("backup upload failed (%d in a row), will retry: %s", status["upload_failures"], exc)
    status["pending"] = len(pending(settings)) if settings.outgoing.is_dir() else 0
    status["ships"] = settings.ships
    if settings.to_s3:
        _round_s3(settings, status, moment)
    status["ships_s3"] = settings.to_s3
    _write_status(settings.data_dir, status)
    return status


class Scheduler:
    """The thread `qms-edge serve` runs: backups every `interval`, uploads retried with backoff until confirmed."""

    def __init__(self, settings: ShipSettings) -> None:
        """Not started yet."""
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qms-backup", daemon=True)

    def start(self) -> Scheduler:
        """Start the thread (its first round after a short delay, so start-up is not slowed)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end after its current round."""
        self._stop.set()
        self._thread.join(timeout)

    def next_delay(self, status: dict[str, Any], now: float) -> float:
        """Seconds until the next round: the next backup, or sooner a retry of a failed upload (backoff)."""
        last = status.get("last_attempt_at")
        due_in = self.settings.interval - (now - float(last)) if isinstance(last, int | float) else 0.0
        for waiting, failed in (("pending", "upload_failures"), ("s3_pending", "s3_failures")):
            if status.get(waiting) and status.get(failed):
                failures = int(status[failed])
                due_in = min(due_in, RETRY_BASE * 2 ** (failures - 1), RETRY_MAX)
        expiry = next_expiry(self.settings)
        if expiry is not None:  # an expired backup is deleted on time, not at the next daily round
            due_in = min(due_in, expiry.timestamp() - now)
        return max(due_in, 1.0)

    def _loop(self) -> None:
        delay = min(FIRST_RUN_DELAY, self.settings.interval)
        while not self._stop.wait(delay):
            try:
                status = read_status(self.settings.data_dir)
                last = status.get("last_attempt_at")
                due = not isinstance(last, int | float) or time.time() - float(last) >= self.settings.interval
                status = run_once(self.settings, backup_due=due)
                delay = self.next_delay(status, time.time())
            except Exception:  # the thread must outlive any one round; the queue never depends on it
                log.exception("backup round failed")
                delay = RETRY_BASE


def start_scheduler(data_dir: Path, env: dict[str, str] | None = None) -> Scheduler | None:
    """Start scheduled backups for `qms-edge serve` (None when QMS_BACKUP_INTERVAL_SECONDS=0)."""
    settings = ShipSettings.from_env(data_dir, env)
    if settings.interval <= 0:
        return None
    if not settings.ships and not settings.to_s3:
        log.info("scheduled backups stay local (%s): no hub backup key or enrolment yet", settings.backups)
    with contextlib.suppress(OSError):
        settings.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Scheduler(settings).start()
