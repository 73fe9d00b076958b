"""The audit trail: who did what, when and from where, for sign-ins, config changes and privileged actions.

The rule (docs/branch-admin-guide.md): every sign-in and failed sign-in; everything a supervisor or admin does to
tickets and counters; transfers, cancels, no-shows and presence changes by anyone; configuration, user and device
changes; whichever door (staff web, API, `qms-edge`). An agent's routine call/recall/start/complete/hold is in the
event log with its actor and is not repeated here. Rows are only ever added; new fields go into `detail`.
"""

from __future__ import annotations

import getpass
import sqlite3
from datetime import UTC, datetime
from typing import Any

import msgspec

DEFAULT_LIMIT = 200


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One action to record; `at` and `seq` are filled in when it is written."""

    actor: str
    action: str
    role: str | None = None
    target: str | None = None
    detail: dict[str, Any] = {}
    ip: str | None = None
    user_agent: str | None = None
    new_ticket: bool = False  # the command makes a ticket: its id and number join `detail` when it is written


def with_ticket(entry: AuditEntry, response: Any) -> AuditEntry:
    """`entry` as written for a command that answered `response`: with the ticket it made (`ticket_id`, `new_number`)
    when it asked for it (`new_ticket`), else as it is."""
    if not entry.new_ticket or not isinstance(response, dict) or not response.get("ticket_id"):
        return entry
    made = {"ticket_id": response["ticket_id"], "new_number": response.get("ticket_number")}
    return msgspec.structs.replace(entry, detail={**entry.detail, **made})


def making_ticket(entry: AuditEntry) -> AuditEntry:
    """`entry` for a command that makes a ticket: written with the ticket's id and number (`with_ticket`)."""
    return msgspec.structs.replace(entry, new_ticket=True)


def technician_entry(action: str, target: str | None, detail: dict[str, Any]) -> AuditEntry:
    """An entry for a command typed at the appliance's console (`qms-edge …`): the OS user is who."""
    return AuditEntry(
        actor="cli",
        role="technician",
        action=action,
        target=target,
        detail={k: v for k, v in detail.items() if v not in (None, "")},
        user_agent=f"qms-edge ({getpass.getuser()})",
    )


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored audit row."""

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    user_agent: str | None
    seq: int | None


def insert(conn: sqlite3.Connection, entry: AuditEntry, at: datetime, seq: int | None = None) -> int:
    """Append an entry (inside the caller's transaction); returns its id."""
    cur = conn.execute(
        "INSERT INTO audit (at, actor, role, action, target, detail, ip, user_agent, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at.astimezone(UTC).isoformat(),
            entry.actor,
            entry.role,
            entry.action,
            entry.target,
            msgspec.json.encode(entry.detail).decode(),
            entry.ip,
            (entry.user_agent or "")[:300] or None,
            seq,
        ),
    )
    return int(cur.lastrowid or 0)


def search(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before_id: int | None = None,
) -> list[AuditRecord]:
    """Entries newest first, filtered by time range [since, until), actor and action; `before_id` pages back."""
    clauses: list[str] = []
    params: list[object] = []
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    if since is not None:
        clauses.append("at >= ?")
        params.append(since.astimezone(UTC).isoformat())
    if until is not None:
        clauses.append("at < ?")
        params.append(until.astimezone(UTC).isoformat())
    if actor:
        clauses.append("actor = ?")
        params.append(actor)
    if action:
        clauses.append("action = ?")
        params.append(action)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        "SELECT id, at, actor, role, action, target, detail, ip, user_agent, seq FROM audit "  # noqa: S608 - fixed clauses
        f"{where} ORDER BY id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        AuditRecord(
            id=r[0],
            at=datetime.fromisoformat(r[1]),
            actor=r[2],
            role=r[3],
            action=r[4],
            target=r[5],
            detail=msgspec.json.decode(r[6]),
            ip=r[7],
            user_agent=r[8],
            seq=r[9],
        )
        for r in rows
    ]


def known_values(conn: sqlite3.Connection) -> tuple[list[str], list[str]]:
    """The distinct actors and actions recorded so far (for the viewer's filters)."""
    actors = [r[0] for r in conn.execute("SELECT DISTINCT actor FROM audit ORDER BY actor")]
    actions = [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit ORDER BY action")]
    return actors, actions
