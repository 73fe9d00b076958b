"""Sealed appliance backups in any S3-compatible store (issue 16, E-PLAT-03): the appliance uploads and sweeps, the
hub's operator lists and downloads (`qms-cloud backups fetch --from-s3`).

Objects are `<prefix><tenant>/<branch>/<name>.qmsseal`; the name carries the backup's expiry
(`backup_seal.backup_name`), so a sweep deletes by age without reading anything but the listing. Only sealed copies go
there: the store never holds a readable backup. Settings come from the environment:

    QMS_BACKUP_S3_BUCKET (required to use S3), QMS_BACKUP_S3_ENDPOINT (e.g. https://s3.example.co.id; empty: AWS),
    QMS_BACKUP_S3_PREFIX (default "qms-backups/"), QMS_BACKUP_S3_REGION (default us-east-1),
    QMS_BACKUP_S3_ACCESS_KEY / QMS_BACKUP_S3_SECRET_KEY (else boto3's usual AWS_* variables and files).

Every failure (no bucket, refused credentials, no route) is raised as `S3Failed` with the service's own code, for the
caller to log and retry: never a secret in the message.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync import backup_seal

BUCKET_ENV, ENDPOINT_ENV, PREFIX_ENV = "QMS_BACKUP_S3_BUCKET", "QMS_BACKUP_S3_ENDPOINT", "QMS_BACKUP_S3_PREFIX"
REGION_ENV, ACCESS_ENV, SECRET_ENV = "QMS_BACKUP_S3_REGION", "QMS_BACKUP_S3_ACCESS_KEY", "QMS_BACKUP_S3_SECRET_KEY"
DEFAULT_PREFIX = "qms-backups/"
TIMEOUT = 60


class S3Failed(Exception):
    """An S3 call that did not succeed; the message names the bucket, the key and the service's error code."""


@dataclass(frozen=True)
class S3Object:
    """One stored sealed backup."""

    key: str
    name: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class S3Target:
    """Where sealed backups go in an S3-compatible store."""

    bucket: str
    endpoint: str = ""
    prefix: str = DEFAULT_PREFIX
    region: str = "us-east-1"
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> S3Target | None:
        """The target the environment names, None without QMS_BACKUP_S3_BUCKET."""
        env = dict(os.environ) if env is None else env
        bucket = env.get(BUCKET_ENV, "").strip()
        if not bucket:
            return None
        prefix = env.get(PREFIX_ENV, DEFAULT_PREFIX).strip().lstrip("/")
        return cls(
            bucket=bucket,
            endpoint=env.get(ENDPOINT_ENV, "").strip(),
            prefix=prefix if not prefix or prefix.endswith("/") else prefix + "/",
            region=env.get(REGION_ENV, "").strip() or "us-east-1",
            access_key=env.get(ACCESS_ENV, ""),
            secret_key=env.get(SECRET_ENV, ""),
        )

    def folder(self, tenant: str, branch_id: str) -> str:
        """The key prefix of one branch's backups."""
        return f"{self.prefix}{tenant}/{branch_id}/"

    def client(self) -> Any:
        """A boto3 S3 client (path-style addressing: what MinIO, Ceph, Garage and friends expect)."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=10, read_timeout=TIMEOUT, retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        )  # fmt: skip
        credentials = {}
        if self.access_key and self.secret_key:
            credentials = {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
        return boto3.client(
            "s3", endpoint_url=self.endpoint or None, region_name=self.region, config=config, **credentials
        )


def _failed(target: S3Target, what: str, exc: Exception) -> S3Failed:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return S3Failed(f"S3 {what} in bucket {target.bucket!r} refused: {status} {error.get('Code', '')}".strip())
    return S3Failed(f"S3 {what} in bucket {target.bucket!r} failed: {type(exc).__name__}: {exc}")


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, OSError)


def put(target: S3Target, client: Any, tenant: str, branch_id: str, sealed: Path) -> S3Object:
    """Upload one sealed copy and confirm it: Content-MD5 makes the service refuse a body damaged on the way, and the
    stored object's size must be the file's (an ETag is an MD5 only without server-side KMS encryption)."""
    import base64

    md5 = hashlib.md5(usedforsecurity=False)
    with sealed.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
    key = target.folder(tenant, branch_id) + sealed.name
    size = sealed.stat().st_size
    try:
        with sealed.open("rb") as body:
            client.put_object(
                Bucket=target.bucket, Key=key, Body=body, ContentLength=size,
                ContentMD5=base64.b64encode(md5.digest()).decode(), ContentType="application/octet-stream",
            )  # fmt: skip
        head = client.head_object(Bucket=target.bucket, Key=key)
    except _errors() as exc:
        raise _failed(target, f"upload of {key}", exc) from None
    if int(head.get("ContentLength", -1)) != size:
        raise S3Failed(f"S3 copy of {key} in bucket {target.bucket!r} does not match the file's size")
    return S3Object(key, sealed.name, size, head.get("LastModified") or datetime.now(UTC))


def listing(target: S3Target, client: Any, tenant: str, branch_id: str) -> list[S3Object]:
    """One branch's sealed backups in the bucket, oldest first (by name: names start with the UTC time taken)."""
    folder = target.folder(tenant, branch_id)
    found: list[S3Object] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(folder) :]
                if name.startswith("qms-") and name.endswith(backup_seal.SUFFIX) and "/" not in name:
                    found.append(S3Object(item["Key"], name, int(item["Size"]), item["LastModified"]))
    except _errors() as exc:
        raise _failed(target, f"listing of {folder}", exc) from None
    return sorted(found, key=lambda o: o.name)


def newest(
    target: S3Target, client: Any, tenant: str, branch_id: str, *, name: str | None, now: datetime, max_age: timedelta
) -> S3Object:
    """The branch's newest unexpired sealed copy (or the one named); FileNotFoundError saying where it looked and how
    many expired copies are there (the hub's `backups fetch --from-s3` and the appliance's `--from-s3` both pick so)."""
    listed = listing(target, client, tenant, branch_id)
    held = [o for o in listed if not backup_seal.expired(o.name, now, max_age, o.last_modified)]
    chosen = [o for o in held if name is None or o.name == name]
    if not chosen:
        where = f"s3://{target.bucket}/{target.folder(tenant, branch_id)}"
        what = f"no unexpired backup named {name}" if name else "no unexpired backup"
        also = f" ({len(listed) - len(held)} expired there)" if len(listed) > len(held) else ""
        raise FileNotFoundError(f"{what} for {tenant}/{branch_id} in {where}{also}")
    return chosen[-1]


def sweep(target: S3Target, client: Any, tenant: str, branch_id: str, now: datetime, max_age: timedelta) -> list[str]:
    """Delete the branch's objects past their expiry (or older than `max_age`); the names deleted."""
    gone = []
    for item in listing(target, client, tenant, branch_id):
        if backup_seal.expired(item.name, now, max_age, item.last_modified):
            try:
                client.delete_object(Bucket=target.bucket, Key=item.key)
            except _errors() as exc:
                raise _failed(target, f"deletion of {item.key}", exc) from None
            gone.append(item.name)
    return gone


def download(target: S3Target, client: Any, item: S3Object, dest: Path) -> None:
    """Download one object into a new file `dest` (0600); nothing is left there when it fails."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            client.download_fileobj(target.bucket, item.key, out)
    except _errors() as exc:
        dest.unlink(missing_ok=True)
        raise _failed(target, f"download of {item.key}", exc) from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
