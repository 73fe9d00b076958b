"""The hub's `/api/v1/health` tells the truth: `degraded` (HTTP 503) with the reason while NATS is down, while the
store is unreachable and while the consumer fails to apply; `ok` (200) again once each recovers. Real nats-server,
real PostgreSQL (stopped and started under the hub)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.store import branch_liveness, create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.liveness import Heartbeat, heartbeat_encoder, heartbeat_subject
from sync.relay import Outgoing
from tests.cloud.branch_events import make_branch_events, subject
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow


def health(client: TestClient[Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of the health endpoint."""
    response = client.get("/api/v1/health")
    return response.status_code, response.json()


def test_health_is_degraded_while_nats_is_down(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason names the NATS client's error, and the outage is logged once per kind of error: not nats-py's
    traceback for every reconnect attempt (two a second, ~80 KB of log a minute)."""
    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'cloud.sqlite3'}", nats_servers=(nats_server.url,),
                             fetch_timeout=0.1)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        _, body = wait_until(lambda: (h := health(client))[0] == 200 and h, what="healthy at start")
        assert (body["status"], body["reasons"], body["nats_connected"]) == ("ok", [], True)
        caplog.set_level(logging.INFO)
        nats_server.stop()
        _, body = wait_until(lambda: (h := health(client))[0] == 503 and h, what="degraded once NATS stops")
        assert body["status"] == "degraded"
        assert body["reasons"][0].startswith("NATS disconnected since ")
        _, body = wait_until(lambda: (h := health(client))[0] == 503 and "refused" in h[1]["reasons"][0].lower() and h,
                             what="the reason names the refused connection")  # fmt: skip
        time.sleep(3)  # six reconnect attempts of the consumer, one or two of the liveness listener
        nats_logs = [r for r in caplog.records if r.name.startswith("nats")]
        assert nats_logs == [], [r.getMessage() for r in nats_logs]
        refused = [r for r in caplog.records if "refused" in r.getMessage().lower()]
        # once per connection (consumer, liveness, and each area's link in cloud.nats_link), not once per retry
        links = [r.getMessage().split(":", 1)[0] for r in refused]
        assert links, "the refusal is logged"
        assert len(links) == len(set(links)), links
        nats_server.start()
        _code, body = wait_until(lambda: (h := health(client))[0] == 200 and h, what="healthy after NATS is back")
        assert (body["status"], body["reasons"]) == ("ok", [])


def _pg(cluster: PostgresCluster, action: str) -> None:
    """Stop or start the cluster in place (same data directory and port)."""
    options = f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {cluster.root} -c fsync=off"
    args = ["-m", "fast"] if action == "stop" else ["-o", options, "-l", str(cluster.root / "pg.log")]
    cluster._run(str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), *args, "-w", "-t", "60", action)


async def _publish(url: str, items: list[Outgoing]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for item in items:
            await js.publish(subject(), item.payload, headers={"Nats-Msg-Id": f"acme.jkt-sudirman:{item.seq}"})
    finally:
        await nc.close()


def test_health_is_degraded_while_the_store_is_unreachable_and_nothing_is_lost(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stops under a consuming hub: health says so, the batch stays unacknowledged (logged once, retried
    with back-off) and is applied once the database is back."""
    caplog.set_level(logging.INFO, logger="qms.cloud.consumer")
    log = make_branch_events(tmp_path / "edge", tickets=4)
    cluster = PostgresCluster().start()
    try:
        settings = CloudSettings(db_url=cluster.url, nats_servers=(nats_server.url,), fetch_timeout=0.1)
        with TestClient(create_app(settings)) as client:
            wait_until(lambda: health(client)[0] == 200, what="healthy at start")
            asyncio.run(_publish(nats_server.url, log[:3]))
            wait_until(lambda: health(client)[1]["applied"] == 3, what="first events applied")
            _pg(cluster, "stop")
            _, body = wait_until(lambda: (h := health(client))[0] == 503 and h, what="degraded once PG stops")
            assert body["reasons"][0].startswith("store unreachable: ")
            asyncio.run(_publish(nats_server.url, log[3:]))
            _, body = wait_until(lambda: (h := health(client))[1]["failures"] >= 2 and h, timeout=60,
                                    what="the consumer retrying")  # fmt: skip
            assert any(r.startswith("consumer failing since ") for r in body["reasons"])
            _pg(cluster, "start")
            # healthy again as soon as a batch applies; the rest of the nak'ed batch comes back on its own back-off
            _code, body = wait_until(lambda: (h := health(client))[0] == 200 and h[1]["applied"] == len(log) and h,
                                     timeout=60, what="recovered with every event applied")  # fmt: skip
            assert body["reasons"] == []
    finally:
        cluster.stop()
    refused = [r for r in caplog.records if r.getMessage().startswith("store refused a batch")]
    assert len(refused) == 1  # once per outage, however many retries


def test_a_hub_started_while_nats_is_down_serves_its_console_and_health(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Before: the heartbeat listener's connect blocked the app's startup until NATS was up (no console, no health)."""
    url = nats_server.url
    nats_server.stop()
    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'cloud.sqlite3'}", nats_servers=(url,), fetch_timeout=0.1)
    started = time.monotonic()
    with TestClient(create_app(settings)) as client:
        assert time.monotonic() - started < 15
        code, body = health(client)
        assert code == 503
        assert body["reasons"][0].startswith("NATS disconnected")
        assert client.get("/").status_code == 200
        nats_server.start()
        wait_until(lambda: health(client)[0] == 200, what="healthy once NATS is up")
        beat = Heartbeat(tenant="acme", branch_id="jkt-sudirman", sent_at=datetime.now(UTC), last_seq=1, acked_seq=1,
                         lag_events=0)  # fmt: skip

        async def send() -> None:
            nc = await nats.connect(url)
            await nc.publish(heartbeat_subject("acme", "jkt-sudirman"), heartbeat_encoder.encode(beat))
            await nc.close()

        def recorded() -> bool:
            asyncio.run(send())
            engine = create_store_engine(settings.db_url)
            try:
                with engine.connect() as conn:
                    return conn.execute(sa.select(branch_liveness)).first() is not None
            finally:
                engine.dispose()

        wait_until(recorded, interval=0.5, what="the listener subscribed once NATS came up and recorded a beat")
