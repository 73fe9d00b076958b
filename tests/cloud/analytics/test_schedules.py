"""Scheduled reports: delivered at the due time (the clock is injected) to a real SMTP server (aiosmtpd, STARTTLS),
ONCE although two hub replicas (two schedulers, two engines on one store) run at the same moment; the e-mail carries
the KPI summary and the ticket CSV (contract header, `;`); nothing is sent before the due time; bad input is refused."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.analytics.facts import load_settings
from cloud.analytics.schedules import NewSchedule, ReportScheduler, ScheduleInvalid, create, next_run
from cloud.analytics.tables import facts
from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.notify.tables import providers
from cloud.store import create_store_engine, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from sync import kpi
from tests.cloud.branch_events import TENANT, make_branch_events, subject
from tests.cloud.notify.smtp_server import SmtpServer

BRANCH = "jkt-sudirman"
PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP relay (STARTTLS, AUTH) on a free port."""
    server = SmtpServer(tmp_path / "smtp").start()
    try:
        yield server
    finally:
        server.stop()


def test_a_due_report_is_mailed_once_by_two_replicas(store_url: str, tmp_path: Path, smtp: SmtpServer) -> None:
    """Two replicas wake at the due time together: one e-mail per recipient, with the summary and the CSV."""
    engine = create_store_engine(store_url)
    assert not apply_batch(
        engine, [Incoming(subject(), o.payload) for o in make_branch_events(tmp_path / "e")]
    ).problems
    mail = {
        "tenant_id": TENANT,
        "channel": "email",
        "provider": "smtp",
        "settings": json.dumps(smtp.settings),
        "updated_at": utcnow_iso(),
    }
    with engine.begin() as conn:
        conn.execute(sa.insert(providers).values(**mail))
        day = conn.execute(sa.select(sa.func.min(facts.c.local_date))).scalar_one()
        zone = load_settings(conn, TENANT, BRANCH).timezone
    # Created the evening of the tickets' day; due at 07:00 the next morning, branch time.
    evening = datetime.fromisoformat(f"{day}T20:00:00").replace(tzinfo=kpi.zone(zone))
    due = next_run("0 7 * * *", zone, evening)
    assert (
        due.astimezone(kpi.zone(zone))
        .isoformat()
        .startswith((datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat() + "T07:00:00")
    )
    create(engine, NewSchedule(tenant=TENANT, branch_id=BRANCH, name="Harian", cron="0 7 * * *", timezone=zone,
                               recipients=("manager@bank.example",)), "ana", evening)  # fmt: skip
    now = {"at": due - timedelta(minutes=1)}
    other = create_store_engine(store_url)
    replicas = [ReportScheduler(engine, clock=lambda: now["at"]), ReportScheduler(other, clock=lambda: now["at"])]

    async def both() -> list[int]:
        return list(await asyncio.gather(*(r.run_due() for r in replicas)))

    assert asyncio.run(both()) == [0, 0]  # a minute early: nothing
    now["at"] = due + timedelta(seconds=5)
    assert sorted(asyncio.run(both())) == [0, 1]
    assert asyncio.run(both()) == [0, 0]  # the next run is tomorrow
    received = smtp.wait_for(1)
    assert len(received) == 1
    message = received[0].message
    assert received[0].recipients == ["manager@bank.example"]
    assert day in str(message["Subject"])
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "wait_p90_s" in html.get_content()
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1
    csv_text = attachments[0].get_content()
    csv_text = csv_text.decode() if isinstance(csv_text, bytes) else csv_text
    assert csv_text.splitlines()[0] == ";".join(kpi.CSV_HEADER)
    assert len(csv_text.splitlines()) == 1 + 20
    engine.dispose()
    other.dispose()


@pytest.mark.parametrize(
    "changes",
    [{"cron": "every day"}, {"cron": "0 7 * *"}, {"recipients": ()}, {"recipients": ("not-an-address",)},
     {"recipients": ("a@b.c, d@e.f",)}, {"days": 400}, {"lang": "fr"}, {"timezone": "Mars/Base"}, {"name": ""}],
)  # fmt: skip
def test_bad_schedules_are_refused_naming_the_field(store_url: str, changes: dict[str, Any]) -> None:
    """Every malformed field is refused with its name, and nothing is stored."""
    engine = create_store_engine(store_url)
    good: dict[str, Any] = {
        "tenant": TENANT,
        "name": "Mingguan",
        "cron": "0 7 * * 1",
        "recipients": ("a@bank.example",),
    }
    with pytest.raises(ScheduleInvalid) as refused:
        create(engine, NewSchedule(**{**good, **changes}), "ana", datetime.now(UTC))
    assert refused.value.field in changes
    create(engine, NewSchedule(**good), "ana", datetime.now(UTC))
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    engine.dispose()
    headers = {"Authorization": "Basic " + base64.b64encode(f"ana:{PASSWORD}".encode()).decode()}
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        listed = client.get("/api/v1/reports/schedules", headers=headers).json()["schedules"]
    assert [s["name"] for s in listed] == ["Mingguan"]
    assert datetime.fromisoformat(listed[0]["next_run_at"]) > datetime.now(UTC)
