"""Power cut during load: SIGKILL the appliance mid-way; everything it acknowledged must survive the restart.

Several concurrent clients run enqueue -> call-next -> start -> complete cycles with request_ids against the real
server. Every 2xx answer is recorded; after ~300 acknowledgements the server gets SIGKILL and is restarted on the
same data dir. Then: every acknowledged command is in the event log, every ticket is at least as far along as
acknowledged, the log verifies, the projections rebuild identically, and re-sending an acknowledged request_id
replays its response without a new event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.appliance import RunningAppliance, event_rows, mint_token, run_cli, seed_demo

KILL_AFTER = 300
MAX_CYCLES = 500  # per client: the loop bound; the kill comes long before
LOAD_SECONDS = 45.0
RANK = {"waiting": 0, "called": 1, "serving": 2, "done": 3}
# (counter, service it enqueues for): counters 1-3 teller, 4-5 cs (4 also loans), 6 loans
CLIENTS = [("1", "teller"), ("2", "teller"), ("3", "teller"), ("4", "cs"), ("5", "cs"), ("6", "loan")]


@dataclass
class Ack:
    """One acknowledged (2xx) command."""

    path: str
    body: dict[str, Any]
    status: int
    response: dict[str, Any]
    ticket_id: str | None
    reached: str | None  # the status the ticket was acknowledged to have reached (None: no event)


async def _cycle_client(client: httpx.AsyncClient, index: int, counter: str, service: str, acks: list[Ack],
                        failures: list[str], enough: asyncio.Event) -> str:  # fmt: skip
    """Run cycles until the server disappears; returns why it stopped (and sets `enough` if it stops early)."""
    try:
        return await _cycles(client, index, counter, service, acks, failures, enough)
    finally:
        enough.set()  # no-op when the kill already came; otherwise the test must not wait for more load


async def _cycles(client: httpx.AsyncClient, index: int, counter: str, service: str, acks: list[Ack],
                  failures: list[str], enough: asyncio.Event) -> str:  # fmt: skip
    deadline = time.monotonic() + LOAD_SECONDS

    async def send(path: str, body: dict[str, Any], reached: str | None) -> dict[str, Any] | None:
        r = await client.post(path, json=body)
        if r.status_code >= 300:
            failures.append(f"{path} {body}: {r.status_code} {r.text}")
            return None
        data = r.json()
        ticket = data.get("ticket", data)
        ticket_id = ticket["ticket_id"] if ticket else None
        acks.append(Ack(path, body, r.status_code, data, ticket_id, reached if ticket else None))
        if len(acks) >= KILL_AFTER:
            enough.set()
        return data

    try:
        for cycle in range(MAX_CYCLES):
            if time.monotonic() > deadline:
                return "time"
            rid = f"c{index}-{cycle}"
            if await send("/tickets", {"service_id": service, "request_id": f"{rid}-enq"}, "waiting") is None:
                return "refused"
            called = await send(f"/counters/{counter}/call-next", {"request_id": f"{rid}-call"}, "called")
            if called is None:
                return "refused"
            if called["ticket"] is None:
                continue
            tid = called["ticket"]["ticket_id"]
            body = {"counter_id": counter}
            if await send(f"/tickets/{tid}/start", {**body, "request_id": f"{rid}-start"}, "serving") is None:
                return "refused"
            if await send(f"/tickets/{tid}/complete", {**body, "request_id": f"{rid}-done"}, "done") is None:
                return "refused"
    except httpx.TransportError:
        return "killed"
    return "cycles"


async def test_acknowledged_commands_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_demo(data_dir, users=[("admin", "admin", [])])
    headers = {"Authorization": f"Bearer {mint_token(data_dir, 'admin', users=[('admin', 'admin', [])])}"}
    acks: list[Ack] = []
    failures: list[str] = []

    appliance = RunningAppliance(data_dir)
    try:
        appliance.start()
        async with httpx.AsyncClient(base_url=appliance.api, headers=headers,
                                     timeout=httpx.Timeout(10.0)) as client:  # fmt: skip
            enough = asyncio.Event()
            workers = [asyncio.create_task(_cycle_client(client, i, counter, service, acks, failures, enough))
                       for i, (counter, service) in enumerate(CLIENTS)]  # fmt: skip
            await asyncio.wait_for(enough.wait(), LOAD_SECONDS + 5)
            acked_at_kill = len(acks)
            appliance.kill()
            reasons = await asyncio.wait_for(asyncio.gather(*workers), 30)
    finally:
        appliance.kill()
    assert failures == []
    assert acked_at_kill >= KILL_AFTER, f"only {acked_at_kill} acknowledged before the deadline"
    assert "killed" in reasons, reasons  # the kill interrupted the load

    with RunningAppliance(data_dir) as restarted:
        logged = {row[0] for row in event_rows(data_dir, "SELECT request_id FROM events WHERE request_id IS NOT NULL")}
        with_events = [a for a in acks if a.reached is not None]
        missing = [a.body["request_id"] for a in with_events if a.body["request_id"] not in logged]
        assert missing == [], f"acknowledged but lost: {missing[:10]}"

        async with httpx.AsyncClient(base_url=restarted.api, headers=headers, timeout=10.0) as client:
            tickets = {t["ticket_id"]: t for t in (await client.get("/tickets")).json()["tickets"]}
            behind = [
                (a.ticket_id, a.reached, tickets.get(a.ticket_id or "", {}).get("status"))
                for a in with_events
                if RANK.get(tickets.get(a.ticket_id or "", {}).get("status", ""), -1) < RANK[a.reached or "waiting"]
            ]
            assert behind == [], behind[:10]

            before = int(event_rows(data_dir, "SELECT count(*) FROM events")[0][0])
            for ack in with_events:
                r = await client.post(ack.path, json=ack.body)
                assert r.status_code == ack.status, (ack.path, ack.body, r.status_code, r.text)
                assert r.json() == ack.response, (ack.path, ack.body)
            assert int(event_rows(data_dir, "SELECT count(*) FROM events")[0][0]) == before
        assert restarted.stop() is not None

    verify = run_cli("verify", "--data-dir", str(data_dir))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout
    check = run_cli("rebuild", "--check", "--data-dir", str(data_dir))
    assert check.returncode == 0, check.stdout + check.stderr
