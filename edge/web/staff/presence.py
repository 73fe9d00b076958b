"""Counter presence follows who is signed in (issue 11): a counter is open only while someone is at it.

- Counters start the day `closed` (the engine creates them so); nobody at a counter means no tickets promised to it.
- An agent opening their desk signs in to that counter: the session is bound to it (`staff_sessions.counter_id`)
  and a `closed` counter becomes `available`. A counter on `break` stays on break (the agent chose that).
  Supervisors and admins bind a desk when they set its presence there (they often just look at a desk).
- Signing out, the session expiring (idle timeout, lifetime) or the appliance restarting with nobody signed in to a
  counter closes it, unless another live session is bound to the same counter.
- API and call-button calls open a closed counter themselves (engine rule), as does a supervisor's "Open" on the
  floor; such a counter has no session to end, so the sweep also closes an `available` counter that no live session
  is bound to once nothing happened there (presence change or ticket event: `CounterState.updated_at`) for the staff
  idle timeout (`QMS_STAFF_IDLE_MINUTES`). A counter holding a called or serving ticket is never closed.
- At start-up the sweep closes every open counter without a live session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.audit import AuditEntry
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.engine.model import State
from edge.service import QueueService
from edge.web.staff.session import LIVE_SESSION, SESSION_IDLE, live_args, session_digest

log = logging.getLogger("qms.staff.presence")
SWEEP_SECONDS = float(os.environ.get("QMS_PRESENCE_SWEEP_SECONDS", "30"))


def bind(conn: sqlite3.Connection, session_id: str, counter_id: str) -> None:
    """The session is at this counter (one counter per session; a desk opened elsewhere moves it)."""
    sql = "UPDATE staff_sessions SET counter_id = ? WHERE session_hash = ?"
    conn.execute(sql, (counter_id, session_digest(session_id)))


def staffed(conn: sqlite3.Connection, now: datetime) -> set[str]:
    """Counters some live session is bound to."""
    sql = f"SELECT DISTINCT counter_id FROM staff_sessions WHERE counter_id IS NOT NULL AND {LIVE_SESSION}"  # noqa: S608
    rows = conn.execute(sql, live_args(now))
    return {r[0] for r in rows}


def unbind(conn: sqlite3.Connection, session_id: str) -> str | None:
    """Forget the session's counter; returns it."""
    digest = session_digest(session_id)
    row = conn.execute("SELECT counter_id FROM staff_sessions WHERE session_hash = ?", (digest,)).fetchone()
    conn.execute("UPDATE staff_sessions SET counter_id = NULL WHERE session_hash = ?", (digest,))
    return row[0] if row else None


def ended(conn: sqlite3.Connection, now: datetime) -> set[str]:
    """Counters of sessions that ended (revoked, expired, idle) while bound; they are unbound here."""
    rows = conn.execute(
        f"SELECT session_hash, counter_id FROM staff_sessions WHERE counter_id IS NOT NULL AND NOT ({LIVE_SESSION})",  # noqa: S608
        live_args(now),
    ).fetchall()
    conn.executemany("UPDATE staff_sessions SET counter_id = NULL WHERE session_hash = ?", [(r[0],) for r in rows])
    return {r[1] for r in rows}


Client = tuple[str | None, str | None]  # address and user agent of the request that caused it (none: the sweep)


def _audit(actor: str, role: str | None, counter_id: str, status: str, reason: str, client: Client) -> AuditEntry:
    detail = {"status": status, "reason": reason}
    ip, agent = client
    return AuditEntry(
        actor=actor,
        role=role,
        action="presence",
        target=f"counter:{counter_id}",
        detail=detail,
        ip=ip,
        user_agent=agent,
    )


async def set_presence(
    service: QueueService,
    counter_id: str,
    status: str,
    actor: str,
    role: str | None,
    reason: str,
    client: Client = (None, None),
) -> bool:
    """Submit a presence change (audited); False when the counter is gone or already so."""
    counter = service.view.state.counters.get(counter_id)
    if counter is None or counter.presence == status:
        return False
    command = c.SetPresence(actor=actor, counter_id=counter_id, status=status)  # type: ignore[arg-type]
    try:
        await asyncio.wrap_future(
            service.submit(command, audit=_audit(actor, role, counter_id, status, reason, client))
        )
    except DomainError as exc:  # the counter was removed from the configuration meanwhile
        log.info("presence of counter %s not changed: %s", counter_id, exc)
        return False
    return True


async def open_desk(
    service: QueueService, session_id: str, username: str, role: str, counter_id: str, client: Client = (None, None)
) -> None:
    """An agent opened their desk: bind the session to the counter and open it if it is closed.

    A supervisor or admin only looking at a desk changes nothing (they bind when they set its presence there).
    """
    if role != "agent":
        return
    await asyncio.wrap_future(service.submit_store(lambda conn: bind(conn, session_id, counter_id)))
    await set_presence(service, counter_id, "available", username, role, "desk_opened", client)


async def close_unstaffed(
    service: QueueService,
    counters: set[str],
    actor: str,
    role: str | None,
    reason: str,
    client: Client = (None, None),
) -> None:
    """Close each of these counters that no live session is bound to any more."""
    now = datetime.now(UTC)
    still: set[str] = service.read(lambda conn: staffed(conn, now))
    for counter_id in sorted(counters - still):
        await set_presence(service, counter_id, "closed", actor, role, reason, client)


async def signed_out(
    service: QueueService, session_id: str, username: str, role: str, client: Client = (None, None)
) -> None:
    """After a sign-out: the session's counter closes unless someone else is signed in to it."""
    counter_id: str | None = await asyncio.wrap_future(service.submit_store(lambda conn: unbind(conn, session_id)))
    if counter_id:
        await close_unstaffed(service, {counter_id}, username, role, "signed_out", client)


def idle_counters(state: State, now: datetime, idle: timedelta) -> set[str]:
    """Available counters holding no ticket where nothing happened for `idle` (staffed or not: the caller checks)."""
    return {
        cid
        for cid, k in state.counters.items()
        if k.presence == "available"
        and k.current_ticket is None
        and (k.updated_at is None or k.updated_at <= now - idle)
    }


async def _close_idle(service: QueueService, now: datetime, idle: timedelta) -> None:
    """Close the idle counters nobody is signed in to, each re-checked just before (a call may have come meanwhile)."""
    candidates = idle_counters(service.view.state, now, idle)
    if not candidates:
        return
    staffed_now: set[str] = service.read(lambda conn: staffed(conn, now))
    for counter_id in sorted(candidates - staffed_now):
        if counter_id in idle_counters(service.view.state, now, idle):
            await set_presence(service, counter_id, "closed", "system", None, "idle")


async def sweep(service: QueueService, *, restart: bool = False, idle: timedelta = SESSION_IDLE) -> None:
    """Close counters whose session ended, and unstaffed counters idle for `idle`; at start-up also every open
    counter nobody is signed in to."""
    now = datetime.now(UTC)
    gone: set[str] = await asyncio.wrap_future(service.submit_store(lambda conn: ended(conn, now)))
    if gone:
        await close_unstaffed(service, gone, "system", None, "session_ended")
    if not restart:
        await _close_idle(service, service.clock(), idle)  # the clock the events' times come from
    else:
        counters = {cid for cid, k in service.view.state.counters.items() if k.presence != "closed"}
        await close_unstaffed(service, counters, "system", None, "restart")


async def run_sweeper(service: QueueService, interval: float = SWEEP_SECONDS) -> None:
    """The appliance's background task: a sweep every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep(service)
        except Exception:
            log.exception("presence sweep failed")


async def start_sweeper(service: QueueService) -> asyncio.Task[Any]:
    """The start-up sweep (before the app serves anyone), then the periodic one; the lifespan cancels the task."""
    await sweep(service, restart=True)
    return asyncio.get_running_loop().create_task(run_sweeper(service), name="presence-sweeper")
