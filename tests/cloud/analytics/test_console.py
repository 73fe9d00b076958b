"""The analytics console pages in-process (SQLite hub): the tenant's PII switch and alert recipients, scheduled reports
add/edit/delete, BI tokens issue/list/revoke — validated, audited, and scoped (another tenant's is 404)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.tables import hub_audit
from cloud.analytics import schedules
from cloud.analytics.anomalies import INTERVAL_ENV, recipients
from cloud.analytics.tables import schedules as schedule_rows
from cloud.analytics.web import contacts_shown
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine, register_branch, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.identity.conftest import csrf_of, sign_in

PASSWORD = "correct horse battery staple 42"
TENANT = "acme"


def as_user(client: TestClient[Any], username: str) -> None:
    """Sign in through the form, as a browser does; unsafe requests carry the session's CSRF token."""
    client.headers.pop("X-CSRFToken", None)
    client.cookies.clear()
    assert sign_in(client, username, PASSWORD).status_code == 303
    client.headers["X-CSRFToken"] = csrf_of(client)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient[Any], sa.Engine]]:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, "jkt-01")
        register_branch(conn, "globex", "sby-01")
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "gus", PASSWORD, "tenant_admin", ["globex"])
    with TestClient(app=create_app(CloudSettings(db_url=url)), base_url="http://hub.test") as client:
        as_user(client, "ana")
        yield client, engine
    engine.dispose()


def audited(engine: sa.Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(hub_audit).where(hub_audit.c.action == action)))


def test_pii_switch_and_alert_recipients(hub: tuple[TestClient[Any], sa.Engine]) -> None:
    client, engine = hub
    for lang, words in (("id", "Penerima peringatan anomali"), ("en", "Anomaly alert recipients")):
        page = client.get("/analytics/settings", params={"lang": lang})
        assert page.status_code == 200
        assert words in page.text
        assert 'name="show_contacts" checked' in page.text  # contacts shown (masked) by default
    as_user(client, "gus")
    assert client.get("/analytics/settings", params={"tenant": TENANT}).status_code == 404
    as_user(client, "ana")
    token = client.headers.pop("X-CSRFToken")
    assert client.post("/analytics/settings/pii?tenant=acme", data={}).status_code == 403  # no CSRF token
    client.headers["X-CSRFToken"] = token

    r = client.post("/analytics/settings/pii?tenant=acme", data={}, follow_redirects=False)
    assert r.status_code == 303
    assert not contacts_shown(engine, TENANT)
    assert contacts_shown(engine, "globex")
    assert [a.target for a in audited(engine, "analytics.pii")] == ["show_contacts"]

    bad = client.post("/analytics/settings/recipients?tenant=acme",
                      data={"alert_recipients": "ops@bank.example\nnot-an-address"})  # fmt: skip
    assert bad.status_code == 400
    assert "not-an-address" in bad.text  # shown back in the form, with why
    assert 'aria-invalid="true"' in bad.text
    with engine.connect() as conn:
        assert recipients(conn, TENANT) == []
    ok = client.post("/analytics/settings/recipients?tenant=acme", follow_redirects=False,
                     data={"alert_recipients": "ops@bank.example, Ops@Bank.example; lead@bank.example"})  # fmt: skip
    assert ok.status_code == 303
    with engine.connect() as conn:
        assert recipients(conn, TENANT) == ["ops@bank.example", "lead@bank.example"]
        assert recipients(conn, "globex") == []
    assert "lead@bank.example" in client.get("/analytics/settings").text
    [entry] = audited(engine, "analytics.alert_recipients")
    assert entry.actor == "ana"
    assert "lead@bank.example" in entry.after


def test_scheduled_reports_add_edit_delete(hub: tuple[TestClient[Any], sa.Engine]) -> None:
    client, engine = hub
    form = {"name": "Harian", "branch_id": "jkt-01", "cron": "0 7 * * 1-5", "days": "1",
            "recipients": "ops@bank.example", "lang": "id"}  # fmt: skip
    r = client.post("/analytics/schedules?tenant=acme", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    [row] = schedules.listed(engine, frozenset({TENANT}))
    sid, first_run = row["schedule_id"], row["next_run_at"]
    page = client.get("/analytics/schedules", params={"lang": "en"})
    assert f'data-schedule="{sid}"' in page.text
    assert "Scheduled reports" in page.text
    bad = client.post("/analytics/schedules?tenant=acme", data={**form, "cron": "every day"})
    assert bad.status_code == 400
    assert "cron:" in bad.text
    assert client.post("/analytics/schedules?tenant=acme", data={**form, "branch_id": "sby-01"},
                       ).status_code == 400  # another tenant's branch  # fmt: skip

    edit = client.get(f"/analytics/schedules/{sid}")
    assert edit.status_code == 200
    assert 'value="0 7 * * 1-5"' in edit.text
    changed = {**form, "cron": "30 6 * * 1", "recipients": "a@bank.example\nb@bank.example", "days": "7"}
    r = client.post(f"/analytics/schedules/{sid}", data=changed, follow_redirects=False)
    assert r.status_code == 303
    saved = schedules.get(engine, sid, None)
    assert saved is not None
    assert (saved["cron"], saved["days"], saved["active"]) == ("30 6 * * 1", 7, False)  # an unticked box: paused
    assert saved["recipients"] == ["a@bank.example", "b@bank.example"]
    assert saved["next_run_at"] != first_run
    as_user(client, "gus")
    assert client.get(f"/analytics/schedules/{sid}").status_code == 404
    assert client.post(f"/analytics/schedules/{sid}/delete").status_code == 404
    as_user(client, "ana")
    r = client.post(f"/analytics/schedules/{sid}/delete", follow_redirects=False)
    assert r.status_code == 303
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schedule_rows)).scalar_one() == 0
    assert [len(audited(engine, f"report_schedule.{a}")) for a in ("create", "update", "delete")] == [1, 1, 1]


def test_bi_tokens_issue_once_list_and_revoke(hub: tuple[TestClient[Any], sa.Engine]) -> None:
    client, _ = hub
    issued = client.post("/analytics/bi-tokens?tenant=acme&lang=en",
                         data={"name": "Power BI", "datasets": ["tickets"], "days": "30"})  # fmt: skip
    assert issued.status_code == 201
    assert "shown only once" in issued.text
    raw = re.search(r'value="(qms_bi_[0-9a-f]+_[A-Za-z0-9_-]+)"', issued.text)
    assert raw is not None
    token = raw[1]
    assert client.get("/api/v1/bi/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/bi/kpis", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    listed = client.get("/analytics/bi-tokens")
    token_id = token.split("_")[2]
    assert f'data-token="{token_id}" data-state="valid"' in listed.text
    assert token not in listed.text  # never again
    bad = client.post("/analytics/bi-tokens?tenant=acme", data={"name": "x", "days": "30"})
    assert bad.status_code == 400  # no dataset ticked
    as_user(client, "gus")
    assert client.post(f"/analytics/bi-tokens/{token_id}/revoke").status_code == 404
    assert client.get("/analytics/bi-tokens", params={"tenant": TENANT}).status_code == 404
    as_user(client, "ana")
    r = client.post(f"/analytics/bi-tokens/{token_id}/revoke", follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/bi/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert f'data-token="{token_id}" data-state="revoked"' in client.get("/analytics/bi-tokens").text
