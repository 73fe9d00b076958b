"""Backups brought back from the S3-compatible store for `qms-edge restore --from-s3` and `qms-edge drill --from-s3`
(issue 16): a technician restoring a dead branch's newest shipped backup onto a new box.

What the store holds is sealed to the hub's backup key (sync/backup_seal.py); an appliance holds only the public half
(`backup-recipient.pem`), so it cannot open a sealed copy by itself — by design, a stolen card or a leaked bucket key
opens nothing. Two ways therefore:

- with `--key FILE`, the hub's private backup key (where it is kept: the hub host, or a restore station HQ trusts with
  it), the copy is downloaded, opened into a private scratch dir and restored (or drilled) from there, then deleted;
- without it the appliance finds the newest unexpired copy, names it, says plainly that only the hub's key opens it,
  and prints the hub-side `qms-cloud backups fetch --from-s3` that yields the archive `qms-edge restore` takes.

Only sync/backup_s3.py talks to the store; expiry is read from the names as everywhere else (QMS_BACKUP_MAX_AGE_DAYS).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync import backup_s3, backup_seal

HUB_OUT = "qms-restore.tar.gz"


class FetchFailed(Exception):
    """The store could not be read, holds nothing usable, or the copy does not open; the message says what to do."""


class NeedsHubKey(FetchFailed):
    """A sealed copy was found but nothing here can open it: the message points to the hub-side fetch."""


@dataclass(frozen=True)
class Located:
    """The sealed copy chosen in the store, and where it is."""

    target: backup_s3.S3Target
    tenant: str
    branch_id: str
    item: backup_s3.S3Object

    @property
    def url(self) -> str:
        """`s3://bucket/key`, for messages."""
        return f"s3://{self.target.bucket}/{self.item.key}"


def locate(
    target: backup_s3.S3Target,
    tenant: str,
    branch_id: str,
    *,
    name: str | None,
    max_age: timedelta,
    now: datetime | None = None,
    client: Any = None,
) -> Located:
    """The newest unexpired sealed copy of the branch (or the one named); FetchFailed when there is none."""
    if not tenant or not branch_id:
        raise FetchFailed("which branch? give --tenant and --branch (or set QMS_TENANT and QMS_BRANCH)")
    client = client or target.client()
    now = now or datetime.now(UTC)
    try:
        chosen = backup_s3.newest(target, client, tenant, branch_id, name=name, now=now, max_age=max_age)
    except backup_s3.S3Failed as exc:
        raise FetchFailed(f"{exc}: check QMS_BACKUP_S3_ENDPOINT, the bucket and the key's read rights") from None
    except FileNotFoundError as exc:
        raise FetchFailed(str(exc)) from None
    return Located(target, tenant, branch_id, chosen)


def hub_fetch_command(found: Located, out: str = HUB_OUT) -> str:
    """The command that opens this copy at the hub, where its private backup key is."""
    return (
        f"qms-cloud backups fetch --from-s3 --tenant {found.tenant} --branch {found.branch_id}"
        f" --name {found.item.name} --out {out}"
    )


def needs_hub_key(found: Located, then: str) -> NeedsHubKey:
    """The plain refusal when no private key was given: what was found, why it cannot be opened here, what to do."""
    return NeedsHubKey(
        f"found {found.item.name} ({found.item.size} bytes) in {found.url}, but it is sealed to the hub's backup key"
        " and this appliance holds only the public half, so it cannot open it.\n"
        f"At the hub (with QMS_HUB_BACKUP_KEY and the same QMS_BACKUP_S3_* settings): {hub_fetch_command(found)}\n"
        f"then copy {HUB_OUT} here and run: {then}\n"
        "(or give --key with the hub's private backup key where it is kept)"
    )


def load_key(path: Path) -> Any:
    """The hub's private backup key from `path`; FetchFailed in words when it is not one (e.g. the public half)."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise FetchFailed(f"cannot read the key {path}: {exc.strerror or exc}") from None
    if b"PUBLIC KEY" in pem:
        raise FetchFailed(
            f"{path} is a public key: a sealed backup opens only with the hub's private backup key"
            " (QMS_HUB_BACKUP_KEY at the hub)"
        )
    try:
        return backup_seal.load_private(pem)
    except (ValueError, TypeError) as exc:
        raise FetchFailed(f"{path} is not the hub's private backup key (a PEM X25519 key): {exc}") from None


@contextlib.contextmanager
def opened(found: Located, key_path: Path, work: Path | None = None, client: Any = None) -> Iterator[Path]:
    """Download the sealed copy into a private scratch dir (in `work`, else the system's temp dir), open it with the
    hub's private key and yield the plain archive; everything is deleted afterwards, whatever happened."""
    private = load_key(key_path)
    client = client or found.target.client()
    with tempfile.TemporaryDirectory(prefix="qms-s3-restore-", dir=work) as tmp:
        scratch = Path(tmp)
        os.chmod(scratch, 0o700)
        sealed = scratch / found.item.name
        archive = scratch / found.item.name.removesuffix(backup_seal.SUFFIX)
        try:
            backup_s3.download(found.target, client, found.item, sealed)
        except backup_s3.S3Failed as exc:
            raise FetchFailed(str(exc)) from None
        try:
            backup_seal.open_file(sealed, archive, private)
        except backup_seal.SealError as exc:
            raise FetchFailed(f"{found.item.name} does not open with {key_path}: {exc}") from None
        finally:
            sealed.unlink(missing_ok=True)
        yield archive
