"""The hub's KPI API and ticket export over real replicated logs: scoped by tenant and branch (another tenant's id is
404), guarded (export needs analytics.export), malformed queries are 400 problem+json, the CSV is contract v1."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.analytics.tables import facts
from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync import kpi
from sync.relay import event_subject
from tests.cloud.branch_events import TENANT, make_branch_events

PASSWORD = "correct horse battery staple 42"
BRANCH = "jkt-sudirman"


def auth(user: str) -> dict[str, str]:
    """HTTP Basic for a test account."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Two tenants' branches: acme/jkt-sudirman (24 tickets) and globex/jkt-sudirman (same branch id, 6 tickets)."""
    return {
        TENANT: make_branch_events(tmp_path_factory.mktemp("acme"), BRANCH, tickets=24),
        "globex": make_branch_events(tmp_path_factory.mktemp("globex"), BRANCH, tickets=6),
    }


@pytest.fixture
def client(store_url: str, logs: dict[str, list[Any]]) -> Iterator[TestClient[Any]]:
    """A hub with both branches applied and three accounts: acme's admin, globex's admin, acme's auditor."""
    engine = create_store_engine(store_url)
    for tenant, log in logs.items():
        assert not apply_batch(engine, [Incoming(event_subject(tenant, BRANCH), o.payload) for o in log]).problems
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "gus", PASSWORD, "tenant_admin", ["globex"])
    upsert_user(engine, "aud", PASSWORD, "auditor", [TENANT])
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as test_client:
        yield test_client


def day_of(client: TestClient[Any]) -> str:
    """The local date the test branches' tickets were created on."""
    engine: sa.Engine = client.app.state["engine"]
    with engine.connect() as conn:
        return str(conn.execute(sa.select(sa.func.min(facts.c.local_date))).scalar_one())


def test_kpis_of_one_branch_day_are_exact_and_scoped(client: TestClient[Any]) -> None:
    """One branch, one day: exact figures over that tenant's tickets only; the same branch id of another tenant is
    another branch; a tenant or branch outside the caller's scope is 404."""
    day = day_of(client)
    answer = client.get("/api/v1/kpis", params={"branch_id": BRANCH, "from": day, "to": day, "group_by": "service"},
                        headers=auth("ana"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-kpi-percentiles"] == "exact"
    body = answer.json()
    assert body["totals"]["tickets"] == 24
    assert list(body["totals"]) == list(kpi.KPI_FIELDS)
    assert [row["service_id"] for row in body["rows"]] == ["cs", "teller"]
    assert list(body["rows"][0]) == ["service_id", *kpi.KPI_FIELDS]
    theirs = client.get("/api/v1/kpis", params={"branch_id": BRANCH, "from": day, "to": day}, headers=auth("gus"))
    assert theirs.json()["totals"]["tickets"] == 6
    for params in ({"tenant": TENANT}, {"tenant": "nobody"}, {"branch_id": "nowhere"}):
        refused = client.get("/api/v1/kpis", params=params, headers=auth("gus"))
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("application/problem+json")
    before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    wide = client.get("/api/v1/kpis", params={"from": before, "to": day, "group_by": "branch,day"}, headers=auth("ana"))
    assert wide.headers["x-kpi-percentiles"] == "histogram"
    assert [(r["branch_id"], r["day"], r["tickets"]) for r in wide.json()["rows"]] == [(BRANCH, day, 24)]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday"},
        {"from": "2026-12-05", "to": "2026-12-01"},
        {"group_by": "week"},
        {"channel": "fax"},
        {"priority": "high"},
        {"colour": "red"},
        {"branch_id": "x" * 200},
        {"sep": "|"},
    ],
)
def test_malformed_queries_are_400_problems(client: TestClient[Any], params: dict[str, str]) -> None:
    """Every malformed parameter is a 400 problem+json naming it, never a 500 nor a silently ignored filter."""
    for path in ("/api/v1/kpis", "/api/v1/reports/tickets.csv"):
        answer = client.get(path, params=params, headers=auth("ana"))
        assert answer.status_code == 400, (path, params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "invalid_query"


def test_csv_export_is_the_contract_streamed_and_guarded(client: TestClient[Any]) -> None:
    """Header version 1 exactly, one row per ticket of the caller's tenant, times with the branch zone's offset, `;`
    on request; an auditor (no analytics.export) is refused."""
    day = day_of(client)
    answer = client.get("/api/v1/reports/tickets.csv", params={"from": day, "to": day}, headers=auth("ana"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.split("\r\n")
    assert lines[0] == ",".join(kpi.CSV_HEADER)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 24
    assert {r["timezone"] for r in rows} == {"Asia/Jakarta"}
    assert all(r["created_at"].endswith("+07:00") for r in rows)
    assert sum(r["status"] == "done" for r in rows) == 1
    semi = client.get("/api/v1/reports/tickets.csv", params={"from": day, "to": day, "sep": ";"}, headers=auth("ana"))
    assert semi.text.split("\r\n")[0] == ";".join(kpi.CSV_HEADER)
    assert client.get("/api/v1/reports/tickets.csv", headers=auth("aud")).status_code == 403
    assert client.get("/api/v1/reports/tickets.csv").status_code == 401


def test_kpis_default_to_today_in_the_branch_zone(client: TestClient[Any], tmp_path: Path) -> None:
    """Without dates the range is the branch's today (its zone from its configuration)."""
    today = datetime.now(UTC).astimezone(kpi.zone("Asia/Jakarta")).date().isoformat()
    answer = client.get("/api/v1/kpis", params={"branch_id": BRANCH}, headers=auth("ana"))
    assert answer.status_code == 200
    assert answer.json()["totals"]["tickets"] == (24 if day_of(client) == today else 0)
