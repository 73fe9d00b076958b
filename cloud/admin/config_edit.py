"""Services and counters at HQ (US-ADMIN-002/003) and approvals (US-ADMIN-006).

A console edit starts from the document the branch runs (its newest `config.applied`, local edits included) and
names that version as its base; `cloud.config_dist.check_base` then refuses it when the branch has moved on since,
so a local edit HQ has not seen is detected, never overwritten. The edited document is validated with the very rules
the appliance enforces (`msgspec` constraints of `BranchConfig` and `structural_errors`) before anything is stored.

With approvals on for the tenant, a change is stored as a change request (the document and its diff against the
base) and distributed only when a different person with `config.approve` approves it before it expires."""

from __future__ import annotations

import difflib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.audit import record
from cloud.admin.tables import change_requests, tenant_settings
from cloud.config_dist import ConfigRefused, Distributed, check_base, push_config, running_version
from cloud.store import branches, config_versions, events, utcnow_iso
from sync.contract_config import BranchConfig, Counter, Service, config_decoder, config_hash, structural_errors

REQUEST_TTL = timedelta(hours=48)
_pretty = msgspec.json.Encoder(order="sorted")


def validate(config: BranchConfig) -> tuple[BranchConfig | None, list[str]]:
    """The document re-read through the contract's decoder (field constraints) plus the cross-reference rules."""
    try:
        checked = config_decoder.decode(msgspec.json.encode(config))
    except msgspec.ValidationError as exc:
        return None, [str(exc)]
    return checked, structural_errors(checked)


def running_document(conn: Connection, tenant: str, branch_id: str) -> BranchConfig | None:
    """What the branch runs: the configuration of its newest replicated `config.applied` (None before one)."""
    row = conn.execute(
        sa.select(events.c.body)
        .where(events.c.tenant_id == tenant, events.c.branch_id == branch_id, events.c.type == "config.applied")
        .order_by(events.c.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    body = json.loads(row.body)
    return config_decoder.decode(json.dumps({**body["config"], "version": body["version"]}))


def editing_document(conn: Connection, tenant: str, branch_id: str) -> tuple[BranchConfig | None, bool]:
    """The document the next HQ edit starts from, and whether it is still on its way: HQ's newest distributed
    version when it is newer than what the branch runs and the branch has not refused it (so two edits in a row do
    not lose the first), else what the branch runs."""
    running = running_document(conn, tenant, branch_id)
    newest = conn.execute(
        sa.select(config_versions.c.version, config_versions.c.doc)
        .where(config_versions.c.tenant_id == tenant, config_versions.c.branch_id == branch_id)
        .order_by(config_versions.c.version.desc())
        .limit(1)
    ).first()
    refused = conn.execute(
        sa.select(branches.c.config_rejected_version).where(
            branches.c.tenant_id == tenant, branches.c.branch_id == branch_id
        )
    ).scalar_one_or_none()
    if newest is not None and newest.version != refused and (running is None or newest.version > running.version):
        return config_decoder.decode(newest.doc), True
    return running, False


def version_document(conn: Connection, tenant: str, branch_id: str, version: int) -> BranchConfig | None:
    """A version HQ distributed."""
    row = conn.execute(
        sa.select(config_versions.c.doc).where(
            config_versions.c.tenant_id == tenant,
            config_versions.c.branch_id == branch_id,
            config_versions.c.version == version,
        )
    ).first()
    return config_decoder.decode(row.doc) if row else None


def _versions(conn: Connection, tenant: str, branch_id: str) -> dict[tuple[int, str], tuple[BranchConfig, str, str]]:
    """Every version known for the branch: what HQ distributed and what the branch applied (seed, local edits),
    keyed by (number, content hash) -> (document, origin `hq`/`branch`, when)."""
    found: dict[tuple[int, str], tuple[BranchConfig, str, str]] = {}
    applied = conn.execute(
        sa.select(events.c.body, events.c.occurred_at)
        .where(events.c.tenant_id == tenant, events.c.branch_id == branch_id, events.c.type == "config.applied")
        .order_by(events.c.seq)
    ).all()
    for body, at in applied:
        event = json.loads(body)
        doc = config_decoder.decode(json.dumps({**event["config"], "version": event["version"]}))
        found[(doc.version, config_hash(doc))] = (doc, "branch", at)
    rows = conn.execute(
        sa.select(config_versions).where(
            config_versions.c.tenant_id == tenant, config_versions.c.branch_id == branch_id
        )
    ).all()
    for r in rows:
        doc = config_decoder.decode(r.doc)
        found[(r.version, config_hash(doc))] = (doc, "hq", r.created_at)
    return found


def history(conn: Connection, tenant: str, branch_id: str) -> list[dict[str, Any]]:
    """Every version, newest first, each with its origin (HQ or the branch) and readable diff to the one before."""
    out, previous = [], None
    for (version, digest), (doc, origin, at) in sorted(_versions(conn, tenant, branch_id).items()):
        out.append(
            {
                "version": version,
                "hash": digest,
                "created_at": at,
                "origin": origin,
                "diff": diff(previous, doc) if previous is not None else [],
            }
        )
        previous = doc
    return list(reversed(out))


def any_version(conn: Connection, tenant: str, branch_id: str, version: int) -> BranchConfig | None:
    """A version's document whether HQ distributed it or the branch made it (HQ's copy when both exist)."""
    matches = [
        (origin == "hq", doc)
        for (v, _h), (doc, origin, _at) in _versions(conn, tenant, branch_id).items()
        if v == version
    ]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def _lines(config: BranchConfig) -> list[str]:
    doc = json.loads(_pretty.encode(msgspec.structs.replace(config, version=0)))
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def diff(before: BranchConfig | None, after: BranchConfig) -> list[str]:
    """Changed lines only (`-`/`+`), version numbers left out: what a reviewer reads."""
    old = _lines(before) if before is not None else []
    lines = difflib.unified_diff(old, _lines(after), lineterm="", n=1)
    return [line for line in lines if not line.startswith(("---", "+++"))]


def upsert_service(config: BranchConfig, service: Service) -> BranchConfig:
    """The document with `service` added, or replacing the one with its id."""
    others = [s for s in config.services if s.id != service.id]
    index = next((i for i, s in enumerate(config.services) if s.id == service.id), len(others))
    return msgspec.structs.replace(config, services=[*others[:index], service, *others[index:]])


def upsert_counter(config: BranchConfig, counter: Counter) -> BranchConfig:
    """The document with `counter` added, or replacing the one with its id."""
    others = [c for c in config.counters if c.id != counter.id]
    index = next((i for i, c in enumerate(config.counters) if c.id == counter.id), len(others))
    return msgspec.structs.replace(config, counters=[*others[:index], counter, *others[index:]])


def service_from_form(form: dict[str, Any], existing: Service | None) -> Service | str:
    """A Service from the form's fields (kept fields of an existing one); an error message when a number is not."""
    try:
        sla = int(form.get("sla_minutes") or (existing.sla_minutes if existing else 15))
    except ValueError:
        return "sla_minutes: not a number"
    names = dict(existing.names) if existing else {}
    if form.get("name_en", "").strip():
        names["en"] = form["name_en"].strip()
    base = existing or Service(id="x", name="x", prefix="A")
    return msgspec.structs.replace(
        base,
        id=form.get("id", "").strip(),
        name=form.get("name", "").strip(),
        names=names,
        prefix=form.get("prefix", "").strip(),
        area_id=form.get("area_id", "").strip() or None,
        active=form.get("active") == "on",
        sla_minutes=sla,
    )


def counter_from_form(form: dict[str, Any], services: list[str]) -> Counter:
    """A Counter from the form's fields."""
    return Counter(
        id=form.get("id", "").strip(),
        name=form.get("name", "").strip(),
        area_id=form.get("area_id", "").strip() or None,
        services=services,
        active=form.get("active") == "on",
    )


def approvals_on(conn: Connection, tenant: str) -> bool:
    """Whether the tenant's configuration changes need a second person's approval."""
    row = conn.execute(sa.select(tenant_settings.c.approvals).where(tenant_settings.c.tenant_id == tenant)).first()
    return bool(row and row.approvals)


def set_approvals(conn: Connection, tenant: str, on: bool, *, actor: str, source_ip: str | None) -> None:
    """Switch approvals for a tenant, audited."""
    before = approvals_on(conn, tenant)
    conn.execute(sa.delete(tenant_settings).where(tenant_settings.c.tenant_id == tenant))
    conn.execute(tenant_settings.insert().values(tenant_id=tenant, approvals=on, updated_at=utcnow_iso()))
    record(
        conn,
        actor=actor,
        action="tenant.approvals",
        tenant=tenant,
        source_ip=source_ip,
        before={"approvals": before},
        after={"approvals": on},
    )


@dataclass(frozen=True)
class Outcome:
    """What a submitted change led to: distributed now (`distributed`) or waiting for approval (`request_id`)."""

    distributed: Distributed | None = None
    request_id: str | None = None


async def submit(
    engine: Engine,
    js: Any,
    tenant: str,
    branch_id: str,
    config: BranchConfig,
    *,
    actor: str,
    source_ip: str | None,
    what: str,
) -> Outcome:
    """Distribute a checked document (its `version` = its base), or file it as a change request when approvals are on;
    `ConfigRefused` when the branch runs a newer version than the base (a conflicting local edit)."""
    check_base(running_version(engine, tenant, branch_id), config.version)
    with engine.connect() as conn:
        gated = approvals_on(conn, tenant)
        base_doc = any_version(conn, tenant, branch_id, config.version)
    if gated:
        request_id = secrets.token_hex(8)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                change_requests.insert().values(
                    id=request_id,
                    tenant_id=tenant,
                    branch_id=branch_id,
                    base_version=config.version,
                    doc=msgspec.json.encode(config).decode(),
                    summary=what,
                    status="pending",
                    requested_by=actor,
                    requested_at=now.isoformat(),
                    expires_at=(now + REQUEST_TTL).isoformat(),
                )
            )
            record(
                conn,
                actor=actor,
                action="config.request",
                tenant=tenant,
                branch=branch_id,
                target=f"change {request_id}",
                source_ip=source_ip,
                after={"summary": what, "diff": diff(base_doc, config)},
            )
        return Outcome(request_id=request_id)
    done = await push_config(engine, js, tenant, branch_id, msgspec.json.encode(config))
    with engine.begin() as conn:
        record(
            conn,
            actor=actor,
            action="config.distribute",
            tenant=tenant,
            branch=branch_id,
            target=f"config v{done.version}",
            source_ip=source_ip,
            after={"summary": what, "diff": diff(base_doc, config), "hash": done.config_hash},
        )
    return Outcome(distributed=done)


def expire_requests(conn: Connection, now: datetime | None = None) -> int:
    """Pending requests past their time become `expired` (each audited); how many."""
    now = now or datetime.now(UTC)
    stale = conn.execute(
        sa.select(change_requests.c.id, change_requests.c.tenant_id, change_requests.c.branch_id).where(
            change_requests.c.status == "pending", change_requests.c.expires_at <= now.isoformat()
        )
    ).all()
    for r in stale:
        conn.execute(
            change_requests.update()
            .where(change_requests.c.id == r.id)
            .values(status="expired", decided_at=now.isoformat())
        )
        record(
            conn,
            actor="system",
            action="config.request_expired",
            tenant=r.tenant_id,
            branch=r.branch_id,
            target=f"change {r.id}",
        )
    return len(stale)


def list_requests(conn: Connection, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
    """Change requests the caller may see, newest first, each with its diff against its base."""
    q = sa.select(change_requests).order_by(change_requests.c.requested_at.desc()).limit(200)
    if tenants is not None:
        q = q.where(change_requests.c.tenant_id.in_(sorted(tenants)))
    out = []
    for r in conn.execute(q):
        if r.kind == "staff":  # a staff account's change (cloud/admin/staff.py): its own diff, never a hash
            from cloud.admin.staff import request_diff  # staff builds on this module

            out.append({**r._asdict(), "diff": request_diff(conn, r.tenant_id, r.branch_id, r.doc)})
            continue
        proposed = config_decoder.decode(r.doc)
        base = any_version(conn, r.tenant_id, r.branch_id, r.base_version)
        out.append({**r._asdict(), "diff": diff(base, proposed)})
    return out


class DecisionRefused(Exception):
    """The request cannot be decided by this person now (their own, no longer pending, or another tenant's)."""


async def decide(
    engine: Engine,
    js: Any,
    request_id: str,
    *,
    approve: bool,
    actor: str,
    source_ip: str | None,
    tenants: frozenset[str] | None,
) -> Distributed | None:
    """Approve (distribute, with the base check again) or reject a pending request; the requester cannot decide it."""
    with engine.begin() as conn:
        expire_requests(conn)
        row = conn.execute(sa.select(change_requests).where(change_requests.c.id == request_id)).first()
    if row is None or (tenants is not None and row.tenant_id not in tenants):
        raise LookupError(request_id)
    if row.status != "pending":
        raise DecisionRefused(f"status_{row.status}")
    if row.requested_by == actor:
        raise DecisionRefused("own_request")
    # Claim it first: two approvers clicking at once (or two hub replicas) must not distribute it twice.
    with engine.begin() as conn:
        claimed = conn.execute(
            change_requests.update()
            .where(change_requests.c.id == request_id, change_requests.c.status == "pending")
            .values(status="deciding", decided_by=actor)
        ).rowcount
    if claimed != 1:
        raise DecisionRefused("status_approved")
    done = None
    if approve:
        try:
            if row.kind == "staff":
                await _approve_staff(engine, js, row, source_ip)
            else:
                done = await push_config(engine, js, row.tenant_id, row.branch_id, row.doc.encode())
        except BaseException:
            with engine.begin() as conn:  # not distributed: it waits again
                conn.execute(
                    change_requests.update()
                    .where(change_requests.c.id == request_id)
                    .values(status="pending", decided_by=None)
                )
            raise
    with engine.begin() as conn:
        conn.execute(
            change_requests.update()
            .where(change_requests.c.id == request_id)
            .values(
                status="approved" if approve else "rejected",
                decided_by=actor,
                decided_at=utcnow_iso(),
                distributed_version=done.version if done else None,
            )
        )
        record(
            conn,
            actor=actor,
            action=f"{row.kind}.{'approve' if approve else 'reject'}",
            tenant=row.tenant_id,
            branch=row.branch_id,
            target=f"change {request_id}",
            source_ip=source_ip,
            after={"version": done.version, "hash": done.config_hash} if done else None,
        )
    return done


async def _approve_staff(engine: Engine, js: Any, row: Any, source_ip: str | None) -> None:
    """Save an approved staff change (`DecisionRefused("staff_conflict")` when the account changed since it was
    filed; nothing saved) and publish the branch's staff document."""
    from cloud.admin import staff  # staff builds on this module

    try:
        with engine.begin() as conn:
            doc = staff.apply_request(conn, row, source_ip=source_ip)
    except staff.StaffConflict:
        raise DecisionRefused("staff_conflict") from None
    await staff.publish(js, doc)


async def rollback(
    engine: Engine, js: Any, tenant: str, branch_id: str, version: int, *, actor: str, source_ip: str | None
) -> Outcome:
    """Distribute an earlier version's content again as a new version (based on what the branch runs now)."""
    with engine.connect() as conn:
        old = any_version(conn, tenant, branch_id, version)
    if old is None:
        raise LookupError(version)
    running = running_version(engine, tenant, branch_id)
    base = running.version if running else old.version
    return await submit(
        engine,
        js,
        tenant,
        branch_id,
        msgspec.structs.replace(old, version=base),
        actor=actor,
        source_ip=source_ip,
        what=f"rollback to v{version}",
    )


__all__ = ["ConfigRefused", "Outcome", "decide", "history", "rollback", "submit", "validate"]
