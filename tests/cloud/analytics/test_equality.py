"""Issue 13's first "Must show": after replication, the hub's KPIs for a branch and day equal the appliance's own.

A real appliance (`qms-edge serve`) with a cloud link serves a morning over HTTP (tickets done, a no-show, a
cancellation, a transfer then done, one still waiting); a real nats-server carries its log to the hub's consumer; the
hub's `GET /api/v1/kpis` for that branch and day answers every field of every row exactly as the appliance's
`GET /api/v1/kpis` does, grouped by day, service, counter and hour, and its ticket export has the same rows as the
appliance's — on a SQLite hub and on a PostgreSQL hub.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.support.appliance import RunningAppliance, seed_demo
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT = "acme"
BRANCH = "jkt-sudirman"
PASSWORD = "correct horse battery staple 42"
GROUPS = ("day", "service", "counter", "hour")


def serve_a_morning(appliance: RunningAppliance) -> set[str]:
    """Tickets in every outcome the KPIs distinguish; returns the statuses reached (checked by the caller)."""
    headers = appliance.headers("admin")

    def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(f"{appliance.api}{path}", json=body or {}, headers=headers, timeout=10)
        assert r.status_code in (200, 201), (path, r.text)
        return r.json()

    for service in ("teller", "teller", "cs", "teller", "loan", "cs", "teller", "teller"):
        post("/tickets", {"service_id": service})

    def call(counter: str) -> str:
        called = post(f"/counters/{counter}/call-next")
        ticket = called.get("ticket") or called
        return str(ticket["ticket_id"])

    for counter in ("1", "4", "6"):  # served to the end
        ticket = call(counter)
        post(f"/tickets/{ticket}/start", {"counter_id": counter})
        post(f"/tickets/{ticket}/complete", {"counter_id": counter})
    no_show = call("2")
    post(f"/tickets/{no_show}/no-show", {"counter_id": "2"})
    moved = call("3")  # a teller ticket sent on to customer service, served there
    post(f"/tickets/{moved}/start", {"counter_id": "3"})
    post(f"/tickets/{moved}/transfer", {"counter_id": "3", "to_service_id": "cs"})
    waiting = httpx.get(f"{appliance.api}/tickets", params={"status": "waiting"}, headers=headers, timeout=10)
    tellers = [t for t in waiting.json()["tickets"] if t["service_id"] == "teller"]
    post(f"/tickets/{tellers[-1]['ticket_id']}/cancel")  # another teller ticket stays waiting
    for _ in range(2):
        ticket = call("5")
        post(f"/tickets/{ticket}/start", {"counter_id": "5"})
        post(f"/tickets/{ticket}/complete", {"counter_id": "5"})
    tickets = httpx.get(f"{appliance.api}/tickets", headers=headers, timeout=10).json()["tickets"]
    return {t["status"] for t in tickets} | {
        "transferred" for t in tickets if t.get("transferred_from") or t.get("transfer_count")
    }


def test_hub_kpis_equal_the_appliance_after_replication(
    tmp_path: Path, store_url: str, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    with CloudHub(store_url, nats_server.url) as hub, RunningAppliance(tmp_path / "edge") as appliance:
        statuses = serve_a_morning(appliance)
        assert {"done", "no_show", "cancelled", "waiting", "transferred"} <= statuses
        seq = httpx.get(f"{appliance.api}/health", timeout=5).json()["seq"]
        wait_until(lambda: len(hub.seqs(BRANCH, TENANT)) >= seq, timeout=60, what="the branch log at the hub")
        edge_headers = appliance.headers("admin")
        edge = {g: httpx.get(f"{appliance.api}/kpis", params={"group_by": g}, headers=edge_headers, timeout=10)
                for g in GROUPS}  # fmt: skip
        edge_csv = httpx.get(f"{appliance.api}/reports/tickets.csv", headers=edge_headers, timeout=10)
    hub_engine = create_store_engine(store_url)
    upsert_user(hub_engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    hub_engine.dispose()
    basic = {"Authorization": "Basic " + base64.b64encode(f"ana:{PASSWORD}".encode()).decode()}
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        for group, answer in edge.items():
            assert answer.status_code == 200, answer.text
            mine = answer.json()
            day = mine["rows"][0]["day"] if group == "day" else None
            params = {"tenant": TENANT, "branch_id": BRANCH, "group_by": group}
            if day is not None:
                params |= {"from": day, "to": day}
            theirs = client.get("/api/v1/kpis", params=params, headers=basic)
            assert theirs.status_code == 200, theirs.text
            assert mine["totals"]["tickets"] == 8
            assert strip(theirs.json()) == strip(mine), group
        # The ticket export too: the same rows (header version 1, branch-local times), whatever the order.
        hub_csv = client.get("/api/v1/reports/tickets.csv", params={"tenant": TENANT, "branch_id": BRANCH},
                             headers=basic)  # fmt: skip
        assert hub_csv.status_code == 200, hub_csv.text
        mine_lines, their_lines = edge_csv.text.splitlines(), hub_csv.text.splitlines()
        assert their_lines[0] == mine_lines[0]
        assert sorted(their_lines[1:]) == sorted(mine_lines[1:])
        assert len(mine_lines) == 1 + 8


def strip(answer: dict[str, Any]) -> dict[str, Any]:
    """The KPI answer's rows and totals only (the hub's answer may say more about itself, e.g. whether exact)."""
    return {"rows": answer["rows"], "totals": answer["totals"]}
