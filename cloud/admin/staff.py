"""Central staff accounts (US-ADMIN-003): HQ creates, changes and disables a branch's staff accounts; the branch
receives them as argon2id hashes only (sync/staff.py, the `qms_staff` KV bucket), so staff sign in at the appliance as
before, offline included. A password is write-only: hashed on arrival, never stored, shown, logged or audited."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Connection

from cloud.admin.audit import record
from cloud.admin.config_edit import REQUEST_TTL, running_document
from cloud.admin.tables import change_requests, staff_accounts
from cloud.store import utcnow_iso
from sync.passwords import Passwords
from sync.relay import config_key
from sync.staff import STAFF_BUCKET, StaffAccount, StaffDocument

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROLES = ("agent", "supervisor", "admin")
MIN_PASSWORD, MAX_PASSWORD = 10, 1024
_passwords = Passwords(PasswordHasher())


@dataclass(frozen=True)
class Account:
    """An account as the page lists it (never its hash)."""

    username: str
    role: str
    counters: list[str]
    active: bool
    updated_at: str


def accounts(conn: Connection, tenant: str, branch_id: str) -> list[Account]:
    """The branch's HQ-managed accounts."""
    rows = conn.execute(
        sa.select(staff_accounts)
        .where(staff_accounts.c.tenant_id == tenant, staff_accounts.c.branch_id == branch_id)
        .order_by(staff_accounts.c.username)
    )
    return [Account(r.username, r.role, json.loads(r.counters), bool(r.active), r.updated_at) for r in rows]


def check_form(
    conn: Connection, tenant: str, branch_id: str, form: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The account a submitted form describes, and per field the error key (the appliance's rules: its roles, the
    branch's counters; a new account needs a password of at least 10 characters)."""
    errors: dict[str, str] = {}
    username = str(form.get("username", "")).strip()
    if not USERNAME.match(username):
        errors["username"] = "err_username"
    role = str(form.get("role", ""))
    if role not in ROLES:
        errors["role"] = "err_role"
    chosen = form.get("counters") or []
    counters = [chosen] if isinstance(chosen, str) else list(chosen)
    config = running_document(conn, tenant, branch_id)
    known = {c.id for c in config.counters} if config else set()
    if any(c not in known for c in counters):
        errors["counters"] = "err_counters"
    password = str(form.get("password", ""))
    exists = any(a.username == username for a in accounts(conn, tenant, branch_id))
    if (password or not exists) and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        errors["password"] = "err_password"  # noqa: S105 - an error message key, not a password
    return {
        "username": username,
        "role": role,
        "counters": counters,
        "password": password,
        "active": form.get("active") == "on",
    }, errors


def save(
    conn: Connection, tenant: str, branch_id: str, account: dict[str, Any], *, actor: str, source_ip: str | None
) -> StaffDocument:
    """Store the account (a new password replaced by its hash) and return the branch's next staff document."""
    key = (staff_accounts.c.tenant_id == tenant) & (staff_accounts.c.branch_id == branch_id)
    version = (conn.execute(sa.select(sa.func.max(staff_accounts.c.version)).where(key)).scalar_one() or 0) + 1
    values: dict[str, Any] = {
        "role": account["role"],
        "counters": json.dumps(account["counters"]),
        "active": account["active"],
        "version": version,
        "updated_at": utcnow_iso(),
    }
    if account.get("password_hash"):  # an approved request carries the hash made when it was filed
        values["password_hash"] = account["password_hash"]
    elif account["password"]:
        values["password_hash"] = _passwords.hash(account["password"])
    before = conn.execute(
        sa.select(staff_accounts).where(key, staff_accounts.c.username == account["username"])
    ).first()
    if before is None:
        conn.execute(
            staff_accounts.insert().values(
                tenant_id=tenant, branch_id=branch_id, username=account["username"], **values
            )
        )
    else:
        conn.execute(
            staff_accounts.update().where(key, staff_accounts.c.username == account["username"]).values(**values)
        )
    shown = {
        "role": account["role"],
        "counters": account["counters"],
        "active": account["active"],
        "password_changed": bool(account.get("password") or account.get("password_hash")),
    }
    record(
        conn,
        actor=actor,
        action="staff.create" if before is None else "staff.update",
        tenant=tenant,
        branch=branch_id,
        target=f"staff {account['username']}",
        source_ip=source_ip,
        before=None
        if before is None
        else {"role": before.role, "counters": json.loads(before.counters), "active": bool(before.active)},
        after=shown,
    )
    return document(conn, tenant, branch_id)


class StaffConflict(Exception):
    """The account changed after the request was filed: approving it would overwrite that change."""


def _current(conn: Connection, tenant: str, branch_id: str, username: str) -> Any:
    key = (staff_accounts.c.tenant_id == tenant) & (staff_accounts.c.branch_id == branch_id)
    return conn.execute(sa.select(staff_accounts).where(key, staff_accounts.c.username == username)).first()


def file_request(
    conn: Connection, tenant: str, branch_id: str, account: dict[str, Any], *, actor: str, source_ip: str | None
) -> str:
    """With the tenant's approvals on: the change as a pending request (US-ADMIN-006) instead of saving it. A new
    password is hashed now, so the request holds only its hash; the base is the account's version as it is now (0 for
    a new one). Audited as `staff.request`; returns the request id."""
    request_id = secrets.token_hex(8)
    now = datetime.now(UTC)
    before = _current(conn, tenant, branch_id, account["username"])
    pending = {
        "username": account["username"],
        "role": account["role"],
        "counters": account["counters"],
        "active": account["active"],
        "password_hash": _passwords.hash(account["password"]) if account["password"] else None,
    }
    conn.execute(
        change_requests.insert().values(
            id=request_id, tenant_id=tenant, branch_id=branch_id, kind="staff",
            base_version=before.version if before is not None else 0, doc=json.dumps(pending),
            summary=f"staff {account['username']}", status="pending", requested_by=actor,
            requested_at=now.isoformat(), expires_at=(now + REQUEST_TTL).isoformat(),
        )
    )  # fmt: skip
    record(conn, actor=actor, action="staff.request", tenant=tenant, branch=branch_id,
           target=f"change {request_id}", source_ip=source_ip, before=_shown(before),
           after={**_shown_pending(pending), "account": account["username"]})  # fmt: skip
    return request_id


def _shown(row: Any) -> dict[str, Any] | None:
    """An account as the audit and the diff show it (never its hash)."""
    if row is None:
        return None
    return {"role": row.role, "counters": json.loads(row.counters), "active": bool(row.active)}


def _shown_pending(pending: dict[str, Any]) -> dict[str, Any]:
    return {"role": pending["role"], "counters": pending["counters"], "active": pending["active"],
            "password_changed": pending["password_hash"] is not None}  # fmt: skip


def request_diff(conn: Connection, tenant: str, branch_id: str, doc: str) -> list[str]:
    """A pending staff change against the account as it is now, line by line (`password: (new)`, never a hash)."""
    pending = json.loads(doc)
    before = _shown(_current(conn, tenant, branch_id, pending["username"])) or {}
    lines = [f"  account: {pending['username']}"]
    for name in ("role", "counters", "active"):
        new = json.dumps(pending[name])
        if name not in before:
            lines.append(f"+ {name}: {new}")
        elif json.dumps(before[name]) != new:
            lines += [f"- {name}: {json.dumps(before[name])}", f"+ {name}: {new}"]
    if pending["password_hash"] is not None:
        lines.append("+ password: (new)")
    return lines


def apply_request(conn: Connection, row: Any, *, source_ip: str | None) -> StaffDocument:
    """An approved staff request saved as its requester made it; `StaffConflict` when the account changed since it
    was filed. Returns the branch's next staff document (to publish)."""
    pending = json.loads(row.doc)
    current = _current(conn, row.tenant_id, row.branch_id, pending["username"])
    if (current.version if current is not None else 0) != row.base_version:
        raise StaffConflict(pending["username"])
    account = {**pending, "password": ""}
    return save(conn, row.tenant_id, row.branch_id, account, actor=row.requested_by, source_ip=source_ip)


def document(conn: Connection, tenant: str, branch_id: str) -> StaffDocument:
    """The branch's staff document: every HQ-managed account with its hash."""
    key = (staff_accounts.c.tenant_id == tenant) & (staff_accounts.c.branch_id == branch_id)
    rows = conn.execute(sa.select(staff_accounts).where(key).order_by(staff_accounts.c.username)).all()
    return StaffDocument(
        tenant_id=tenant,
        branch_id=branch_id,
        version=max((r.version for r in rows), default=0),
        accounts=[
            StaffAccount(
                username=r.username,
                role=r.role,
                counters=json.loads(r.counters),
                password_hash=r.password_hash,
                active=bool(r.active),
            )
            for r in rows
        ],
    )


async def publish(js: Any, doc: StaffDocument) -> int:
    """Put the document in the `qms_staff` bucket under the branch's key; its KV revision."""
    ack = await js.publish(f"$KV.{STAFF_BUCKET}.{config_key(doc.tenant_id, doc.branch_id)}", msgspec.json.encode(doc))
    return int(ack.seq)
