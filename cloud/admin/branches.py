"""Branches at HQ (US-ADMIN-001): the profile (name, time zone, address, opening hours per weekday, areas/floors),
its life cycle (active -> retired; deleted only while it has no active service) and enrolment: a new branch gets its
NATS key (cloud/credentials.py) and a one-time code its appliance's first boot redeems for key and configuration.

Form parsing is pure (`parse_form`: field -> error key, shown inline in the page's language); the rest is I/O."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.audit import record
from cloud.admin.tables import branch_profiles, enrolment_codes
from cloud.store import branch_credentials, branches, config_versions, utcnow_iso
from sync.contract_config import WEEKDAYS, config_decoder
from sync.relay import config_key

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BRANCH_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # also a NATS subject token
CLOCK = re.compile(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
CODE_TTL = timedelta(hours=24)
NAME_MAX, ADDRESS_MAX = 120, 500
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # never in a name (PostgreSQL refuses NUL in text)
ENROL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: typed by a technician from a printout


@dataclass
class Profile:
    """A branch as HQ manages it."""

    tenant: str
    branch_id: str
    name: str
    timezone: str = "Asia/Jakarta"
    address: str = ""
    hours: dict[str, list[list[str]]] = field(default_factory=dict)  # weekday -> [[open, close]]; absent = closed
    areas: list[dict[str, str]] = field(default_factory=list)  # [{id, name}]
    status: str = "active"

    def as_dict(self) -> dict[str, Any]:
        """What the audit log records before/after a change."""
        return {
            "name": self.name,
            "timezone": self.timezone,
            "address": self.address,
            "hours": self.hours,
            "areas": self.areas,
            "status": self.status,
        }

    def areas_text(self) -> str:
        """Areas as the form's lines (`id: name`)."""
        return "\n".join(f"{a['id']}: {a['name']}" for a in self.areas)


def parse_form(tenant: str, form: dict[str, Any], *, new: bool) -> tuple[Profile, dict[str, str]]:
    """The profile a submitted form describes, and per field the error key (empty when valid)."""
    errors: dict[str, str] = {}

    def text(key: str) -> str:  # a field sent twice arrives as a list: refused by the field's own check
        value = form.get(key, "")
        return value.strip() if isinstance(value, str) else "\x00"

    branch_id = text("branch_id")
    if new and not BRANCH_ID.match(branch_id):
        errors["branch_id"] = "err_branch_id"
    name = text("name")
    if not 1 <= len(name) <= NAME_MAX or CONTROL.search(name):
        errors["name"] = "err_name"
    zone = text("timezone") or "Asia/Jakarta"
    if zone not in available_timezones():
        errors["timezone"] = "err_timezone"
    address = text("address")
    if len(address) > ADDRESS_MAX or CONTROL.search(address):
        errors["address"] = "err_address"
    hours: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        opens, closes = text(f"open_{day}"), text(f"close_{day}")
        if not opens and not closes:
            continue
        if not (CLOCK.match(opens) and CLOCK.match(closes)) or opens >= closes:
            errors[f"hours_{day}"] = "err_hours"
            continue
        hours[day] = [[opens, closes]]
    areas: list[dict[str, str]] = []
    for line in text("areas").splitlines():
        if not line.strip():
            continue
        area_id, sep, area_name = line.partition(":")
        area_id, area_name = area_id.strip(), area_name.strip()
        if not sep or not IDENT.match(area_id) or not 1 <= len(area_name) <= NAME_MAX or CONTROL.search(area_name):
            errors["areas"] = "err_areas"
            break
        if any(a["id"] == area_id for a in areas):
            errors["areas"] = "err_areas_duplicate"
            break
        areas.append({"id": area_id, "name": area_name})
    return Profile(tenant, branch_id, name, zone, address, hours, areas), errors


def _profile(row: Any) -> Profile:
    return Profile(
        row.tenant_id,
        row.branch_id,
        row.name,
        row.timezone,
        row.address,
        json.loads(row.hours),
        json.loads(row.areas),
        row.status,
    )


def list_profiles(conn: Connection, tenants: frozenset[str] | None) -> list[Profile]:
    """Every managed branch the caller may see."""
    q = sa.select(branch_profiles).order_by(branch_profiles.c.tenant_id, branch_profiles.c.branch_id)
    if tenants is not None:
        q = q.where(branch_profiles.c.tenant_id.in_(sorted(tenants)))
    return [_profile(r) for r in conn.execute(q)]


def get_profile(conn: Connection, tenant: str, branch_id: str) -> Profile | None:
    """One branch's profile (None when HQ does not manage it)."""
    row = conn.execute(
        sa.select(branch_profiles).where(
            branch_profiles.c.tenant_id == tenant, branch_profiles.c.branch_id == branch_id
        )
    ).first()
    return _profile(row) if row else None


def save_profile(conn: Connection, profile: Profile, *, actor: str, source_ip: str | None, new: bool) -> None:
    """Insert or update the profile, audited with before/after."""
    now = utcnow_iso()
    values = {
        "name": profile.name,
        "timezone": profile.timezone,
        "address": profile.address,
        "hours": json.dumps(profile.hours),
        "areas": json.dumps(profile.areas),
        "status": profile.status,
        "updated_at": now,
    }
    before = None
    if new:
        conn.execute(
            branch_profiles.insert().values(
                tenant_id=profile.tenant, branch_id=profile.branch_id, created_at=now, **values
            )
        )
    else:
        old = get_profile(conn, profile.tenant, profile.branch_id)
        before = old.as_dict() if old else None
        conn.execute(
            branch_profiles.update()
            .where(branch_profiles.c.tenant_id == profile.tenant, branch_profiles.c.branch_id == profile.branch_id)
            .values(**values)
        )
    record(
        conn,
        actor=actor,
        action="branch.create" if new else "branch.update",
        tenant=profile.tenant,
        branch=profile.branch_id,
        target=f"branch {profile.branch_id}",
        source_ip=source_ip,
        before=before,
        after=profile.as_dict(),
    )


def newest_document(conn: Connection, tenant: str, branch_id: str) -> bytes | None:
    """The newest configuration HQ distributed to the branch (None before the first)."""
    row = conn.execute(
        sa.select(config_versions.c.doc)
        .where(config_versions.c.tenant_id == tenant, config_versions.c.branch_id == branch_id)
        .order_by(config_versions.c.version.desc())
        .limit(1)
    ).first()
    return row.doc.encode() if row else None


def active_services(conn: Connection, tenant: str, branch_id: str) -> list[str]:
    """The active services of the branch's newest distributed configuration (what blocks a delete)."""
    raw = newest_document(conn, tenant, branch_id)
    if raw is None:
        return []
    try:
        return [s.id for s in config_decoder.decode(raw).services if s.active]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


class BranchInUse(Exception):
    """A branch with active services is retired, never deleted."""


def set_status(
    conn: Connection, tenant: str, branch_id: str, status: str, *, actor: str, source_ip: str | None
) -> None:
    """Retire (or reactivate) a branch, audited."""
    conn.execute(
        branch_profiles.update()
        .where(branch_profiles.c.tenant_id == tenant, branch_profiles.c.branch_id == branch_id)
        .values(status=status, updated_at=utcnow_iso())
    )
    record(
        conn,
        actor=actor,
        action=f"branch.{'retire' if status == 'retired' else 'reactivate'}",
        tenant=tenant,
        branch=branch_id,
        target=f"branch {branch_id}",
        source_ip=source_ip,
        after={"status": status},
    )


def delete_branch(conn: Connection, tenant: str, branch_id: str, *, actor: str, source_ip: str | None) -> None:
    """Delete a branch that never ran an active service (a mistaken entry); otherwise `BranchInUse`."""
    in_use = active_services(conn, tenant, branch_id)
    if in_use:
        raise BranchInUse(", ".join(in_use))
    before = get_profile(conn, tenant, branch_id)
    for table in (branch_profiles, enrolment_codes, branch_credentials):
        conn.execute(sa.delete(table).where(table.c.tenant_id == tenant, table.c.branch_id == branch_id))
    conn.execute(
        sa.delete(branches).where(
            branches.c.tenant_id == tenant, branches.c.branch_id == branch_id, branches.c.events == 0
        )
    )
    record(
        conn,
        actor=actor,
        action="branch.delete",
        tenant=tenant,
        branch=branch_id,
        target=f"branch {branch_id}",
        source_ip=source_ip,
        before=before.as_dict() if before else None,
    )


def _digest(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").upper().encode()).hexdigest()


def new_enrolment_code(
    conn: Connection, tenant: str, branch_id: str, *, actor: str, source_ip: str | None, now: datetime | None = None
) -> tuple[str, datetime]:
    """A fresh one-time code (shown once, stored as a hash) valid for `CODE_TTL`; earlier unused codes stop working."""
    now = now or datetime.now(UTC)
    raw = "".join(secrets.choice(ENROL_ALPHABET) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    expires = now + CODE_TTL
    conn.execute(
        sa.delete(enrolment_codes).where(
            enrolment_codes.c.tenant_id == tenant,
            enrolment_codes.c.branch_id == branch_id,
            enrolment_codes.c.used_at.is_(None),
        )
    )
    conn.execute(
        enrolment_codes.insert().values(
            code_hash=_digest(code),
            tenant_id=tenant,
            branch_id=branch_id,
            created_by=actor,
            created_at=now.isoformat(),
            expires_at=expires.isoformat(),
        )
    )
    record(
        conn,
        actor=actor,
        action="branch.enrolment_code",
        tenant=tenant,
        branch=branch_id,
        target=f"branch {branch_id}",
        source_ip=source_ip,
        after={"expires_at": expires.isoformat()},
    )
    return code, expires


class EnrolmentRefused(Exception):
    """The code is unknown, used or expired (one answer for all three: nothing to learn from probing)."""


@dataclass(frozen=True)
class Enrolled:
    """What an appliance receives for its code."""

    tenant: str
    branch_id: str
    nats_seed: str
    config: dict[str, Any] | None


def redeem(
    engine: Engine, keys_dir: Path, code: str, *, source_ip: str | None, now: datetime | None = None
) -> Enrolled:
    """Spend a code once: its branch's seed and newest configuration; audited as the appliance's enrolment."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(sa.select(enrolment_codes).where(enrolment_codes.c.code_hash == _digest(code))).first()
        if row is None or row.used_at is not None or datetime.fromisoformat(row.expires_at) <= now:
            raise EnrolmentRefused
        spent = conn.execute(
            enrolment_codes.update()
            .where(enrolment_codes.c.code_hash == row.code_hash, enrolment_codes.c.used_at.is_(None))
            .values(used_at=now.isoformat())
        )
        if spent.rowcount != 1:  # another request spent it first
            raise EnrolmentRefused
        seed_file = keys_dir / f"{config_key(row.tenant_id, row.branch_id)}.nk"
        if not seed_file.exists():
            raise EnrolmentRefused
        raw = newest_document(conn, row.tenant_id, row.branch_id)
        record(
            conn,
            actor=f"appliance:{row.branch_id}",
            action="branch.enrolled",
            tenant=row.tenant_id,
            branch=row.branch_id,
            target=f"branch {row.branch_id}",
            source_ip=source_ip,
        )
    return Enrolled(row.tenant_id, row.branch_id, seed_file.read_text().strip(), json.loads(raw) if raw else None)
