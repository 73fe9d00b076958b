"""Config distribution: the cloud keeps every version of a branch's document and puts the newest in the
`qms_config` KV bucket under `<tenant>.<branch>`; the branch applies it and answers with `config.applied` or
`config.rejected` in its own log, which replicates back and shows in the console."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.store import branches, config_versions, transaction, utcnow_iso
from sync.contract_config import BranchConfig, config_decoder
from sync.relay import config_key


class ConfigRefused(Exception):
    """The document cannot be distributed (it does not parse, or names another branch)."""


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


async def distribute(engine: Engine, js: Any, tenant: str, branch_id: str, raw: bytes) -> tuple[int, int]:
    """Store a new version and put it in the KV bucket; returns (version, kv revision)."""
    config = parse_document(raw, branch_id)
    version = next_version(engine, tenant, branch_id)
    document = msgspec.json.encode(msgspec.structs.replace(config, version=version))
    kv = await js.key_value("qms_config")
    revision = int(await kv.put(config_key(tenant, branch_id), document))
    with transaction(engine) as conn:
        conn.execute(
            config_versions.insert().values(
                tenant_id=tenant,
                branch_id=branch_id,
                version=version,
                doc=document.decode(),
                kv_revision=revision,
                created_at=utcnow_iso(),
            )
        )
    return version, revision
