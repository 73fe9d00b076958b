"""Interventions from HQ (US-AGENT-008) over a real nats-server with per-branch credentials: HQ opens a counter, calls
the next ticket to it, transfers one ticket and cancels another; the appliance runs each with `hq:<user>` as actor and
audits it, the hub audits it too; what the branch's rules refuse (an unknown counter, cancelling a cancelled ticket) is
refused by the branch; with the branch offline HQ refuses at once and sends nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from edge.devices.registry import add_device, pair
from edge.engine import commands as c
from edge.service import QueueService
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.support.appliance import RunningAppliance, event_rows, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
FLOOR = f"/admin/supervisor/{TENANT}/{BRANCH}"


def test_hq_intervenes_at_the_branch_and_is_refused_when_it_is_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = issue(engine, keys, TENANT, BRANCH)
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    add_accounts(engine, "ana")
    engine.dispose()
    tickets = seed_branch(tmp_path / "edge")
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
                call_transfer_and_cancel(client, tmp_path / "edge", tickets)
                push_a_kiosk_configuration(client, tmp_path / "edge")
            finally:
                appliance.stop()
            wait_until(
                lambda: "offline since" in client.get(FLOOR, params={"lang": "en"}).text,
                what="the branch offline at HQ",
            )
            offline = client.post(f"{FLOOR}/counters/2/closed?lang=en", follow_redirects=True)
            assert "Refused: the branch is offline, nothing was sent." in offline.text
            offline_cancel = client.post(
                f"{FLOOR}/tickets/{tickets[1]['ticket_id']}/cancel?lang=en", follow_redirects=True
            )
            assert "Refused: the branch is offline, nothing was sent." in offline_cancel.text
            trail = client.get("/admin/audit", params={"action": "floor.intervene"}).text
            assert trail.count('data-action="floor.intervene"') == 8
            assert "&#34;outcome&#34;: &#34;offline&#34;" in trail or '"outcome": "offline"' in trail
            assert "ticket.transfer" in trail
    finally:
        server.stop()


def call_transfer_and_cancel(client: TestClient[Any], data_dir: Path, tickets: list[dict[str, Any]]) -> None:
    """HQ calls the next ticket to counter 1, transfers the second to `cs`, cancels the third (twice: the second time
    the branch refuses); a transfer without a target is a 400 problem. Each ran at the branch as `hq:ana`, audited."""
    first, second, third = tickets
    called = client.post(f"{FLOOR}/counters/1/call-next?lang=en", follow_redirects=False)
    assert f"outcome=called&detail={first['ticket_number']}" in called.headers["location"]
    assert f"Called at the branch: <strong>{first['ticket_number']}" in client.get(
        called.headers["location"]).text  # fmt: skip
    transfer = {"to_service_id": "cs", "reason": "needs CS"}
    moved = client.post(
        f"{FLOOR}/tickets/{second['ticket_id']}/transfer?lang=en", data=transfer, follow_redirects=False
    )
    assert "outcome=done" in moved.headers["location"]
    gone = client.post(f"{FLOOR}/tickets/{third['ticket_id']}/cancel?lang=en", follow_redirects=False)
    assert "outcome=done" in gone.headers["location"]
    again = client.post(f"{FLOOR}/tickets/{third['ticket_id']}/cancel?lang=en", follow_redirects=False)
    assert "outcome=refused" in again.headers["location"]
    nowhere = client.post(f"{FLOOR}/tickets/{second['ticket_id']}/transfer", data={})
    assert nowhere.status_code == 400
    assert nowhere.headers["content-type"].startswith("application/problem+json")
    by_type = {
        kind: json.loads(body) for kind, body in event_rows(data_dir, "SELECT type, body FROM events ORDER BY seq")
    }
    assert by_type["ticket.called"]["actor"] == "hq:ana"
    assert by_type["ticket.called"]["counter_id"] == "1"
    assert by_type["ticket.called"]["ticket_id"] == first["ticket_id"]
    assert by_type["ticket.transferred"]["actor"] == "hq:ana"
    assert by_type["ticket.transferred"]["ticket_id"] == second["ticket_id"]
    assert by_type["ticket.cancelled"]["actor"] == "hq:ana"
    assert by_type["ticket.cancelled"]["ticket_id"] == third["ticket_id"]
    audited = event_rows(data_dir, "SELECT actor, action, target FROM audit ORDER BY rowid")
    for entry in (("hq:ana", "call_next", "counter:1"),
                  ("hq:ana", "transfer", f"ticket:{second['ticket_id']}"),
                  ("hq:ana", "cancel", f"ticket:{third['ticket_id']}")):  # fmt: skip
        assert entry in audited
    wait_until(
        lambda: (
            f'data-ticket="{second["ticket_id"]}"'
            in client.get(FLOOR, params={"lang": "en"}).text.split('id="floor-tickets"')[-1]
        ),
        what="the transferred ticket listed on HQ's floor",
    )


def seed_branch(data_dir: Path) -> list[dict[str, Any]]:
    """The demo branch with three waiting teller tickets (returned) and an active kiosk."""
    seed_demo(data_dir)
    queue = QueueService(data_dir)
    try:
        tickets = [queue.execute(c.Enqueue(actor="kiosk", service_id="teller")).response for _ in range(3)]
        queue.submit_store(pair_a_kiosk).result(timeout=30)
    finally:
        queue.stop()
    return tickets


def pair_a_kiosk(conn: sqlite3.Connection) -> None:
    """An active kiosk at the branch (registered and paired, as `qms-edge devices add` and the kiosk would)."""
    now = datetime.now(UTC)
    add_device(conn, device_id="kiosk-lobby", device_type="kiosk", code="PAIR-1234", now=now)
    pair(conn, "PAIR-1234", now)


def push_a_kiosk_configuration(client: TestClient[Any], data_dir: Path) -> None:
    """HQ pushes one kiosk configuration to a group: the online branch gives its kiosk a new version (audited there
    as hq:ana), the branch that never connected is refused at once; a non-object configuration is refused inline."""
    bad = client.post("/admin/fleet/push?lang=en", data={"branches": [f"{TENANT}/{BRANCH}"], "device_type": "kiosk",
                                                         "config": "[1, 2]"})  # fmt: skip
    assert bad.status_code == 400
    assert "must be a JSON object" in bad.text
    group = {"branches": [f"{TENANT}/{BRANCH}", f"{TENANT}/bdg-dago"], "device_type": "kiosk",
             "config": '{"idle_seconds": 45, "volume": 70}'}  # fmt: skip
    pushed = client.post("/admin/fleet/push?lang=en", data=group)
    assert pushed.status_code == 200, pushed.text
    results = dict(re.findall(r'data-branch="([\w.-]+)" data-outcome="(\w+)"', pushed.text))
    assert results == {f"{TENANT}.{BRANCH}": "pushed", f"{TENANT}.bdg-dago": "offline"}
    assert "new version for devices: 1" in pushed.text
    stored = event_rows(data_dir, "SELECT device_id, version, doc FROM device_configs")
    assert [(d, v, json.loads(doc)) for d, v, doc in stored] == [("kiosk-lobby", 1, {"idle_seconds": 45, "volume": 70})]
    audited = event_rows(data_dir, "SELECT actor, action, target FROM audit ORDER BY rowid")
    assert ("hq:ana", "device_config", "device:kiosk-lobby") in audited
    trail = client.get("/admin/audit", params={"action": "fleet.push"}).text
    assert trail.count('data-action="fleet.push"') == 2
    assert "idle_seconds" not in trail  # the configuration's digest, never its text
