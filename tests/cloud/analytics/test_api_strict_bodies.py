"""The analytics JSON API decodes its bodies strictly (QA): a number given as a string, a boolean given as a number
and a key given twice are 400 problems naming the field, and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloud.analytics import schedules
from cloud.analytics.anomalies import INTERVAL_ENV
from cloud.analytics.tables import schedules as schedule_rows
from tests.cloud.analytics.test_api_settings import API, GOOD, TENANT, Hub, make_hub, refused


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    yield from make_hub(f"sqlite:///{tmp_path / 'hub.sqlite3'}")


def raw(hub: Hub, method: str, path: str, body: str) -> Any:
    """A call with the body exactly as written (duplicated keys survive)."""
    return hub.client.request(method, API + path, content=body.encode(),
                              headers={"Authorization": f"Bearer {hub.tokens['ana']}",
                                       "Content-Type": "application/json"})  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"show_contacts": 0}', "show_contacts"),
        ('{"show_contacts": "false"}', "show_contacts"),
        ('{"show_contacts": true, "show_contacts": false}', "show_contacts"),
    ],
)
def test_settings_with_a_wrong_type_or_a_key_twice_are_refused(hub: Hub, body: str, field: str) -> None:
    refused(raw(hub, "PUT", f"/{TENANT}/settings", body), 400, field)
    assert hub.api("GET", f"/{TENANT}/settings").json()["show_contacts"] is True
    assert hub.audited("analytics.pii") == []


def _body(**changes: Any) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(days="7"), "days"),
        (_body(days=7.0), "days"),
        (_body(active=1), "active"),
        (_body(active="true"), "active"),
        (_body()[:-1] + ', "days": 7}', "days"),
        (_body()[:-1] + ', "cron": "* * * * *"}', "cron"),
    ],
)
def test_schedules_with_a_wrong_type_or_a_key_twice_are_refused(hub: Hub, body: str, field: str) -> None:
    refused(raw(hub, "POST", f"/{TENANT}/schedules", body), 400, field)
    sid = hub.api("POST", f"/{TENANT}/schedules", json=GOOD).json()["schedule_id"]
    refused(raw(hub, "PUT", f"/{TENANT}/schedules/{sid}", body), 400, field)
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schedule_rows)).scalar_one() == 1
    stored = schedules.get(hub.engine, sid, None)
    assert stored is not None
    assert (stored["cron"], stored["days"], bool(stored["active"])) == (GOOD["cron"], GOOD["days"], True)


def test_a_strict_body_of_the_right_types_is_still_accepted(hub: Hub) -> None:
    answer = raw(hub, "PUT", f"/{TENANT}/settings", '{"show_contacts": false, "alert_recipients": ["a@bank.example"]}')
    assert answer.status_code == 200, answer.text
    assert answer.json()["show_contacts"] is False
    created = raw(hub, "POST", f"/{TENANT}/schedules", _body(days=7, active=False))
    assert created.status_code == 201, created.text
    assert (created.json()["days"], created.json()["active"]) == (7, False)
