"""HQ's anomaly alerts travel hub -> branch over a real nats-server with the branches' own credentials: the publisher
puts each branch's open alerts in `qms_alerts` (only when they changed), that branch's watcher keeps the document and
tells its listeners, another branch cannot read it, and a cleared alert empties the branch's list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.analytics.alert_push import AlertPublisher, ensure_alerts_bucket
from cloud.analytics.tables import alerts
from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine, metadata
from edge.analytics import hq_alerts
from edge.analytics.hq_alerts import AlertsWatch, fetch_alerts
from sync.config_watch import ConfigEntry, ConfigFetchError
from sync.hq_alerts import AlertsDocument
from sync.relay import LinkSettings
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

TENANT = "acme"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[Engine, NatsServer, Path]]:
    """A hub store with two branches and a nats-server that knows only the hub and those branches."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    metadata.create_all(engine)
    keys = tmp_path / "keys"
    issue(engine, keys, TENANT, "jkt-01"), issue(engine, keys, TENANT, "bdg-02")
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys))
    await asyncio.to_thread(server.start)
    try:
        yield engine, server, keys
    finally:
        await asyncio.to_thread(server.stop)
        engine.dispose()


def _link(server: NatsServer, keys: Path, branch: str) -> LinkSettings:
    return LinkSettings(servers=(server.url,), tenant=TENANT, branch_id=branch,
                        nkey_seed_file=str(keys / f"{TENANT}.{branch}.nk"))  # fmt: skip


def _alert(engine: Engine, branch: str, service: str, state: str) -> None:
    key = {"tenant_id": TENANT, "branch_id": branch, "service_id": service}
    row = {"state": state, "opened_at": "2026-12-07T02:00:00+00:00", "p90_seconds": 1650.0, "baseline_seconds": 410.0,
           "cleared_at": None if state == "open" else "2026-12-07T03:00:00+00:00",
           "updated_at": "2026-12-07T03:00:00+00:00"}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.delete(alerts).where(*(alerts.c[k] == v for k, v in key.items())))
        conn.execute(sa.insert(alerts).values(**key, **row))


async def test_a_branch_gets_its_open_alerts_only_and_sees_them_clear(
    hub: tuple[Engine, NatsServer, Path], tmp_path: Path
) -> None:
    engine, server, keys = hub
    _alert(engine, "jkt-01", "teller", "open")
    _alert(engine, "jkt-01", "cs", "cleared")
    _alert(engine, "bdg-02", "teller", "cleared")
    nc = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
    data_dir = tmp_path / "edge"
    data_dir.mkdir()
    watch = AlertsWatch(_link(server, keys, "jkt-01"), data_dir, poll_seconds=0.1)
    heard: list[AlertsDocument] = []
    watch.listeners.append(heard.append)
    try:
        await ensure_alerts_bucket(nc.jetstream())
        publisher = AlertPublisher(engine, nc.jetstream())
        assert await publisher.publish_changed() == 2  # both branches: jkt-01 one open, bdg-02 none
        assert await publisher.publish_changed() == 0  # nothing changed: nothing sent
        watch.start()
        await asyncio.to_thread(wait_until, lambda: heard, timeout=20, what="the branch's alerts")
        assert [(a.service_id, a.p90_seconds) for a in heard[-1].alerts] == [("teller", 1650.0)]
        shown = hq_alerts.floor_view(data_dir, "Asia/Jakarta")
        assert shown is not None
        assert shown["alerts"] == [{"service_id": "teller", "since": "09:00", "p90_seconds": 1650.0,
                                    "baseline_seconds": 410.0}]  # fmt: skip

        other = await _link(server, keys, "bdg-02").connect()
        try:  # another branch's credentials cannot read jkt-01's key
            with pytest.raises((ConfigFetchError, nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await fetch_alerts(other, TENANT, "jkt-01")
            mine = await fetch_alerts(other, TENANT, "bdg-02")
            assert mine is not None
        finally:
            await other.close()

        _alert(engine, "jkt-01", "teller", "cleared")
        assert await publisher.publish_changed() == 1
        await asyncio.to_thread(wait_until, lambda: len(heard) == 2, timeout=20, what="the cleared alerts")
        assert heard[-1].alerts == []
        assert hq_alerts.floor_view(data_dir, "Asia/Jakarta") is None
    finally:
        await watch.stop()
        await nc.close()


async def test_a_document_for_another_branch_is_ignored(tmp_path: Path) -> None:
    link = LinkSettings(servers=("nats://127.0.0.1:1",), tenant=TENANT, branch_id="jkt-01", nkey_seed_file=None)
    watch = AlertsWatch(link, tmp_path)
    foreign = AlertsDocument(tenant_id=TENANT, branch_id="bdg-02", generated_at=datetime.now(UTC))
    await watch.accept(ConfigEntry(revision=1, value=msgspec.json.encode(foreign)))
    await watch.accept(ConfigEntry(revision=2, value=b"{not json"))
    assert hq_alerts.load(tmp_path) is None
