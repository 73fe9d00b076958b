"""Shipped appliance backups at the hub (issue 16, E-PLAT-03): received, checked, kept per tenant/branch, fetched.

An appliance seals each backup to the hub's backup key (sync/backup_seal.py) and uploads it with
`PUT /api/v1/backups/{tenant}/{branch_id}/{name}`, signed with the branch's NKey over the tenant, branch, name, size,
SHA-256 and time (`upload_message`). The hub checks the signature against the key it issued the branch (so a branch
can ship only its own backups), the time (a few minutes of skew), the size (QMS_HUB_BACKUP_MAX_BYTES) and, once the
body is in, the size and digest it was promised; only then does the file appear under
`QMS_HUB_BACKUP_STORE/<tenant>/<branch>/` with a `<name>.json` record beside it. The newest QMS_HUB_BACKUP_KEEP
(default 14) per branch are kept, and none past its expiry: the name an appliance signed carries it
(`qms-<taken>-until-<expires>…`, edge/backup.py leaves out of the backup every contact due before then) and the hub
also caps every backup's age at QMS_HUB_BACKUP_MAX_AGE_DAYS (default 7); the earlier wins. Expired backups are
deleted on every upload, hourly by the app (`lifespan` in cloud/ops/web.py) and by `qms-cloud backups prune`, are
never listed or fetched, and an upload already expired is refused. The hub never opens what it stores:
`qms-cloud backups fetch` does, on the host that holds the private key (QMS_HUB_BACKUP_KEY).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from sqlalchemy.engine import Engine

from cloud.releases.fleet import nkey_public
from cloud.store import branch_credentials
from sync import backup_s3, backup_seal

STORE_ENV = "QMS_HUB_BACKUP_STORE"
KEY_ENV = "QMS_HUB_BACKUP_KEY"
KEEP_ENV = "QMS_HUB_BACKUP_KEEP"
MAX_BYTES_ENV = "QMS_HUB_BACKUP_MAX_BYTES"
MAX_AGE_ENV = "QMS_HUB_BACKUP_MAX_AGE_DAYS"
DEFAULT_KEEP = 14
DEFAULT_MAX_AGE_DAYS = 7
DEFAULT_MAX_BYTES = 2 << 30
SKEW_SECONDS = 600
NAME = re.compile(r"qms-[0-9A-Za-z._-]{1,100}\.qmsseal")
ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


class UploadRefused(Exception):
    """An upload the hub will not keep; `status` is the HTTP answer (400, 403, 409, 411, 413, 503)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class StoredBackup:
    """One sealed backup the hub holds."""

    tenant: str
    branch_id: str
    name: str
    size: int
    sha256: str
    received_at: str
    path: Path


def store_dir(env: dict[str, str] | None = None) -> Path | None:
    """Where shipped backups are kept; None when the hub takes none."""
    value = (os.environ if env is None else env).get(STORE_ENV, "")
    return Path(value) if value else None


def require_store() -> Path:
    """The store, or UploadRefused (503) when this hub keeps no appliance backups."""
    store = store_dir()
    if store is None:
        raise UploadRefused(503, f"this hub keeps no appliance backups ({STORE_ENV})")
    return store


def max_bytes() -> int:
    """The largest sealed backup accepted."""
    return int(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)


def keep() -> int:
    """Backups kept per branch."""
    return max(1, int(os.environ.get(KEEP_ENV) or DEFAULT_KEEP))


def max_age() -> timedelta:
    """The longest the hub keeps any shipped backup, whatever its name says (1..3650 days)."""
    raw = os.environ.get(MAX_AGE_ENV, "").strip()
    days = int(raw) if raw.isdigit() else DEFAULT_MAX_AGE_DAYS
    return timedelta(days=min(max(days, 1), 3650))


def public_key_pem() -> str | None:
    """The public half of the hub's backup key, for enrolment; None when no key is configured."""
    path = os.environ.get(KEY_ENV, "")
    if not path or not Path(path).is_file():
        return None
    return backup_seal.public_pem(backup_seal.load_private(Path(path).read_bytes())).decode()


def _check_ids(tenant: str, branch_id: str, name: str) -> None:
    if not ID.fullmatch(tenant) or not ID.fullmatch(branch_id) or tenant.startswith(".") or branch_id.startswith("."):
        raise UploadRefused(400, "tenant and branch ids are letters, digits, '.', '_' and '-'")
    if not NAME.fullmatch(name):
        raise UploadRefused(400, "a backup's name is qms-<stamp>.qmsseal (letters, digits, '.', '_', '-')")


def check_signature(engine: Engine, tenant: str, branch_id: str, name: str, headers: dict[str, str]) -> tuple[int, str]:
    """(size, sha256) the appliance promised, once its signature, time and size checked out."""
    _check_ids(tenant, branch_id, name)
    try:
        size = int(headers.get("content-length", ""))
    except ValueError:
        raise UploadRefused(411, "Content-Length is required") from None
    if size > max_bytes():
        raise UploadRefused(413, f"{size} bytes is more than this hub accepts ({max_bytes()})")
    digest = headers.get(backup_seal.SHA256_HEADER.lower(), "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise UploadRefused(400, f"{backup_seal.SHA256_HEADER} must be the file's hex SHA-256")
    try:
        stamp = int(headers.get(backup_seal.TIMESTAMP_HEADER.lower(), ""))
        signature = base64.b64decode(headers.get(backup_seal.SIGNATURE_HEADER.lower(), ""), validate=True)
    except (ValueError, binascii.Error):
        raise UploadRefused(
            400, f"{backup_seal.TIMESTAMP_HEADER} and {backup_seal.SIGNATURE_HEADER} are required"
        ) from None
    if abs(time.time() - stamp) > SKEW_SECONDS:
        raise UploadRefused(403, "the upload's time is too far from the hub's clock (check the appliance's clock)")
    message = backup_seal.upload_message(tenant, branch_id, name, size, digest, stamp)
    if not branch_signed(engine, tenant, branch_id, signature, message):
        raise UploadRefused(403, "the signature does not match this branch's key")
    return size, digest


def branch_signed(engine: Engine, tenant: str, branch_id: str, signature: bytes, message: bytes) -> bool:
    """True when `signature` over `message` was made with the NKey the hub issued this branch."""
    with engine.connect() as conn:
        public = conn.execute(
            sa.select(branch_credentials.c.public_key).where(
                branch_credentials.c.tenant_id == tenant, branch_credentials.c.branch_id == branch_id
            )
        ).scalar()
    if public is None:
        return False
    try:
        nkey_public(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


async def receive(
    store: Path, tenant: str, branch_id: str, name: str, size: int, digest: str, body: AsyncIterator[bytes]
) -> tuple[StoredBackup, bool]:
    """Write the body beside its final place, check size and digest, then move it in; (stored, created)."""
    folder = store / tenant / branch_id
    now = datetime.now(UTC)
    if backup_seal.expired(name, now, max_age(), now):
        raise UploadRefused(400, f"{name} has expired (its name's date, or {MAX_AGE_ENV}): it may not be kept")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / name
    if target.exists():
        existing = _record(folder, name)
        if existing is not None and existing.sha256 == digest:
            async for _ in body:  # drain: the client expects its body to be read
                pass
            return existing, False
        raise UploadRefused(409, f"{name} is already stored with other content")
    partial = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}.part"
    sha, written = hashlib.sha256(), 0
    try:
        with partial.open("xb") as out:
            os.fchmod(out.fileno(), 0o600)
            async for chunk in body:
                written += len(chunk)
                if written > size:
                    raise UploadRefused(400, "the body is longer than its Content-Length")
                sha.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != size or sha.hexdigest() != digest:
            raise UploadRefused(400, "the body does not match its size and SHA-256: upload it again")
        received = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        meta = {"name": name, "size": size, "sha256": digest, "received_at": received}
        (folder / f"{name}.json").write_text(json.dumps(meta))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    prune(folder, keep())
    sweep(store)
    return StoredBackup(tenant, branch_id, name, size, digest, received, target), True


def _record(folder: Path, name: str) -> StoredBackup | None:
    try:
        meta = json.loads((folder / f"{name}.json").read_text())
        return StoredBackup(
            folder.parent.name, folder.name, name, int(meta["size"]), str(meta["sha256"]), str(meta["received_at"]),
            folder / name,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prune(folder: Path, kept: int, now: datetime | None = None) -> list[str]:
    """Delete the expired backups of one branch and all but the newest `kept` of the rest (names carry a UTC stamp:
    they sort by time)."""
    names = sorted(p.name for p in folder.glob("qms-*.qmsseal"))
    gone = [name for name in names if _expired(folder, name, now or datetime.now(UTC))]
    alive = [name for name in names if name not in gone]
    gone += alive[:-kept] if len(alive) > kept else []
    for name in gone:
        (folder / name).unlink(missing_ok=True)
        (folder / f"{name}.json").unlink(missing_ok=True)
    return gone


def _expired(folder: Path, name: str, now: datetime) -> bool:
    record = _record(folder, name)
    try:
        received = datetime.fromisoformat(record.received_at.replace("Z", "+00:00")) if record else None
    except ValueError:
        received = None
    if received is None:
        received = datetime.fromtimestamp((folder / name).stat().st_mtime, UTC)
    return backup_seal.expired(name, now, max_age(), received)


def sweep(store: Path, now: datetime | None = None) -> list[str]:
    """Delete every expired backup of every branch in the store; `tenant/branch/name` of each deleted."""
    now = now or datetime.now(UTC)
    gone = []
    for folder in sorted(p for p in store.glob("*/*") if p.is_dir()) if store.is_dir() else []:
        expired = [n for n in sorted(p.name for p in folder.glob("qms-*.qmsseal")) if _expired(folder, n, now)]
        for name in expired:
            (folder / name).unlink(missing_ok=True)
            (folder / f"{name}.json").unlink(missing_ok=True)
            gone.append(f"{folder.parent.name}/{folder.name}/{name}")
    return gone


def list_backups(store: Path, tenant: str, branch_id: str, now: datetime | None = None) -> list[StoredBackup]:
    """A branch's stored backups, oldest first (expired ones are deleted, never listed)."""
    _check_ids(tenant, branch_id, "qms-x.qmsseal")
    folder = store / tenant / branch_id
    if folder.is_dir():
        prune(folder, 10**9, now)
    found = [_record(folder, p.name) for p in sorted(folder.glob("qms-*.qmsseal"))]
    return [b for b in found if b is not None]


def fetch(
    store: Path,
    tenant: str,
    branch_id: str,
    key_pem: bytes,
    dest: Path,
    name: str | None = None,
    now: datetime | None = None,
) -> StoredBackup:
    """Check a stored backup's digest and open it with the hub's private key into `dest` (the plain archive that
    `qms-edge restore` takes). The newest unless `name` is given; never an expired one."""
    held = list_backups(store, tenant, branch_id, now)
    chosen = [b for b in held if name is None or b.name == name]
    if not chosen:
        raise FileNotFoundError(
            f"no shipped backup {name or ''} for {tenant}/{branch_id} in {store}".replace("  ", " ")
        )
    backup = chosen[-1]
    sha = hashlib.sha256()
    with backup.path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    if sha.hexdigest() != backup.sha256:
        raise backup_seal.SealError(f"{backup.name} does not match the SHA-256 recorded when it arrived (damaged)")
    backup_seal.open_file(backup.path, dest, backup_seal.load_private(key_pem))
    return backup


def enrolment_keys() -> dict[str, str]:
    """What `POST /api/v1/enrol` hands an appliance besides its credentials: the public keys it seals backups to
    and verifies releases with, each when the hub has one."""
    from cloud.releases.signing import release_public_pem

    keys: dict[str, str] = {}
    backup_pub = public_key_pem()
    if backup_pub:
        keys["backup_public_key"] = backup_pub
    release_pub = release_public_pem()
    if release_pub:
        keys["release_public_key"] = release_pub
    return keys


def fetch_s3(
    target: backup_s3.S3Target,
    tenant: str,
    branch_id: str,
    key_pem: bytes,
    dest: Path,
    name: str | None = None,
    now: datetime | None = None,
) -> backup_s3.S3Object:
    """The same from an S3-compatible store the appliances ship to (sync/backup_s3.py): download the newest unexpired
    sealed copy (or `name`) and open it with the hub's private key into `dest`."""
    client = target.client()
    now = now or datetime.now(UTC)
    chosen = backup_s3.newest(target, client, tenant, branch_id, name=name, now=now, max_age=max_age())
    sealed = dest.with_name(f".{dest.name}.{os.getpid()}.sealed")
    try:
        backup_s3.download(target, client, chosen, sealed)
        backup_seal.open_file(sealed, dest, backup_seal.load_private(key_pem))
    finally:
        sealed.unlink(missing_ok=True)
    return chosen
