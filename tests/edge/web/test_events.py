"""`GET /api/v1/events` (Server-Sent Events) against the real server: ids are seqs, resume without gap/duplicate.

Each test runs `qms-edge serve` (uvicorn) on a seeded copy of the demo branch and reads the stream with httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from tests.support.appliance import RunningAppliance, SseEvent, SseParser, mint_token

TIMEOUT = 15.0


class Stream:
    """Reads an SSE stream in a background task and collects its events."""

    def __init__(self, client: httpx.AsyncClient, appliance: RunningAppliance, *,
                 last_event_id: str | None = None, params: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.client = client
        self.url = f"{appliance.api}/events"
        self.headers = {"Authorization": f"Bearer {mint_token(appliance.data_dir, 'admin')}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.params = params or {}
        self.events: list[SseEvent] = []
        self.status: int | None = None
        self.retry: int | None = None
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ids(self) -> list[int]:
        return [int(e.id) for e in self.events if e.id is not None]

    def decoded(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events]

    async def _pump(self) -> None:
        try:
            async with self.client.stream("GET", self.url, headers=self.headers, params=self.params) as r:
                self.status = r.status_code
                self.ready.set()
                if r.status_code != 200:
                    return
                parser = SseParser()
                async for line in r.aiter_lines():
                    if line.startswith("retry:"):
                        self.retry = int(line.partition(":")[2])
                    event = parser.feed(line)
                    if event is not None:
                        self.events.append(event)
                        self._changed.set()
        finally:
            self.ready.set()
            self._changed.set()

    async def __aenter__(self) -> Stream:
        self._task = asyncio.create_task(self._pump())
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        assert self.status == 200, self.status
        # the first message (": connected") is sent once the client is subscribed; wait for it via a read
        return self

    async def until(self, predicate: Any, within: float = TIMEOUT) -> None:
        """Wait until predicate(self) holds (bounded)."""
        deadline = time.monotonic() + within
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream condition not met; got ids {self.ids[-20:]}")
            if self._task is not None and self._task.done():
                self._task.result()
                raise AssertionError(f"stream ended; got ids {self.ids[-20:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0),
                             limits=httpx.Limits(max_connections=50))  # fmt: skip


async def _seq(client: httpx.AsyncClient, appliance: RunningAppliance) -> int:
    r = await client.get(f"{appliance.api}/health")
    return int(r.json()["seq"])


async def _post(client: httpx.AsyncClient, appliance: RunningAppliance, path: str, body: Any = None,
                user: str = "admin") -> httpx.Response:  # fmt: skip
    headers = {"Authorization": f"Bearer {mint_token(appliance.data_dir, user)}"}
    r = await client.post(f"{appliance.api}{path}", json=body, headers=headers)
    assert r.status_code < 300, r.text
    return r


async def test_events_arrive_after_commit_with_seq_as_id(appliance: RunningAppliance) -> None:
    async with _client() as client:
        admin = {"Authorization": f"Bearer {mint_token(appliance.data_dir, 'admin')}"}
        await client.put(f"{appliance.api}/counters/1/presence", json={"status": "available"}, headers=admin)  # open
        start = await _seq(client, appliance)
        async with Stream(client, appliance) as stream:  # no Last-Event-ID: live from now
            await asyncio.sleep(0)  # let the stream task read its first line
            created = (await _post(client, appliance, "/tickets", {"service_id": "teller"})).json()
            await stream.until(lambda s: len(s.events) >= 1)
            [event] = stream.decoded()
            assert stream.ids == [start + 1]
            assert event["seq"] == start + 1
            assert event["type"] == "ticket.created"
            assert event["ticket_id"] == created["ticket_id"]
            assert stream.retry == 2000
            # committed: readable from the API at the moment it was streamed
            headers = {"Authorization": f"Bearer {mint_token(appliance.data_dir, 'admin')}"}
            r = await client.get(f"{appliance.api}/tickets/{created['ticket_id']}", headers=headers)
            assert r.status_code == 200
            called = await _post(client, appliance, "/counters/1/call-next")
            await stream.until(lambda s: len(s.events) >= 2)
            assert stream.ids == [start + 1, start + 2]
            assert stream.decoded()[1]["type"] == "ticket.called"
            assert stream.decoded()[1]["ticket_id"] == called.json()["ticket"]["ticket_id"]


async def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(appliance: RunningAppliance) -> None:
    total = 50
    acked: list[str] = []
    progressed = asyncio.Event()  # 30 commands acknowledged (or the producer finished)

    async with _client() as client:

        async def produce() -> None:
            try:
                for i in range(total):
                    body = {"service_id": ("teller", "cs", "loan")[i % 3], "request_id": f"load-{i}"}
                    r = await _post(client, appliance, "/tickets", body)
                    acked.append(r.json()["ticket_id"])
                    if len(acked) >= 30:
                        progressed.set()
            finally:
                progressed.set()

        first = Stream(client, appliance, last_event_id="0")
        async with first:
            producer = asyncio.create_task(produce())
            await first.until(lambda s: len(s.ids) >= 10)
        disconnected_at = first.ids[-1]
        # commands keep coming while nobody listens
        await asyncio.wait_for(progressed.wait(), TIMEOUT)
        committed_while_away = 1 + len(acked) - disconnected_at
        assert committed_while_away > 0, "no command was committed during the disconnect"
        async with Stream(client, appliance, last_event_id=str(disconnected_at)) as second:
            await asyncio.wait_for(producer, TIMEOUT)
            final = await _seq(client, appliance)
            await second.until(lambda s: bool(s.ids) and s.ids[-1] >= final)
        assert len(acked) == total
        assert second.ids[0] == disconnected_at + 1
        union = first.ids + second.ids
        assert len(union) == len(set(union)), "duplicate ids across the reconnect"
        assert sorted(union) == list(range(1, final + 1)), "gap across the reconnect"
        assert union == sorted(union)
        assert final == 1 + total  # config.applied + 50 tickets


async def test_after_query_parameter(appliance: RunningAppliance) -> None:
    async with _client() as client:
        for _ in range(5):
            await _post(client, appliance, "/tickets", {"service_id": "teller"})
        final = await _seq(client, appliance)
        async with Stream(client, appliance, params={"after": 3}) as stream:
            await stream.until(lambda s: bool(s.ids) and s.ids[-1] >= final)
            assert stream.ids == list(range(4, final + 1))
            await _post(client, appliance, "/tickets", {"service_id": "cs"})
            await stream.until(lambda s: s.ids[-1] >= final + 1)
            assert stream.ids == list(range(4, final + 2))
        headers = {"Authorization": f"Bearer {mint_token(appliance.data_dir, 'admin')}"}
        r = await client.get(f"{appliance.api}/events", headers={**headers, "Last-Event-ID": "abc"})
        assert r.status_code == 400
        assert r.json()["code"] == "bad_last_event_id"
        r = await client.get(f"{appliance.api}/events")
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"


async def test_area_filter_drops_other_areas(appliance: RunningAppliance) -> None:
    async with _client() as client:
        await _post(client, appliance, "/tickets", {"service_id": "teller"})
        await _post(client, appliance, "/tickets", {"service_id": "cs"})
        await _post(client, appliance, "/tickets", {"service_id": "loan"})
        await _post(client, appliance, "/counters/1/call-next")
        await _post(client, appliance, "/counters/4/call-next")
        marker = (await _post(client, appliance, "/tickets", {"service_id": "cs"})).json()["ticket_id"]
        async with Stream(client, appliance, params={"after": 0, "area": "lantai-2"}) as stream:
            await stream.until(lambda s: any(e.get("ticket_id") == marker for e in s.decoded()))
            events = stream.decoded()
        types = [e["type"] for e in events]
        assert types[0] == "config.applied"
        assert {e.get("service_id") for e in events if e.get("ticket_id")} == {"cs", "loan"}
        assert types.count("ticket.created") == 3
        assert types.count("ticket.called") == 1  # counter 4 (lantai-2); the teller call at counter 1 is dropped
        assert stream.ids == sorted(stream.ids)


async def test_area_stream_sees_a_ticket_transferred_out_of_the_area(appliance: RunningAppliance) -> None:
    """A board of lantai-1 must learn that a teller ticket left for cs, or it keeps showing it as waiting."""
    async with _client() as client:
        teller = (await _post(client, appliance, "/tickets", {"service_id": "teller"})).json()["ticket_id"]
        await _post(client, appliance, f"/tickets/{teller}/transfer", {"to_service_id": "cs", "reason": "cs"})
        marker = (await _post(client, appliance, "/tickets", {"service_id": "teller"})).json()["ticket_id"]
        async with Stream(client, appliance, params={"after": 0, "area": "lantai-1"}) as stream:
            await stream.until(lambda s: any(e.get("ticket_id") == marker for e in s.decoded()))
            events = stream.decoded()
        mine = [e["type"] for e in events if e.get("ticket_id") == teller]
        assert mine == ["ticket.created", "ticket.transferred"]


async def test_snapshot_seq_matches_last_event_at_rest(appliance: RunningAppliance) -> None:
    async with _client() as client:
        ids = [(await _post(client, appliance, "/tickets", {"service_id": "cs"})).json()["ticket_id"]
               for _ in range(3)]  # fmt: skip
        await _post(client, appliance, "/counters/5/call-next")
        await _post(client, appliance, f"/tickets/{ids[0]}/start", {"counter_id": "5"})
        headers = {"Authorization": f"Bearer {mint_token(appliance.data_dir, 'admin')}"}
        snapshot = (await client.get(f"{appliance.api}/snapshot", headers=headers)).json()
        async with Stream(client, appliance, last_event_id="0") as stream:
            await stream.until(lambda s: bool(s.ids) and s.ids[-1] >= snapshot["seq"])
            await asyncio.sleep(0.2)  # nothing more may arrive at rest (bounded observation window)
            assert stream.ids[-1] == snapshot["seq"]
        serving = [t for t in snapshot["tickets"] if t["status"] == "serving"]
        assert [t["ticket_id"] for t in serving] == [ids[0]]
        assert snapshot["seq"] == (await _seq(client, appliance))


async def test_the_stream_masks_phone_and_email_whether_live_or_replayed(appliance: RunningAppliance) -> None:
    async with _client() as client:
        start = await _seq(client, appliance)
        body = {"service_id": "teller", "phone": "081234567890", "email": "budi.santoso@mail.id"}
        async with Stream(client, appliance, params={"after": start}) as live:
            await _post(client, appliance, "/tickets", body)
            await live.until(lambda s: len(s.events) >= 1)
        async with Stream(client, appliance, params={"after": start}) as replayed:  # from the log
            await replayed.until(lambda s: len(s.events) >= 1)
        for stream in (live, replayed):
            [event] = stream.decoded()
            assert (event["phone"], event["email"]) == ("0812*****890", "b***@mail.id")
