"""Replication benchmarks: relay backlog drain of 100,000 events to JetStream, the cloud's apply rate (SQLite and
PostgreSQL), and the live lag (commit -> stored in the stream) while the appliance runs an engine load.

Budget (ARCHITECTURE.md): relay backlog drain >= 5,000 events/s with zero loss and zero duplicates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from cloud.consumer import ensure_stream
from edge.engine import commands as c
from edge.replication import ServiceSource
from edge.service import QueueService
from sync.relay import STREAM, LinkSettings, Relay
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresCluster, postgres_bin

from ._support import SERVICE_ID, bench_line, many_counters_config, percentile

TICKETS = 25_000  # x4 events (created, called, serving, done) = 100,000 events
TICKETS_PER_DAY = 2_500
CHUNK = 500
N_COUNTERS = 20
TENANT, BRANCH = "acme", "jkt-sudirman"


class _DayClock:
    """Wall-clock time shifted by whole days on demand (the backlog spans several business days)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def build_backlog(data: Path) -> int:
    """A log of ~100,000 events (the appliance was offline for a long time); returns its last seq."""
    clock = _DayClock()
    service = QueueService(data, clock=clock)
    service.start()
    service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(N_COUNTERS), base_version=0))
    for start in range(0, TICKETS, CHUNK):
        if start and start % TICKETS_PER_DAY == 0:
            service.submit_store(lambda _conn: None).result(60)
            clock.offset += timedelta(days=1)
        created = [service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID)) for _ in range(CHUNK)]
        ids = [f.result(60).response["ticket_id"] for f in created]
        pending = []
        for i, tid in enumerate(ids):
            counter_id = str(i % N_COUNTERS + 1)
            pending.append(service.submit(c.CallTicket(actor="bench", ticket_id=tid, counter_id=counter_id)))
            pending.append(service.submit(c.Start(actor="bench", ticket_id=tid, counter_id=counter_id)))
            pending.append(service.submit(c.Complete(actor="bench", ticket_id=tid, counter_id=counter_id)))
        for f in pending:
            f.result(60)
    last = service.state.seq
    service.stop()
    return last


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


async def _stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await nc.close()


async def _make_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream())
    finally:
        await nc.close()


def test_relay_backlog_drain_and_cloud_apply_rate(tmp_path: Path, nats_server: NatsServer) -> None:
    last = build_backlog(tmp_path / "edge")
    asyncio.run(_make_stream(nats_server.url))

    service = QueueService(tmp_path / "edge")
    service.start()

    async def drain() -> tuple[float, int]:
        relay = Relay(LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH),
                      ServiceSource(service), cursor=0, batch_size=1000)  # fmt: skip
        started = time.perf_counter()
        relay.start()
        await until_acked(relay, last)
        seconds = time.perf_counter() - started
        await relay.stop()
        return seconds, relay.status.batches

    seconds, batches = asyncio.run(drain())
    service.stop()
    stored = asyncio.run(_stream_messages(nats_server.url))
    bench_line(
        relay_drain_events_per_s=last / seconds,
        budget=">= 5000",
        events=last,
        seconds=seconds,
        batches=batches,
        in_stream=stored,
        lost_or_duplicated=stored - last,
    )
    assert stored == last

    stores = {"sqlite": f"sqlite:///{tmp_path / 'cloud.sqlite3'}"}
    cluster = PostgresCluster().start() if postgres_bin() else None
    try:
        if cluster is not None:
            stores["postgresql"] = cluster.url
        for name, url in stores.items():
            for workers in (1, 2):
                durable = f"bench-{name}-{workers}"
                target = url
                if workers == 2 and name == "sqlite":
                    target = f"sqlite:///{tmp_path / 'cloud-2.sqlite3'}"
                elif workers == 2 and cluster is not None:
                    target = _new_pg_database(cluster, "bench2")
                started = time.perf_counter()
                with CloudHub(target, nats_server.url, workers=workers, durable=durable) as hub:
                    wait_until(lambda h=hub: (r := h.branch(BRANCH)) and r.next_seq > last, timeout=600,
                               interval=0.05, what="the cloud to apply the backlog")  # fmt: skip
                    seconds = time.perf_counter() - started
                    assert hub.branch(BRANCH).status == "ok"
                    assert len(hub.seqs(BRANCH)) == last
                bench_line(cloud_apply_events_per_s=last / seconds, store=name, workers=workers, events=last,
                           seconds=seconds)  # fmt: skip
    finally:
        if cluster is not None:
            cluster.stop()


def _new_pg_database(cluster: PostgresCluster, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


async def until_acked(relay: Relay, seq: int) -> None:
    """Wait until the relay's cursor reached `seq` (polled: the cursor is a plain counter)."""
    while relay.status.acked_seq < seq:  # noqa: ASYNC110 - the relay exposes no event to await
        await asyncio.sleep(0.005)


def run_load(service: QueueService, stop: threading.Event) -> None:
    """Enqueue, call, start and complete at LIVE_RATE commands/s across the counters until `stop`."""
    interval, tick = 4 / LIVE_RATE, time.perf_counter()
    i = 0
    while not stop.is_set():
        counter_id = str(i % N_COUNTERS + 1)
        tid = service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID)).result(30).response["ticket_id"]
        service.submit(c.CallTicket(actor="bench", ticket_id=tid, counter_id=counter_id)).result(30)
        service.submit(c.Start(actor="bench", ticket_id=tid, counter_id=counter_id)).result(30)
        service.submit(c.Complete(actor="bench", ticket_id=tid, counter_id=counter_id)).result(30)
        i += 1
        tick += interval
        time.sleep(max(0.0, tick - time.perf_counter()))


LIVE_SECONDS = 10.0
LIVE_RATE = 400  # engine commands per second (mixed enqueue/call/start/complete from 20 counters)


def test_live_replication_lag_under_engine_load(tmp_path: Path, nats_server: NatsServer) -> None:
    """Commit -> stored in JetStream (seen by a subscriber of the stream's subject), while commands flow."""
    asyncio.run(_make_stream(nats_server.url))
    service = QueueService(tmp_path / "edge")
    service.start()
    service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(N_COUNTERS), base_version=0))
    committed: dict[int, float] = {}
    service.subscribe_commits(lambda events: committed.update((e.seq, time.perf_counter()) for e in events))
    lags: list[float] = []
    stop = threading.Event()

    async def run() -> int:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        seen = 0

        async def on_msg(msg: object) -> None:
            nonlocal seen
            seq = int(msg.headers["Nats-Msg-Id"].split(":")[1])  # type: ignore[attr-defined]
            at = committed.get(seq)
            if at is not None:
                lags.append(time.perf_counter() - at)
            seen += 1
            await msg.ack()  # type: ignore[attr-defined]

        await js.subscribe(f"qms.evt.{TENANT}.{BRANCH}", cb=on_msg, ordered_consumer=False, manual_ack=True)
        relay = Relay(LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH),
                      ServiceSource(service), cursor=service.state.seq, batch_size=1000)  # fmt: skip
        service.subscribe_commits(lambda _events: relay.notify())  # as the appliance wires it
        relay.start()
        worker = threading.Thread(target=run_load, args=(service, stop), daemon=True)
        worker.start()
        await asyncio.sleep(LIVE_SECONDS)
        stop.set()
        await asyncio.to_thread(worker.join, 30)
        last = service.state.seq
        await until_acked(relay, last)
        await relay.stop()
        await nc.close()
        return last

    last = asyncio.run(run())
    service.stop()
    ms = [x * 1000 for x in lags]
    bench_line(
        live_lag_p50_ms=percentile(ms, 50),
        live_lag_p99_ms=percentile(ms, 99),
        live_lag_max_ms=max(ms),
        events=len(ms),
        events_per_s=last / LIVE_SECONDS,
    )
    assert len(ms) > 0
