"""Anomaly alerts (US-ANALYT-007) on synthetic series with a fixed clock: one alert on a spike, none on noise,
hysteresis between the open and clear thresholds, cleared, and quiet during the cool-down; against a real store
(SQLite and PostgreSQL) the check reads the window from the facts and the baseline from the rollups' histograms,
writes one alert row, e-mails it once to the tenant's alert recipients through a real SMTP server, and two replicas
checking together send it once."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.analytics.anomalies import INTERVAL_ENV, AlertState, AnomalyChecker, Policy, decide, open_alerts
from cloud.analytics.schedules import NewSchedule, create
from cloud.analytics.settings import set_alert_recipients
from cloud.analytics.tables import WAIT_BUCKETS, alerts, branch_settings, facts, rollups
from cloud.hq_users import upsert_user
from cloud.notify.tables import providers
from cloud.store import create_store_engine, metadata, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from sync.kpi_stats import bucket_of
from tests.cloud.notify.smtp_server import SmtpServer

POLICY = Policy()  # x1.5 to open, x1.2 to clear, 300 s floor, 5 waits at least, 1 h cool-down
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Jakarta
TENANT, BRANCH = "acme", "jkt-sudirman"
PASSWORD = "correct horse battery staple 42"


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def run(series: Sequence[tuple[float | None, int]], baseline: float = 400.0) -> tuple[list[str], list[bool]]:
    """Feed one (p90, sample) per minute from T0; what happened each minute and whether it was open after it."""
    state, events, opened = AlertState(), [], []
    for minute, (p90, sample) in enumerate(series):
        state, what = decide(state, p90, sample, baseline, T0 + timedelta(minutes=minute), POLICY)
        events.append(what or "")
        opened.append(state.open)
    return events, opened


def test_noise_never_fires() -> None:
    """Four hours of waits wandering around the usual 400 s (p90 up to 590 s, under 1.5 x 400 = 600 s)."""
    rng = random.Random(7)
    events, _ = run([(rng.uniform(250, 590), rng.randint(5, 30)) for _ in range(240)])
    assert not any(events)


def test_a_spike_fires_once_holds_in_the_band_clears_and_cools_down() -> None:
    rng = random.Random(11)
    noise = [(rng.uniform(300, 550), 12) for _ in range(60)]
    spike = [(rng.uniform(700, 1200), 15) for _ in range(20)]
    band = [(rng.uniform(490, 590), 15) for _ in range(15)]  # between clear (480 s) and open (600 s): stays open
    calm = [(350.0, 10)] * 5
    again = [(900.0, 12)] * 30  # a second spike within the hour after clearing: quiet; after it: fires
    events, opened = run(noise + spike + band + calm + again + [(900.0, 12)] * 40)
    assert events.count("opened") == 2
    first = events.index("opened")
    assert first == 60
    assert all(opened[60:95])
    assert events.index("cleared") == 95
    second = events.index("opened", first + 1)
    assert second == 95 + 60  # exactly when the cool-down ends
    assert events.count("cleared") == 1


def test_a_small_sample_or_no_baseline_or_under_the_floor_does_not_fire() -> None:
    assert decide(AlertState(), 2000.0, 4, 400.0, T0, POLICY) == (AlertState(), None)
    assert decide(AlertState(), 2000.0, 40, None, T0, POLICY) == (AlertState(), None)
    assert decide(AlertState(), 250.0, 40, 20.0, T0, POLICY) == (AlertState(), None)  # 12 x usual, under 5 min
    assert decide(AlertState(), 301.0, 40, 20.0, T0, POLICY)[1] == "opened"


# ---- against a store --------------------------------------------------------------------------------------------


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp").start()
    try:
        yield server
    finally:
        server.stop()


def fact(n: int, called: datetime, wait: float) -> dict[str, Any]:
    """A called ticket's fact row (any other required column, e.g. a cached CSV line, left empty)."""
    created = called - timedelta(seconds=wait)
    filler = {c.name: "" for c in facts.columns if not c.nullable and isinstance(c.type, sa.String | sa.Text)}
    return filler | {"tenant_id": TENANT, "branch_id": BRANCH, "ticket_id": f"t{n}", "ticket_number": f"A{n:03d}",
            "service_id": "teller", "counter_id": "1", "priority": 0, "channel": "kiosk", "status": "called",
            "created_at": created.isoformat(), "called_at": called.isoformat(), "wait_seconds": wait,
            "abandoned": False, "transferred": False, "returned": False, "local_date": "2026-12-07", "local_hour": 9,
            "seen_at": created.isoformat(), "timezone": "Asia/Jakarta"}  # fmt: skip


def usual_mondays(conn: sa.Connection) -> None:
    """Four previous Mondays at 09:00: 40 waits each of 3 to 7 minutes (p90 about 7 min)."""
    zero = {c.name: 0 for c in rollups.columns if not c.primary_key and isinstance(c.type, sa.Integer | sa.Float)}
    for week in range(1, 5):
        hist = [0] * len(WAIT_BUCKETS)
        for i in range(40):
            hist[bucket_of(180 + i * 6)] += 1
        day = (datetime(2026, 12, 7) - timedelta(weeks=week)).date().isoformat()
        key = {"tenant_id": TENANT, "branch_id": BRANCH, "local_date": day, "local_hour": 9, "service_id": "teller",
               "priority": 0, "channel": "kiosk", "counter_id": "1"}  # fmt: skip
        conn.execute(sa.insert(rollups).values({**zero, **key, **dict(zip(WAIT_BUCKETS, hist, strict=True))}))


def test_the_check_alerts_once_by_mail_with_two_replicas_and_clears(
    store_url: str, tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")  # the dashboard's own hub runs no check on the real clock
    engine = create_store_engine(store_url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(branch_settings).values(tenant_id=TENANT, branch_id=BRANCH, timezone="Asia/Jakarta",
                                                       sla_minutes=json.dumps({"teller": 10})))  # fmt: skip
        mail = {"tenant_id": TENANT, "channel": "email", "provider": "smtp", "settings": json.dumps(smtp.settings),
                "updated_at": utcnow_iso()}  # fmt: skip
        conn.execute(sa.insert(providers).values(**mail))
        usual_mondays(conn)
        # The last 30 minutes: 10 waits of 20 to 29 minutes.
        conn.execute(sa.insert(facts), [fact(i, T0 - timedelta(minutes=i * 2), 1200 + i * 60) for i in range(10)])
    # The tenant's own alert recipients get it; its scheduled reports' addresses do not.
    create(engine, NewSchedule(tenant=TENANT, branch_id=BRANCH, name="Harian", cron="0 7 * * *",
                               timezone="Asia/Jakarta", recipients=("reports@bank.example",)), "ana", T0)  # fmt: skip
    set_alert_recipients(engine, TENANT, ("ops@bank.example",), "ana")
    now = {"at": T0}
    other = create_store_engine(store_url)
    replicas = [AnomalyChecker(e, clock=lambda: now["at"]) for e in (engine, other)]

    async def both() -> list[int]:
        return [len(x) for x in await asyncio.gather(*(r.run_once() for r in replicas))]

    assert sorted(asyncio.run(both())) == [0, 1]
    assert asyncio.run(both()) == [0, 0]  # still open: no second e-mail
    received = smtp.wait_for(1)
    assert len(received) == 1
    assert received[0].recipients == ["ops@bank.example"]
    assert "teller" in str(received[0].message["Subject"])
    with engine.connect() as conn:
        shown = open_alerts(conn, frozenset({TENANT}))
        assert open_alerts(conn, frozenset({"globex"})) == []
    assert [(a["branch_id"], a["service_id"]) for a in shown] == [(BRANCH, "teller")]
    assert shown[0]["p90_seconds"] > 1500
    assert 300 < shown[0]["baseline_seconds"] < 600
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "gus", PASSWORD, "tenant_admin", ["globex"])
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        for lang, title in (("id", "antrean lebih lambat"), ("en", "slower than usual")):
            page = client.get("/analytics", params={"lang": lang}, headers=basic("ana"))
            assert page.status_code == 200
            assert title in page.text
            assert "09:00 WIB" in page.text  # opened at 02:00 UTC, shown in the branch's zone
        assert "slower than usual" not in client.get("/analytics", params={"lang": "en"}, headers=basic("gus")).text
    now["at"] = T0 + timedelta(minutes=45)  # nobody called since: nothing measured, the alert clears
    assert asyncio.run(both()) == [0, 0]
    with engine.connect() as conn:
        assert conn.execute(sa.select(alerts.c.state)).scalar_one() == "cleared"
    assert sum(r.sent for r in replicas) == 1
    engine.dispose()
    other.dispose()
