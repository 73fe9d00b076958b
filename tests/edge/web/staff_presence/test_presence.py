"""Counter presence follows the staff sessions (issue 11): a counter is open only while someone is signed in to it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from edge.engine import commands as c
from edge.web.staff import presence
from edge.web.staff.session import COOKIE
from tests.edge.web.test_staff import Staff


def _presence(client: TestClient[Any], counter_id: str) -> str:
    return str(client.app.state["appliance"].service.view.state.counters[counter_id].presence)


def _sweep(client: TestClient[Any], *, restart: bool = False) -> None:
    service = client.app.state["appliance"].service
    asyncio.run(presence.sweep(service, restart=restart))


def test_counters_start_closed_and_open_when_their_agent_opens_the_desk(client: TestClient[Any]) -> None:
    assert {_presence(client, cid) for cid in ("1", "2", "3")} == {"closed"}
    staff = Staff(client)
    staff.login("agent1")  # lands on the desk of counter 1
    assert _presence(client, "1") == "available"
    assert _presence(client, "2") == "closed"


def test_signing_out_closes_the_counter_unless_someone_else_is_signed_in_to_it(client: TestClient[Any]) -> None:
    staff = Staff(client)
    sessions = []
    for _ in range(2):  # the same agent on two PCs at the same counter: two sessions
        client.cookies.clear()
        staff.login("agent1")
        sessions.append((client.cookies.get(COOKIE), staff.csrf))
    client.cookies.clear()

    def sign_out(cookie: str | None, csrf: str) -> None:
        r = client.post("/staff/logout", data={"csrf_token": csrf}, headers={"Cookie": f"{COOKIE}={cookie}"})
        assert r.status_code in (200, 303), r.text

    assert _presence(client, "1") == "available"
    sign_out(*sessions[0])
    assert _presence(client, "1") == "available"  # the other PC is still signed in
    sign_out(*sessions[1])
    assert _presence(client, "1") == "closed"


def test_a_session_that_expires_closes_its_counter_at_the_next_sweep(client: TestClient[Any], data_dir: Path) -> None:
    staff = Staff(client)
    staff.login("agent1")
    assert _presence(client, "1") == "available"
    _sweep(client)
    assert _presence(client, "1") == "available"  # still signed in
    long_ago = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    with sqlite3.connect(data_dir / "qms.sqlite3") as conn:  # the desk was left at lunch: idle past the timeout
        conn.execute("UPDATE staff_sessions SET last_seen = ?, created_at = ?", (long_ago, long_ago))
    _sweep(client)
    assert _presence(client, "1") == "closed"
    rows = client.app.state["appliance"].service.read(
        lambda conn: conn.execute("SELECT actor, detail FROM audit WHERE action = 'presence' ORDER BY id").fetchall()
    )
    assert rows[-1] == ("system", '{"status":"closed","reason":"session_ended"}')


def test_a_restart_closes_counters_nobody_is_signed_in_to(client: TestClient[Any]) -> None:
    staff = Staff(client)
    staff.login("agent1")
    service = client.app.state["appliance"].service
    service.execute(c.SetPresence(actor="agent4", counter_id="4", status="available"))  # opened through the API
    _sweep(client, restart=True)
    assert _presence(client, "1") == "available"  # agent1's session lives on
    assert _presence(client, "4") == "closed"


def test_a_supervisor_looking_at_a_desk_neither_opens_nor_later_closes_it(client: TestClient[Any]) -> None:
    service = client.app.state["appliance"].service
    service.execute(c.SetPresence(actor="btn-4", counter_id="4", status="available"))  # a call button's counter
    sup = Staff(client)
    sup.login("supervisor")
    assert client.get("/staff/counter/3").status_code == 200
    assert _presence(client, "3") == "closed"
    client.get("/staff/counter/4")
    client.post("/staff/logout", data={"csrf_token": sup.csrf})
    assert _presence(client, "4") == "available"


def _sweep_until_closed(client: TestClient[Any], counter_id: str, idle: timedelta) -> None:
    """Sweep (as the periodic task does) until the counter is closed; fails after 10 s."""
    service = client.app.state["appliance"].service

    async def wait() -> None:
        async with asyncio.timeout(10):
            while _presence(client, counter_id) != "closed":
                await presence.sweep(service, idle=idle)
                await asyncio.sleep(0.01)

    asyncio.run(wait())


def test_a_counter_opened_without_a_session_closes_after_the_idle_time(client: TestClient[Any]) -> None:
    """An API token's or call button's call opens a counter with no session to end: idle, the sweep closes it."""
    service = client.app.state["appliance"].service
    service.execute(c.Enqueue(service_id="cs"))
    service.execute(c.CallNext(actor="agent4", counter_id="4"))  # a call at a closed counter opens it
    ticket_id = service.view.state.counters["4"].current_ticket
    assert ticket_id is not None
    service.execute(c.Start(actor="agent4", ticket_id=ticket_id, counter_id="4"))
    service.execute(c.Complete(actor="agent4", ticket_id=ticket_id, counter_id="4"))
    assert _presence(client, "4") == "available"
    _sweep(client)
    assert _presence(client, "4") == "available"  # not idle for the staff idle timeout (30 min) yet
    _sweep_until_closed(client, "4", timedelta(milliseconds=200))
    rows = service.read(
        lambda conn: conn.execute("SELECT actor, detail FROM audit WHERE action = 'presence' ORDER BY id").fetchall()
    )
    assert rows[-1] == ("system", '{"status":"closed","reason":"idle"}')


def test_the_idle_sweep_spares_a_counter_with_a_session_or_a_ticket_at_it(client: TestClient[Any]) -> None:
    Staff(client).login("agent1")  # counter 1: a live session
    service = client.app.state["appliance"].service
    service.execute(c.Enqueue(service_id="cs"))
    service.execute(c.CallNext(actor="agent4", counter_id="4"))  # counter 4: a ticket being served
    ticket_id = service.view.state.counters["4"].current_ticket
    assert ticket_id is not None
    service.execute(c.Start(actor="agent4", ticket_id=ticket_id, counter_id="4"))
    service.execute(c.SetPresence(actor="btn-5", counter_id="5", status="available"))  # counter 5: neither
    _sweep_until_closed(client, "5", timedelta(0))
    assert _presence(client, "1") == "available"
    assert _presence(client, "4") != "closed"
    assert service.view.state.counters["4"].current_ticket == ticket_id
