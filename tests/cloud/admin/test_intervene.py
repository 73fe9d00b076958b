"""Interventions from HQ (US-AGENT-008) over a real nats-server with per-branch credentials: HQ opens a counter, the
appliance runs it with `hq:<user>` as actor and audits it, the hub audits it too; a counter the branch does not know is
refused by the branch; with the branch offline HQ refuses at once and sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litestar.testing import TestClient

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, event_rows, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
FLOOR = f"/admin/supervisor/{TENANT}/{BRANCH}"


def test_hq_opens_a_counter_at_the_branch_and_is_refused_when_it_is_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = issue(engine, keys, TENANT, BRANCH)
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    add_accounts(engine, "ana")
    engine.dispose()
    seed_demo(tmp_path / "edge")
    for name, value in (
        ("QMS_NATS_URL", server.url),
        ("QMS_TENANT", TENANT),
        ("QMS_NATS_NKEY", str(issued.seed_file)),
        ("QMS_HEARTBEAT_SECONDS", "1"),
    ):
        monkeypatch.setenv(name, value)
    settings = CloudSettings(
        db_url=store_url, nats_servers=(server.url,), nats_options={"nkeys_seed": str(keys / HUB_KEY)}, keys_dir=keys
    )
    try:
        with TestClient(app=create_app(settings)) as client:
            sign_in(client, "ana")
            appliance = RunningAppliance(tmp_path / "edge").start()
            try:
                wait_until(
                    lambda: "online" in client.get(FLOOR, params={"lang": "en"}).text.split("floor-liveness")[1][:300],
                    what="the branch online at HQ",
                )
                done = client.post(f"{FLOOR}/counters/1/available?lang=en", follow_redirects=False)
                assert done.status_code == 303
                assert "outcome=done" in done.headers["location"]
                assert "Done at the branch." in client.get(done.headers["location"]).text
                presence = [
                    json.loads(body)
                    for (body,) in event_rows(
                        tmp_path / "edge", "SELECT body FROM events WHERE type = 'counter.presence' ORDER BY seq"
                    )
                ]
                assert presence[-1]["counter_id"] == "1"
                assert presence[-1]["status"] == "available"
                assert presence[-1]["actor"] == "hq:ana"
                audited = event_rows(tmp_path / "edge", "SELECT actor, action, target FROM audit ORDER BY rowid")
                assert ("hq:ana", "counter_presence", "counter:1") in audited
                unknown = client.post(f"{FLOOR}/counters/99/closed?lang=en", follow_redirects=False)
                assert "outcome=refused" in unknown.headers["location"]
            finally:
                appliance.stop()
            wait_until(
                lambda: "offline since" in client.get(FLOOR, params={"lang": "en"}).text,
                what="the branch offline at HQ",
            )
            offline = client.post(f"{FLOOR}/counters/2/closed?lang=en", follow_redirects=True)
            assert "Refused: the branch is offline, nothing was sent." in offline.text
            trail = client.get("/admin/audit", params={"action": "floor.intervene"}).text
            assert trail.count('data-action="floor.intervene"') == 3
            assert "&#34;outcome&#34;: &#34;offline&#34;" in trail or '"outcome": "offline"' in trail
    finally:
        server.stop()
