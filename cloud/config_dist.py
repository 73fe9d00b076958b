"""Config distribution: the cloud keeps every version of a branch's document and puts the newest in the
`qms_config` KV bucket under `<tenant>.<branch>`; the branch applies it and answers with `config.applied` or
`config.rejected` in its own log, which replicates back and shows in the console.

A version number alone is ambiguous (a branch admin's local edit takes the next number at the branch), so every
version travels with its content hash (`sync.contract_config.config_hash`, shown as 12 hex digits): in the KV entry's
`Qms-Config-Hash` header, the `config_versions` row and the branch's `config.applied` / `config.rejected` events.
A push names the version it was edited from (the document's `version`); when the branch runs a newer one, local edits
included, the push is refused unless forced, so HQ never silently replaces changes it has not seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.store import branches, config_versions, transaction, utcnow_iso
from sync.config_watch import HASH_HEADER, VERSION_HEADER
from sync.contract_config import BranchConfig, config_decoder, config_hash, short_hash
from sync.relay import CONFIG_BUCKET, config_key


class ConfigRefused(Exception):
    """The document cannot be distributed (it does not parse, names another branch, or is based on a version older
    than the one the branch runs)."""


def parse_document(raw: bytes, branch_id: str) -> BranchConfig:
    """Structural validation at the cloud; the branch checks the rules (references, active tickets) itself."""
    try:
        config = config_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigRefused(f"invalid configuration document: {exc}") from None
    if config.branch_id != branch_id:
        raise ConfigRefused(f"the document is for branch {config.branch_id!r}, not {branch_id!r}")
    return config


def next_version(engine: Engine, tenant: str, branch_id: str) -> int:
    """Newer than anything the cloud distributed and anything the branch reported running."""
    with engine.connect() as conn:
        distributed = conn.execute(
            sa.select(sa.func.max(config_versions.c.version)).where(
                config_versions.c.tenant_id == tenant, config_versions.c.branch_id == branch_id
            )
        ).scalar_one_or_none()
        running = conn.execute(
            sa.select(branches.c.config_version).where(
                branches.c.tenant_id == tenant, branches.c.branch_id == branch_id
            )
        ).scalar_one_or_none()
    return max(distributed or 0, running or 0) + 1


@dataclass(frozen=True)
class Running:
    """What the branch reported running (its last `config.applied`), and whether HQ distributed that document."""

    version: int
    config_hash: str | None
    from_hq: bool

    def label(self) -> str:
        """`v4 (1a2b3c4d5e6f)`."""
        return f"v{self.version}" + (f" ({short_hash(self.config_hash)})" if self.config_hash else "")


def running_version(engine: Engine, tenant: str, branch_id: str) -> Running | None:
    """The version the branch runs as far as the hub knows (None before its first `config.applied`)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(branches.c.config_version, branches.c.config_hash).where(
                branches.c.tenant_id == tenant, branches.c.branch_id == branch_id
            )
        ).one_or_none()
        if row is None or row.config_version is None:
            return None
        known = conn.execute(
            sa.select(config_versions.c.version).where(
                config_versions.c.tenant_id == tenant,
                config_versions.c.branch_id == branch_id,
                config_versions.c.config_hash == row.config_hash,
            )
        ).first()
    return Running(int(row.config_version), row.config_hash, known is not None)


def check_base(running: Running | None, base: int) -> None:
    """Refuse a push edited from a version older than the one the branch runs (its changes would be lost)."""
    if running is None or base >= running.version:
        return
    whose = "HQ distributed it" if running.from_hq else "it was edited at the branch and HQ has never seen it"
    raise ConfigRefused(
        f"the branch runs {running.label()}, newer than v{base} this document is based on ({whose});"
        f' start from the branch\'s v{running.version} and set "version": {running.version} in the document, or'
        " push with --force to replace it"
    )


@dataclass(frozen=True)
class Distributed:
    """A distributed version: its number, KV revision and content hash."""

    version: int
    revision: int
    config_hash: str


async def push_config(
    engine: Engine, js: Any, tenant: str, branch_id: str, raw: bytes, *, force: bool = False
) -> Distributed:
    """Check the document's base version, store it as the next version and put it in the KV bucket with its hash."""
    config = parse_document(raw, branch_id)
    if not force:
        check_base(running_version(engine, tenant, branch_id), config.version)
    version = next_version(engine, tenant, branch_id)
    stamped = msgspec.structs.replace(config, version=version)
    digest = config_hash(stamped)
    document = msgspec.json.encode(stamped)
    # A KV put is a publish on `$KV.<bucket>.<key>`; publishing it ourselves lets the hash ride along as a header.
    headers = {HASH_HEADER: digest, VERSION_HEADER: str(version)}
    ack = await js.publish(f"$KV.{CONFIG_BUCKET}.{config_key(tenant, branch_id)}", document, headers=headers)
    revision = int(ack.seq)
    with transaction(engine) as conn:
        conn.execute(
            config_versions.insert().values(
                tenant_id=tenant,
                branch_id=branch_id,
                version=version,
                doc=document.decode(),
                kv_revision=revision,
                config_hash=digest,
                created_at=utcnow_iso(),
            )
        )
    return Distributed(version, revision, digest)


async def distribute(
    engine: Engine, js: Any, tenant: str, branch_id: str, raw: bytes, *, force: bool = False
) -> tuple[int, int]:
    """Store a new version and put it in the KV bucket; returns (version, kv revision)."""
    done = await push_config(engine, js, tenant, branch_id, raw, force=force)
    return done.version, done.revision
