"""The relay against a real nats-server with JetStream and the real cloud consumer: offline then online, the server
killed mid-batch, a relay crash between publish and cursor save. Every test ends with the cloud holding each event
exactly once, in order, with the hash chain verified."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from edge.engine import commands as c
from edge.replication import ServiceSource, load_cursor
from edge.service import QueueService
from sync.relay import STREAM, LinkSettings, Outgoing, Relay, event_subject
from tests.support.appliance import RunningAppliance, free_port, run_cli, seed_demo
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer
from tests.support.relay_source import ListSource

pytestmark = pytest.mark.slow
BRANCH = "jkt-sudirman"
TENANT = "acme"


def enqueue_many(service: QueueService, n: int) -> None:
    """`n` tickets, alternating the demo's two services (a 3-digit service holds at most 900 waiting tickets)."""
    services = ("teller", "cs")
    futures = [service.submit(c.Enqueue(service_id=services[i % 2])) for i in range(n)]
    for future in futures:
        future.result(timeout=60)


def assert_exactly_once_in_order(hub: CloudHub, last_seq: int) -> None:
    assert hub.seqs(BRANCH) == list(range(1, last_seq + 1))
    row = hub.branch(BRANCH)
    assert (row.status, row.problem, row.next_seq) == ("ok", None, last_seq + 1)


def test_tickets_issued_offline_reach_the_cloud_once_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The appliance runs with its cloud unreachable, keeps serving, and catches up once NATS is there."""
    seed_demo(tmp_path / "edge")
    port = free_port()
    monkeypatch.setenv("QMS_NATS_URL", f"nats://127.0.0.1:{port}")
    monkeypatch.setenv("QMS_TENANT", TENANT)
    server = NatsServer(tmp_path / "nats", port=port)
    with RunningAppliance(tmp_path / "edge") as appliance:
        headers = appliance.headers("agent1")
        supervisor = appliance.headers("admin")  # the replication status is for supervisors and admins

        def replication() -> dict[str, Any]:
            return httpx.get(f"{appliance.api}/replication", headers=supervisor, timeout=5).json()  # type: ignore[no-any-return]

        for _ in range(25):
            r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"}, headers=headers, timeout=10)
            assert r.status_code == 201
        httpx.post(f"{appliance.api}/counters/1/call-next", headers=headers, timeout=10).raise_for_status()
        seq = httpx.get(f"{appliance.api}/health", timeout=5).json()["seq"]
        offline = replication()
        assert offline["state"] == "disconnected"
        assert (offline["acked_seq"], offline["lag_events"]) == (0, seq)
        assert offline["lag_seconds"] > 0
        assert offline["last_error"]

        server.start()
        try:
            with CloudHub(f"sqlite:///{tmp_path / 'cloud.sqlite3'}", server.url) as hub:
                wait_until(lambda: len(hub.seqs(BRANCH)) >= seq, timeout=60, what="the backlog at the cloud")
                # Live traffic after the catch-up follows within moments.
                for _ in range(5):
                    httpx.post(f"{appliance.api}/tickets", json={"service_id": "cs"}, headers=headers, timeout=10)
                wait_until(lambda: len(hub.seqs(BRANCH)) >= seq + 5, timeout=30, what="live events")
                assert_exactly_once_in_order(hub, seq + 5)
                caught_up = wait_until(
                    lambda: (r := replication())["lag_events"] == 0 and r,
                    what="lag 0 in the API",
                )
                assert caught_up["state"] == "connected"
                assert caught_up["acked_seq"] == seq + 5
                assert caught_up["lag_seconds"] == 0
        finally:
            server.stop()
    status = run_cli("status", "--json", "--data-dir", str(tmp_path / "edge"))
    assert status.returncode == 0, status.stderr
    replication = json.loads(status.stdout)["replication"]
    assert (replication["acked_seq"], replication["lag_events"]) == (seq + 5, 0)
    human = run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
    assert f"replication: cursor {seq + 5} of {seq + 5}, lag 0 events" in human


class KillDuring:
    """A source that SIGKILLs the NATS server a few milliseconds into shipping its `nth` batch."""

    def __init__(self, inner: ServiceSource, server: NatsServer, nth: int) -> None:
        self.inner, self.server, self.nth, self.reads = inner, server, nth, 0
        self.killed = threading.Event()

    def read_after(self, seq: int, limit: int) -> Sequence[Outgoing]:
        batch = self.inner.read_after(seq, limit)
        if batch:
            self.reads += 1
        if self.reads == self.nth and not self.killed.is_set():
            self.killed.set()
            threading.Timer(0.003, self.server.kill).start()
        return batch

    async def save_cursor(self, seq: int, epoch: int) -> None:
        await self.inner.save_cursor(seq, epoch)

    def read_cursor(self) -> tuple[int, int]:
        return self.inner.read_cursor()


async def test_nats_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path, nats_server: NatsServer, store_url: str
) -> None:
    seed_demo(tmp_path / "edge")
    service = QueueService(tmp_path / "edge")
    service.start()
    hub = await asyncio.to_thread(lambda: CloudHub(store_url, nats_server.url, workers=2).start())
    try:
        await asyncio.to_thread(enqueue_many, service, 1700)
        last = service.state.seq
        source = KillDuring(ServiceSource(service), nats_server, nth=3)
        link = LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH)
        relay = Relay(link, source, cursor=0, batch_size=500, ack_timeout=2.0, backoff_max=1.0)
        relay.start()
        await asyncio.to_thread(source.killed.wait, 30)
        await wait_for(lambda: relay.status.state == "disconnected", "the relay to notice")
        assert relay.status.acked_seq < last
        await asyncio.to_thread(nats_server.start)
        await wait_for(lambda: relay.status.acked_seq == last, "the relay to finish", seconds=60)
        await wait_for(lambda: len(hub.seqs(BRANCH)) >= last, "the cloud to have everything", seconds=60)
        assert_exactly_once_in_order(hub, last)
        assert service.read(load_cursor) == last
        await relay.stop()
    finally:
        await asyncio.to_thread(hub.stop)
        service.stop()


class CrashBeforeSave:
    """A source whose first cursor save never completes: the process dies after the acks, before the save."""

    def __init__(self, inner: ServiceSource) -> None:
        self.inner = inner
        self.saves = 0

    def read_after(self, seq: int, limit: int) -> Sequence[Outgoing]:
        return self.inner.read_after(seq, limit)

    def read_cursor(self) -> tuple[int, int]:
        return self.inner.read_cursor()

    async def save_cursor(self, seq: int, epoch: int) -> None:
        self.saves += 1
        await asyncio.Event().wait()  # never returns; the relay task is cancelled here


async def test_relay_crash_between_publish_and_cursor_save_is_absorbed(
    tmp_path: Path, nats_server: NatsServer, store_url: str
) -> None:
    seed_demo(tmp_path / "edge")
    service = QueueService(tmp_path / "edge")
    service.start()
    hub = await asyncio.to_thread(lambda: CloudHub(store_url, nats_server.url).start())
    link = LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH)
    try:
        await asyncio.to_thread(enqueue_many, service, 300)
        last = service.state.seq
        crashing = CrashBeforeSave(ServiceSource(service))
        first = Relay(link, crashing, cursor=service.read(load_cursor), batch_size=1000, ack_timeout=0.5)
        first.start()
        await wait_for(lambda: crashing.saves == 1, "the acks of the first batch")
        await first.stop()  # cancelled inside save_cursor: the crash
        assert service.read(load_cursor) == 0
        await wait_for(lambda: len(hub.seqs(BRANCH)) >= last, "the first delivery")

        second = Relay(link, ServiceSource(service), cursor=service.read(load_cursor))
        second.start()
        await wait_for(lambda: second.status.acked_seq == last, "the re-send")
        assert second.status.duplicates == last  # JetStream's de-dup window recognised every re-sent Nats-Msg-Id
        await second.stop()

        # Past the de-dup window (simulated with fresh message ids) the cloud's (branch, seq) tracking absorbs them.
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for item in ServiceSource(service).read_after(0, 10):
            await js.publish(event_subject(TENANT, BRANCH), item.payload, headers={"Nats-Msg-Id": f"late-{item.seq}"})
        await nc.close()
        await wait_for(lambda: hub.branch(BRANCH).duplicates >= 10, "the cloud to see the late duplicates")
        assert_exactly_once_in_order(hub, last)
        assert service.read(load_cursor) == last
    finally:
        await asyncio.to_thread(hub.stop)
        service.stop()


async def test_relay_refuses_a_subject_captured_by_another_stream(tmp_path: Path, nats_server: NatsServer) -> None:
    """Publishing into the wrong stream is not an acknowledgement: the cursor does not move."""
    seed_demo(tmp_path / "edge")
    service = QueueService(tmp_path / "edge")
    service.start()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="OTHER", subjects=["qms.evt.>"])
    relay = Relay(LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH), ServiceSource(service),
                  cursor=0, backoff_max=0.5)  # fmt: skip
    try:
        relay.start()
        await wait_for(lambda: relay.status.last_error and "OTHER" in relay.status.last_error, "the refusal")
        assert service.read(load_cursor) == 0
        assert STREAM not in [s.config.name for s in await js.streams_info()]
    finally:
        await relay.stop()
        await nc.close()
        service.stop()


async def wait_for(condition: object, what: str, seconds: float = 30.0) -> None:
    """Await a condition (a callable polled every 20 ms) or fail."""
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_refused_batch_leaves_no_unretrieved_gather(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A seed of another branch: the server refuses the batch's publishes and the relay stops waiting for their acks.
    The gather of those acks was cancelled and dropped, so asyncio logged "_GatheringFuture exception was never
    retrieved … CancelledError" next to the right "permission denied" (QA, first start with a wrong seed)."""
    from tests.sync.test_link_status import OTHER, authorized_server, create_stream

    caplog.set_level(logging.ERROR, logger="asyncio")
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH, OTHER))
    try:
        await create_stream(server)
        link = LinkSettings(servers=(server.url,), tenant=TENANT, branch_id=BRANCH,
                            nkey_seed_file=str(keys / f"{TENANT}.{OTHER}.nk"))  # fmt: skip
        events = [Outgoing(seq=n, payload=b"{}", occurred_at=0.0) for n in range(1, 4)]
        relay = Relay(link, ListSource(events), cursor=0, backoff_initial=0.05, backoff_max=0.2)
        relay.start()
        try:
            await wait_for(lambda: (relay.status.link_error or "").startswith("permission denied"), "the refusal")
            await wait_for(lambda: relay.status.batches == 0 and relay.status.retry_in is not None, "a retry")
            await asyncio.sleep(0.5)  # a few refused batches more
        finally:
            await relay.stop()
    finally:
        server.stop()
    gc.collect()  # an unretrieved future says so when it is collected
    await asyncio.sleep(0)
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == [], unretrieved
    assert relay.status.acked_seq == 0
