"""Registering releases, publishing them to waves of branches, and the appliances' signed reports (US-ADMIN-010)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nkeys
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection, Engine

from cloud.releases.tables import release_reports, release_rollouts, releases
from cloud.store import branch_credentials, branches

WAVES = ("canary", "rest")
STATUSES = ("running", "rolled_back", "refused")


class ReportRefused(Exception):
    """A report whose signature does not verify against the branch's issued key, or that is malformed."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def register(engine: Engine, bundle: Path) -> str:
    """Record a signed bundle (already made by signing.make_bundle); returns its version."""
    raw = (bundle / "manifest.json").read_text()
    version = str(json.loads(raw)["version"])
    signature = (bundle / "manifest.sig").read_text().strip()
    with engine.begin() as conn:
        conn.execute(sa.delete(releases).where(releases.c.version == version))
        conn.execute(
            releases.insert().values(
                version=version, manifest=raw, signature=signature, bundle_dir=str(bundle), created_at=_now()
            )
        )
    return version


def publish(
    engine: Engine, version: str, tenant: str, wave: str, *, branch_ids: list[str] | None = None, actor: str
) -> list[str]:
    """Assign `version` to a wave: the canary's named branches, or the rest = every other branch of the tenant."""
    if wave not in WAVES:
        raise ValueError(f"wave must be one of {WAVES}")
    with engine.begin() as conn:
        if conn.execute(sa.select(releases.c.version).where(releases.c.version == version)).first() is None:
            raise LookupError(f"no release {version}")
        known = [
            r.branch_id for r in conn.execute(sa.select(branches.c.branch_id).where(branches.c.tenant_id == tenant))
        ]
        if wave == "canary":
            targets = [b for b in branch_ids or [] if b in known]
        else:
            canary = {
                r.branch_id
                for r in conn.execute(
                    sa.select(release_rollouts.c.branch_id).where(
                        release_rollouts.c.tenant_id == tenant,
                        release_rollouts.c.version == version,
                        release_rollouts.c.wave == "canary",
                    )
                )
            }
            targets = [b for b in known if b not in canary]
        for branch_id in targets:
            conn.execute(
                sa.delete(release_rollouts).where(
                    release_rollouts.c.tenant_id == tenant, release_rollouts.c.branch_id == branch_id
                )
            )
            conn.execute(
                release_rollouts.insert().values(
                    tenant_id=tenant,
                    branch_id=branch_id,
                    version=version,
                    wave=wave,
                    published_at=_now(),
                    published_by=actor,
                )
            )
    return targets


def assigned(conn: Connection, tenant: str, branch_id: str) -> dict[str, Any] | None:
    """The release a branch should run: version, wave and the signed manifest, or None."""
    row = conn.execute(
        sa.select(release_rollouts.c.version, release_rollouts.c.wave, releases.c.manifest, releases.c.signature)
        .join(releases, releases.c.version == release_rollouts.c.version)
        .where(release_rollouts.c.tenant_id == tenant, release_rollouts.c.branch_id == branch_id)
    ).first()
    if row is None:
        return None
    return {"version": row.version, "wave": row.wave, "manifest": row.manifest, "signature": row.signature}


@dataclass(frozen=True)
class Report:
    """One appliance's outcome, after its signature checked out."""

    tenant: str
    branch_id: str
    version: str
    status: str
    running: str
    detail: str


def accept_report(engine: Engine, report: str, signature: str) -> Report:
    """Verify a report signed with the branch's NKey (edge.updates.signed_report) and append it."""
    try:
        body = json.loads(report)
        tenant, branch_id = str(body["tenant"]), str(body["branch_id"])
        parsed = Report(
            tenant,
            branch_id,
            str(body["version"])[:64],
            str(body["status"]),
            str(body["running"])[:64],
            str(body.get("detail", ""))[:2000],
        )
        sig = base64.b64decode(signature, validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportRefused(f"malformed report: {exc}") from None
    if parsed.status not in STATUSES:
        raise ReportRefused(f"unknown status {parsed.status!r}")
    with engine.begin() as conn:
        public = conn.execute(
            sa.select(branch_credentials.c.public_key).where(
                branch_credentials.c.tenant_id == tenant, branch_credentials.c.branch_id == branch_id
            )
        ).scalar()
        if public is None:
            raise ReportRefused("unknown branch")
        try:
            nkey_public(public).verify(sig, report.encode())
        except (InvalidSignature, ValueError):
            raise ReportRefused("signature does not match the branch's key") from None
        conn.execute(
            release_reports.insert().values(
                tenant_id=tenant,
                branch_id=branch_id,
                version=parsed.version,
                status=parsed.status,
                running=parsed.running,
                detail=parsed.detail,
                reported_at=_now(),
            )
        )
    return parsed


def nkey_public(public: str) -> Ed25519PublicKey:
    """The Ed25519 key inside an NKey public key (base32: prefix byte, 32-byte key, CRC16), checksum checked."""
    raw = base64.b32decode(public + "=" * (-len(public) % 8))
    if len(raw) != 35 or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:  # noqa: PLR2004
        raise ValueError("not an NKey public key")
    return Ed25519PublicKey.from_public_bytes(raw[1:33])


def fleet(conn: Connection, scope: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
    """Per branch in scope: the assigned version and wave, what it last reported running, and its failures."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in conn.execute(
        sa.select(branches.c.tenant_id, branches.c.branch_id)
        .where(scope)
        .order_by(branches.c.tenant_id, branches.c.branch_id)
    ):
        out[(r.tenant_id, r.branch_id)] = {
            "tenant": r.tenant_id,
            "branch_id": r.branch_id,
            "assigned": None,
            "wave": None,
            "running": None,
            "last_report": None,
            "failures": [],
        }
    for r in conn.execute(sa.select(release_rollouts)):
        if (entry := out.get((r.tenant_id, r.branch_id))) is not None:
            entry["assigned"], entry["wave"] = r.version, r.wave
    for r in conn.execute(sa.select(release_reports).order_by(release_reports.c.id)):
        if (entry := out.get((r.tenant_id, r.branch_id))) is None:
            continue
        item = {"version": r.version, "status": r.status, "running": r.running, "detail": r.detail, "at": r.reported_at}
        entry["running"], entry["last_report"] = r.running, item
        if r.status != "running":
            entry["failures"].append(item)
    return list(out.values())
