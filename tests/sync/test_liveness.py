"""HQ tells a dead branch from an idle one: the appliance beats on `qms.hb.<tenant>.<branch>` (core NATS, not the
event log), the hub records the newest beat per (tenant, branch), and the console and `qms-cloud branch list` say
`never connected`, `online`, then `offline since …` once the branch missed 3 beats (real nats-server, real appliance,
short intervals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from litestar.testing import TestClient
from nats.js.api import StreamConfig
from typer.testing import CliRunner

from cloud.cli import app as cloud_cli
from cloud.console import overview
from cloud.liveness import LivenessListener, record_beat, since_words
from cloud.store import create_store_engine, register_branch, transaction
from cloud.web.app import CloudSettings, create_app
from sync.liveness import Heartbeat, heartbeat_encoder, heartbeat_subject
from sync.relay import STREAM
from tests.support.appliance import RunningAppliance, event_rows, seed_demo
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
INTERVAL = 0.2  # seconds between beats: offline after 3 missed, i.e. 0.6 s


async def until(condition: Callable[[], Any], what: str, seconds: float = 30.0) -> Any:
    """Await a condition while the listener keeps running on this loop."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def branch_view(store_url: str) -> Any:
    """The console's view of the branch."""
    engine = create_store_engine(store_url)
    try:
        views = overview(engine)["branches"]
    finally:
        engine.dispose()
    return next(v for v in views if (v.tenant, v.branch_id) == (TENANT, BRANCH))


async def test_a_branch_that_beats_is_online_and_offline_after_three_missed_beats(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, BRANCH)  # `qms-cloud branch add`
    assert branch_view(store_url).liveness == "never connected"
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["qms.evt.>"]))  # what the hub does
    await nc.close()
    listener = LivenessListener(engine, [nats_server.url])
    await listener.start()
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_HEARTBEAT_SECONDS", str(INTERVAL))
    try:
        appliance = RunningAppliance(tmp_path / "edge").start()
        try:
            online = await until(lambda: (v := branch_view(store_url)).liveness == "online" and v, "online")
            assert online.software_version
            head = event_rows(tmp_path / "edge", "SELECT max(seq) FROM events")[0][0]
            await until(lambda: branch_view(store_url).last_seq == head, "the beat reports the log head")
            events_before = event_rows(tmp_path / "edge", "SELECT count(*) FROM events")[0][0]
            await until(lambda: listener.recorded >= 5, "five beats")
            assert branch_view(store_url).liveness == "online"  # still: beating for longer than the threshold
            assert event_rows(tmp_path / "edge", "SELECT count(*) FROM events")[0][0] == events_before  # log untouched
        finally:
            appliance.stop()
        offline = await until(lambda: (v := branch_view(store_url)).liveness == "offline" and v, "offline")
        silent = datetime.now(UTC) - datetime.fromisoformat(offline.last_beat_at)
        assert silent.total_seconds() > 3 * INTERVAL  # offline only after three missed beats
        assert offline.liveness_words == f"offline since {since_words(offline.last_beat_at)}"
        listed = CliRunner().invoke(cloud_cli, ["branch", "list", "--db-url", store_url])
        assert listed.exit_code == 0, listed.output
        assert f"offline since {since_words(offline.last_beat_at)}" in listed.output
        with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
            assert f"offline since {offline.local(offline.last_beat_at)}" in client.get("/", params={"lang": "en"}).text
            row = next(b for b in client.get("/api/v1/branches").json()["branches"] if b["branch_id"] == BRANCH)
            assert row["liveness"] == "offline"
    finally:
        await listener.stop()
        engine.dispose()


async def test_a_beat_whose_body_names_another_branch_is_refused(tmp_path: Path, nats_server: NatsServer) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    listener = LivenessListener(engine, [nats_server.url])
    await listener.start()
    nc = await nats.connect(nats_server.url)
    try:
        beat = Heartbeat(tenant="beta", branch_id=BRANCH, sent_at=datetime.now(UTC), last_seq=9, acked_seq=9,
                         lag_events=0)  # fmt: skip
        await nc.publish(heartbeat_subject(TENANT, BRANCH), heartbeat_encoder.encode(beat))
        await nc.publish(heartbeat_subject(TENANT, BRANCH), b"not json")
        await nc.flush()
        await until(lambda: listener.refused == 2, "both refused")
        assert listener.recorded == 0
    finally:
        await nc.close()
        await listener.stop()
        engine.dispose()


def test_liveness_is_judged_per_tenant_and_branch_from_the_newest_beat(store_url: str) -> None:
    """SQLite and PostgreSQL: online within missed-beats x interval, offline since the last beat after it, and a
    branch of another tenant with the same id stays never connected."""
    engine = create_store_engine(store_url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, BRANCH)
        register_branch(conn, "beta", BRANCH)
    t0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    beat = Heartbeat(tenant=TENANT, branch_id=BRANCH, sent_at=t0, last_seq=7, acked_seq=7, lag_events=0,
                     interval_seconds=30.0, software_version="1.2.3")  # fmt: skip
    record_beat(engine, beat, received_at=t0)
    last = t0 + timedelta(seconds=30)
    record_beat(engine, msgspec.structs.replace(beat, last_seq=8, sent_at=last), received_at=last)

    def views(now: datetime, missed: int | None = None) -> dict[tuple[str, str], Any]:
        return {(v.tenant, v.branch_id): v for v in overview(engine, now=now, missed_beats=missed)["branches"]}

    online = views(last + timedelta(seconds=89))
    assert online[(TENANT, BRANCH)].liveness == "online"
    assert (online[(TENANT, BRANCH)].last_seq, online[(TENANT, BRANCH)].software_version) == (8, "1.2.3")
    assert online[("beta", BRANCH)].liveness_words == "never connected"
    offline = views(last + timedelta(seconds=91))[(TENANT, BRANCH)]
    assert offline.liveness_words == f"offline since {since_words(last.isoformat())}"
    assert views(last + timedelta(seconds=91), missed=5)[(TENANT, BRANCH)].liveness == "online"
    engine.dispose()
