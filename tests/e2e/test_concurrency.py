"""50 counters pressing "call next" at the same moment over real HTTP: every ticket goes to exactly one counter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from msgspec.structs import replace

from edge.demo import demo_config
from sync.contract_config import Counter
from tests.support.appliance import RunningAppliance, seed_demo

COUNTERS = 50
TICKETS = 30


async def test_fifty_simultaneous_call_next_share_thirty_tickets(tmp_path: Path) -> None:
    base = demo_config()
    counters = [Counter(id=str(i), name=f"Loket {i}", area_id="lantai-1", services=["teller"])
                for i in range(1, COUNTERS + 1)]  # fmt: skip
    data_dir = tmp_path / "data"
    seed_demo(data_dir, replace(base, counters=counters),
              users=[("supervisor", "supervisor", []), ("admin", "admin", [])])  # fmt: skip

    with RunningAppliance(data_dir) as appliance:
        headers = appliance.headers("supervisor")
        limits = httpx.Limits(max_connections=COUNTERS + 10, max_keepalive_connections=COUNTERS + 10)
        async with httpx.AsyncClient(base_url=appliance.api, headers=headers, limits=limits,
                                     timeout=httpx.Timeout(30.0)) as client:  # fmt: skip
            created = await asyncio.gather(
                *[client.post("/tickets", json={"service_id": "teller"}) for _ in range(TICKETS)]
            )
            assert [r.status_code for r in created] == [201] * TICKETS
            made = {r.json()["ticket_id"] for r in created}
            assert len(made) == TICKETS

            # open the connections first, so the calls really start together
            await asyncio.gather(*[client.get("/health") for _ in range(COUNTERS)])
            gate = asyncio.Event()

            async def press(counter: int) -> httpx.Response:
                await gate.wait()
                return await client.post(f"/counters/{counter}/call-next")

            tasks = [asyncio.create_task(press(i)) for i in range(1, COUNTERS + 1)]
            await asyncio.sleep(0)
            gate.set()
            responses = await asyncio.gather(*tasks)

            statuses = [r.status_code for r in responses]
            assert all(s < 500 for s in statuses), statuses
            assert statuses == [200] * COUNTERS, [r.text for r in responses if r.status_code != 200]
            bodies = [r.json() for r in responses]
            called = [b["ticket"]["ticket_id"] for b in bodies if b["ticket"] is not None]
            empty = [b for b in bodies if b["ticket"] is None]
            assert len(called) == TICKETS
            assert set(called) == made, "every ticket called exactly once"
            assert empty == [{"ticket": None, "reason": "empty"}] * (COUNTERS - TICKETS)
            # each called ticket sits at the counter that called it
            for counter, body in enumerate(bodies, start=1):
                if body["ticket"] is not None:
                    assert body["ticket"]["counter_id"] == str(counter)
                    assert body["ticket"]["status"] == "called"

            snapshot = (await client.get("/snapshot")).json()
            assert sorted(t["ticket_id"] for t in snapshot["now_calling"]) == sorted(called)
            busy = [c for c in snapshot["counters"] if c["current_ticket"] is not None]
            assert len(busy) == TICKETS
