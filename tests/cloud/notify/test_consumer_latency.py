"""The notification path's first hop at the hub: events arriving at 100/s are applied as they come, not when a batch
of 500 has filled or the pull timed out (nats-py's `fetch(500)` on two workers waited for either, 30 s here; see
`cloud.consumer.StandingPull`)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

import nats
import sqlalchemy as sa

from cloud.consumer import ensure_stream
from cloud.store import events
from edge.demo import demo_config
from edge.engine import commands as c
from edge.replication import ServiceSource
from edge.service import QueueService
from sync.relay import LinkSettings, Relay
from tests.support.appliance import seed_demo
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer

TENANT, BRANCH = "acme", "jkt-sudirman"
EVENTS, RATE = 200, 100.0
QUIET_PULL = 30.0  # the consumers' pull timeout: a pull waiting for a full batch would hold events this long


def _waiting(hub: CloudHub) -> bool:
    """Every worker has applied what it took and is in its next pull."""
    stats = hub.consumer.stats if hub.consumer else None
    return stats is not None and stats.fetches == stats.batches + stats.idle_fetches + stats.failures + hub.workers


async def test_events_at_100_per_second_are_applied_as_they_come(tmp_path: Path, nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream())
    await nc.close()
    seed_demo(tmp_path / "edge", demo_config(), users=[])
    service = QueueService(tmp_path / "edge")
    service.start()
    relay = Relay(LinkSettings(servers=(nats_server.url,), tenant=TENANT, branch_id=BRANCH), ServiceSource(service),
                  cursor=0)  # fmt: skip
    service.subscribe_commits(lambda _events: relay.notify())
    hub = CloudHub(
        f"sqlite:///{tmp_path / 'cloud.sqlite3'}", nats_server.url, workers=2, batch=500, fetch_timeout=QUIET_PULL
    )
    try:
        hub.start()
        relay.start()
        head = service.read(lambda conn: conn.execute("SELECT max(seq) FROM events").fetchone()[0])
        await asyncio.to_thread(wait_until, lambda: hub.seqs(BRANCH)[-1:] == [head], 10, 0.02, "the seeded log")
        await asyncio.to_thread(wait_until, lambda: _waiting(hub), 10, 0.02, "the consumers waiting on their pulls")
        begun = time.perf_counter()
        for i in range(EVENTS):  # a steady 100 events/s, as a busy branch calls
            await asyncio.sleep(max(0.0, begun + i / RATE - time.perf_counter()))
            await asyncio.to_thread(service.execute, c.Enqueue(actor="test", service_id="teller"))
        head += EVENTS
        await asyncio.to_thread(wait_until, lambda: hub.seqs(BRANCH)[-1:] == [head], 60, 0.02, "every event applied")
        with hub.engine.connect() as conn:
            stamps = conn.execute(sa.select(events.c.occurred_at, events.c.received_at)
                                  .where(events.c.type == "ticket.created")).all()  # fmt: skip
        assert len(stamps) == EVENTS
        lags = sorted(datetime.fromisoformat(got) - datetime.fromisoformat(at) for at, got in stamps)
        assert lags[-1] < timedelta(seconds=2), lags[-5:]
    finally:
        await relay.stop()
        hub.stop()
        service.stop()
