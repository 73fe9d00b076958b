"""The HQ analytics dashboard without a browser: the page in both languages (tables readable without JavaScript), the
live SSE board moving within 1 s of an applied batch, drill-down with masked contacts or none when the tenant turned
them off, scope (another tenant's id is 404)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.analytics.tables import facts, tenant_settings
from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.notify import contacts
from cloud.store import create_store_engine, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import Outgoing
from tests.cloud.branch_events import TENANT, make_branch_events, subject
from tests.support.appliance import seed_demo
from tests.support.providers import hub as hub_server

PASSWORD = "correct horse battery staple 42"
_NOW = datetime.now(UTC)
RANGE = {"from": (_NOW - timedelta(days=1)).date().isoformat(), "to": (_NOW + timedelta(days=1)).date().isoformat()}
BRANCH = "jkt-sudirman"


def auth(user: str) -> dict[str, str]:
    """HTTP Basic for a test account."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def branch_log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """A real branch log: 12 tickets, one served and done, two called."""
    return make_branch_events(tmp_path_factory.mktemp("edge"), tickets=12)


@pytest.fixture
def hub(store_url: str, branch_log: list[Outgoing]) -> Iterator[tuple[TestClient[Any], sa.Engine]]:
    """A hub holding the branch's log but its last 3 events, with acme's and globex's admins."""
    engine = create_store_engine(store_url)
    assert not apply_batch(engine, [Incoming(subject(), o.payload) for o in branch_log[:-3]]).problems
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "gus", PASSWORD, "tenant_admin", ["globex"])
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        yield client, engine
    engine.dispose()


def test_dashboard_page_in_both_languages_and_scoped(hub: tuple[TestClient[Any], sa.Engine]) -> None:
    """The live board row, the KPI table and the chart tables are server-rendered; words follow the language."""
    client, _ = hub
    for lang, words in (("id", ("Analitik", "Tunggu terlama", "Sebaran waktu tunggu")),
                        ("en", ("Analytics", "Longest wait", "Wait time distribution"))):  # fmt: skip
        page = client.get("/analytics", params={"lang": lang, **RANGE},
                          headers=auth("ana"))  # fmt: skip
        assert page.status_code == 200, page.text
        assert 'id="filter-error"' not in page.text
        assert all(word in page.text for word in words)
        assert f'id="live-{TENANT}-{BRANCH}"' in page.text
        assert 'id="kpi-table"' in page.text
        assert 'id="waits-table"' in page.text
        assert "/analytics/static/vendor/uplot/uPlot.iife.min.js" in page.text
    assert client.get("/analytics", params={"tenant": TENANT}, headers=auth("gus")).status_code == 404
    assert client.get("/analytics/static/vendor/uplot/uPlot.iife.min.js", headers=auth("ana")).status_code == 200


@pytest.fixture
def served(store_url: str, branch_log: list[Outgoing]) -> Iterator[tuple[str, sa.Engine]]:
    """The hub app behind a real HTTP server (uvicorn, free port, own thread): an endless SSE stream needs one."""
    engine = create_store_engine(store_url)
    assert not apply_batch(engine, [Incoming(subject(), o.payload) for o in branch_log[:-3]]).problems
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    try:
        with hub_server.served(create_app(CloudSettings(db_url=store_url))) as base:
            yield base, engine
    finally:
        engine.dispose()


def test_live_board_moves_within_a_second_of_an_applied_batch(
    served: tuple[str, sa.Engine], branch_log: list[Outgoing]
) -> None:
    """The first board comes at once; after the last events are applied, the next board (with them) within 1 s."""
    base, engine = served
    with httpx.stream("GET", f"{base}/analytics/live", headers=auth("ana"), timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = _next_board(lines)
        before = first["branches"][0]
        applied_at: list[float] = []

        def apply_rest() -> None:
            time.sleep(0.3)
            assert not apply_batch(engine, [Incoming(subject(), o.payload) for o in branch_log[-3:]]).problems
            applied_at.append(time.monotonic())

        worker = threading.Thread(target=apply_rest)
        worker.start()
        second = _next_board(lines)
        received = time.monotonic()
        worker.join()
    after = second["branches"][0]
    assert (after["waiting"], after["called"]) != (before["waiting"], before["called"])
    assert received - applied_at[0] < 1.0


def _next_board(lines: Iterator[str]) -> dict[str, Any]:
    """The data of the next `board` event on the stream."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "board":
            return dict(json.loads(line.split(":", 1)[1]))
    raise AssertionError("the stream ended")


def test_drill_down_masks_contacts_and_hides_them_when_the_tenant_says_so(
    hub: tuple[TestClient[Any], sa.Engine],
) -> None:
    """A ticket's phone shows masked (never in full); with the tenant's contacts off, no contact column at all."""
    client, engine = hub
    with engine.begin() as conn:
        ticket_id = conn.execute(sa.select(facts.c.ticket_id).where(facts.c.service_id == "cs").limit(1)).scalar_one()
        contacts.record(conn, TENANT, BRANCH, ticket_id, phone="+6281234567890", email=None, opt_in=True, lang="id",
                        now=datetime.now(UTC), retention=timedelta(days=1))  # fmt: skip
    params = {"service_id": "cs", **RANGE, "lang": "en"}
    page = client.get("/analytics/tickets", params=params, headers=auth("ana"))
    assert page.status_code == 200, page.text
    assert f'data-ticket="{ticket_id}"' in page.text
    assert "+6281234567890" not in page.text
    assert 'class="contact"' in page.text
    with engine.begin() as conn:
        conn.execute(sa.insert(tenant_settings).values(tenant_id=TENANT, show_contacts=False, updated_at=utcnow_iso()))
    hidden = client.get("/analytics/tickets", params=params, headers=auth("ana"))
    assert 'class="contact"' not in hidden.text
    assert "Contact" not in hidden.text
    assert client.get("/analytics/tickets", params={"hour": "25"}, headers=auth("ana")).status_code == 400
    assert client.get("/analytics/tickets", params={"after": "garbage!"}, headers=auth("ana")).status_code == 400


def test_heat_map_by_weekday_and_hour_matches_the_facts(hub: tuple[TestClient[Any], sa.Engine]) -> None:
    """The weekday x hour table (arrivals / done, from the rollups) equals a count over the ticket facts made here:
    arrivals by the creation's local weekday and hour, done by the completion's; in both languages, no JavaScript."""
    client, engine = hub
    expected: dict[tuple[str, int], list[int]] = {}
    names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    with engine.connect() as conn:
        for row in conn.execute(sa.select(facts)).mappings():
            key = (names[datetime.fromisoformat(row["local_date"]).weekday()], row["local_hour"])
            expected.setdefault(key, [0, 0])[0] += 1
            if row["status"] == "done" and row["closed_date"] is not None:
                done = (names[datetime.fromisoformat(row["closed_date"]).weekday()], row["closed_hour"])
                expected.setdefault(done, [0, 0])[1] += 1
    assert sum(a for a, _ in expected.values()) == 12
    assert sum(d for _, d in expected.values()) >= 1  # a completion too
    for lang, title in (("id", "Kedatangan dan selesai per hari dan jam"), ("en", "Arrivals and completions by")):
        page = client.get("/analytics", params={"lang": lang, **RANGE}, headers=auth("ana"))
        assert title in page.text
        cells = {
            (day, int(hour)): [int(a), int(d)]
            for day, row in re.findall(r'<tr data-weekday="(\w+)">(.*?)</tr>', page.text, re.S)
            for hour, a, d in re.findall(r'data-hour="(\d+)">(\d+)/(\d+)<', row)
        }
        assert cells == expected


def _timed_branch_log(data_dir: Path, day: date) -> list[Outgoing]:
    """A branch (Asia/Jakarta) whose tickets cross hours, on a clock the test moves (local times in comments): A made
    09:50 and done 09:58; B made 09:55 and done 10:10; C made 10:20 and done 11:40."""
    seed_demo(data_dir, msgspec.structs.replace(demo_config(), branch_id=TIMED_BRANCH), users=[])
    now = [datetime.combine(day, dt_time(2, 50), tzinfo=UTC)]
    service = QueueService(data_dir, clock=lambda: now[0])
    service.start()

    def at(hh: int, mm: int, command: Any) -> Any:
        now[0] = datetime.combine(day, dt_time(hh - 7, mm), tzinfo=UTC)  # local (UTC+7) -> UTC
        return service.execute(command).response

    try:
        at(9, 50, c.Enqueue(service_id="teller"))
        at(9, 55, c.Enqueue(service_id="teller"))
        for called_at, done_at in (((9, 56), (9, 58)), ((10, 0), (10, 10))):
            ticket = at(*called_at, c.CallNext(counter_id="1"))["ticket"]["ticket_id"]
            at(*called_at, c.Start(ticket_id=ticket, counter_id="1"))
            at(*done_at, c.Complete(ticket_id=ticket, counter_id="1"))
        at(10, 20, c.Enqueue(service_id="teller"))
        ticket = at(11, 30, c.CallNext(counter_id="1"))["ticket"]["ticket_id"]
        at(11, 30, c.Start(ticket_id=ticket, counter_id="1"))
        at(11, 40, c.Complete(ticket_id=ticket, counter_id="1"))
        return list(service.read(lambda conn: read_outgoing(conn, 0, 1_000_000)))
    finally:
        service.stop()


TIMED_BRANCH = "bdg-dago"


def test_heat_map_counts_done_in_the_hour_of_completion(store_url: str, tmp_path: Path) -> None:
    """Done in an hour = completed in that hour, not done among the tickets created in it (a ticket made at 09:55 and
    done at 10:10 counts at 10:00); the hourly arrivals table's done column is the heat map's column sums."""
    day = (_NOW - timedelta(days=2)).date()
    log = _timed_branch_log(tmp_path / "edge", day)
    engine = create_store_engine(store_url)
    assert not apply_batch(engine, [Incoming(subject(TIMED_BRANCH), o.payload) for o in log]).problems
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[day.weekday()]
    params = {"lang": "en", "from": day.isoformat(), "to": day.isoformat(), "branch_id": TIMED_BRANCH}
    try:
        with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
            page = client.get("/analytics", params=params, headers=auth("ana"))
    finally:
        engine.dispose()
    assert page.status_code == 200, page.text
    cells = {
        (day_name, int(hour)): (int(a), int(d))
        for day_name, row in re.findall(r'<tr data-weekday="(\w+)">(.*?)</tr>', page.text, re.S)
        for hour, a, d in re.findall(r'data-hour="(\d+)">(\d+)/(\d+)<', row)
    }
    assert cells == {(weekday, 9): (2, 1), (weekday, 10): (1, 1), (weekday, 11): (0, 1)}
    table = re.search(r'<table id="arrivals-table">(.*?)</table>', page.text, re.S)
    assert table is not None
    hourly = re.findall(r'<td>(\d\d):00</td><td class="num">(\d+)</td><td class="num">(\d+)</td>', table[1])
    assert [(int(h), int(n), int(d)) for h, n, d in hourly] == [(9, 2, 1), (10, 1, 1), (11, 0, 1)]
