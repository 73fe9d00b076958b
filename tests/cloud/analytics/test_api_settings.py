"""The analytics JSON API for a tenant's settings and scheduled reports (`/api/v1/analytics/{tenant}/…`): what it
writes the console pages show and what the pages write it answers; `reports.manage` like the pages (viewer and branch
manager 403), another tenant's 404, every refusal RFC 9457 problem+json (a bad field named, a malformed body never a
500), audited like the pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.admin.tables import hub_audit
from cloud.analytics import schedules
from cloud.analytics.anomalies import INTERVAL_ENV
from cloud.analytics.tables import branch_settings
from cloud.analytics.tables import schedules as schedule_rows
from cloud.hq_users import get_user, upsert_user
from cloud.identity.roles import MATRIX
from cloud.identity.tokens import issue
from cloud.store import create_store_engine, register_branch, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.identity.conftest import csrf_of, sign_in

PASSWORD = "correct horse battery staple 42"
TENANT = "acme"
API = "/api/v1/analytics"
PROBLEM = "application/problem+json"
GOOD = {"name": "Harian", "branch_id": "jkt-01", "cron": "0 7 * * 1-5", "recipients": ["ops@bank.example"],
        "days": 1, "lang": "id"}  # fmt: skip
ACCOUNTS = {  # username: (role, tenants, branches)
    "ana": ("tenant_admin", [TENANT], None),
    "gus": ("tenant_admin", ["globex"], None),
    "aud": ("auditor", [TENANT], None),
    "bob": ("branch_manager", [TENANT], [f"{TENANT}/jkt-01"]),
    "root": ("platform_admin", ["*"], None),
}


class Hub:
    """The in-process hub, its store and a Bearer API token per account (the API's write path for scripts)."""

    def __init__(self, client: TestClient[Any], engine: sa.Engine, tokens: dict[str, str]) -> None:
        self.client, self.engine, self.tokens = client, engine, tokens

    def api(self, method: str, path: str, user: str = "ana", **kwargs: Any) -> Any:
        """A call to the analytics API as `user`."""
        return self.client.request(method, API + path, headers={"Authorization": f"Bearer {self.tokens[user]}"},
                                   **kwargs)  # fmt: skip

    def as_page_user(self, username: str = "ana") -> None:
        """Sign in through the form, as a browser does (the pages' own path, with CSRF)."""
        self.client.cookies.clear()
        assert sign_in(self.client, username, PASSWORD).status_code == 303
        self.client.headers["X-CSRFToken"] = csrf_of(self.client)

    def audited(self, action: str) -> list[Any]:
        """The hub audit entries of `action`."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(hub_audit).where(hub_audit.c.action == action)))


def make_hub(url: str) -> Iterator[Hub]:
    """Two tenants (acme: jkt-01 in Jakarta, mks-01 in Makassar; globex: sby-01) and the accounts above."""
    engine = create_store_engine(url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, "jkt-01")
        register_branch(conn, TENANT, "mks-01")
        register_branch(conn, "globex", "sby-01")
    tokens = {}
    for name, (role, tenants, branches) in ACCOUNTS.items():
        upsert_user(engine, name, PASSWORD, role, tenants, branches)
        user = get_user(engine, name)
        assert user is not None
        tokens[name], _ = issue(engine, user, "script", sorted(MATRIX[role]), 1, datetime.now(UTC))
    with TestClient(app=create_app(CloudSettings(db_url=url)), base_url="http://hub.test") as client:
        yield Hub(client, engine, tokens)
    engine.dispose()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    yield from make_hub(f"sqlite:///{tmp_path / 'hub.sqlite3'}")


@pytest.fixture
def any_store_hub(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    yield from make_hub(store_url)


def refused(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 refusal (and the field it names); returns its body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["detail"]
    assert body["code"]
    if field is not None:
        assert body["field"] == field, body
        assert field in body["detail"]
    return body


def test_settings_written_by_the_api_show_on_the_page_and_back(hub: Hub) -> None:
    assert hub.api("GET", "/acme/settings").json() == {"tenant": TENANT, "show_contacts": True,
                                                       "alert_recipients": []}  # fmt: skip
    put = hub.api("PUT", "/acme/settings", json={"show_contacts": False,
                                                  "alert_recipients": ["ops@bank.example", "OPS@bank.example",
                                                                       "lead@bank.example"]})  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json() == {"tenant": TENANT, "show_contacts": False,
                          "alert_recipients": ["ops@bank.example", "lead@bank.example"]}  # fmt: skip
    [pii] = hub.audited("analytics.pii")
    [recipients] = hub.audited("analytics.alert_recipients")
    assert (pii.actor, pii.tenant_id, recipients.actor) == ("ana", TENANT, "ana")
    assert pii.source_ip
    assert "lead@bank.example" in recipients.after

    hub.as_page_user("ana")
    page = hub.client.get("/analytics/settings", params={"tenant": TENANT, "lang": "en"})
    assert 'name="show_contacts" checked' not in page.text
    assert "lead@bank.example" in page.text
    assert hub.client.post("/analytics/settings/pii?tenant=acme", data={"show_contacts": "on"},
                           follow_redirects=False).status_code == 303  # fmt: skip
    assert hub.client.post("/analytics/settings/recipients?tenant=acme", data={"alert_recipients": "x@bank.example"},
                           follow_redirects=False).status_code == 303  # fmt: skip
    assert hub.api("GET", "/acme/settings").json()["show_contacts"] is True
    assert hub.api("GET", "/acme/settings").json()["alert_recipients"] == ["x@bank.example"]

    # one field at a time; an empty list sends alerts to nobody; nothing changed is not audited again
    only = hub.api("PUT", "/acme/settings", json={"alert_recipients": []})
    assert only.json() == {"tenant": TENANT, "show_contacts": True, "alert_recipients": []}
    assert hub.api("PUT", "/acme/settings", json={}).status_code == 200
    assert len(hub.audited("analytics.alert_recipients")) == 3  # API, page, API
    assert hub.api("GET", "/globex/settings", user="gus").json()["alert_recipients"] == []  # its own row


def test_schedules_round_trip_between_the_api_and_the_pages(any_store_hub: Hub) -> None:
    hub = any_store_hub
    made = hub.api("POST", "/acme/schedules", json=GOOD)
    assert made.status_code == 201, made.text
    body = made.json()
    sid = body["schedule_id"]
    assert made.headers["location"] == f"{API}/acme/schedules/{sid}"
    assert (body["tenant"], body["branch_id"], body["timezone"], body["active"]) == (TENANT, "jkt-01",
                                                                                    "Asia/Jakarta", True)  # fmt: skip
    next_run = datetime.fromisoformat(body["next_run_at"])
    assert next_run.utcoffset() == timedelta(hours=7)  # shown in the branch's zone
    assert (next_run.hour, next_run.minute, next_run.weekday() < 5) == (7, 0, True)
    stored = schedules.get(hub.engine, sid, None)
    assert stored is not None
    assert datetime.fromisoformat(stored["next_run_at"]).utcoffset() == timedelta(0)  # stored in UTC
    assert datetime.fromisoformat(stored["next_run_at"]) == next_run
    assert hub.api("GET", f"/acme/schedules/{sid}").json() == body
    assert [s["schedule_id"] for s in hub.api("GET", "/acme/schedules").json()["schedules"]] == [sid]

    hub.as_page_user("ana")
    assert f'data-schedule="{sid}"' in hub.client.get("/analytics/schedules", params={"tenant": TENANT}).text
    edit = hub.client.get(f"/analytics/schedules/{sid}")
    assert 'value="0 7 * * 1-5"' in edit.text

    edited = {**GOOD, "cron": "30 6 * * 1", "days": 7, "recipients": ["a@bank.example", "b@bank.example"]}
    changed = hub.api("PUT", f"/acme/schedules/{sid}", json=edited)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["days"]) == ("30 6 * * 1", 7)
    assert 'value="30 6 * * 1"' in hub.client.get(f"/analytics/schedules/{sid}").text

    paused = hub.api("POST", f"/acme/schedules/{sid}/pause")
    assert paused.status_code == 200
    assert paused.json()["active"] is False
    assert hub.api("POST", f"/acme/schedules/{sid}/resume").json()["active"] is True

    form = {
        "name": "Dari halaman",
        "branch_id": "",
        "cron": "0 8 * * *",
        "days": "2",
        "recipients": "c@bank.example",
        "lang": "en",
    }  # fmt: skip  -- an unticked Active box: paused
    assert hub.client.post(f"/analytics/schedules/{sid}", data=form, follow_redirects=False).status_code == 303
    seen = hub.api("GET", f"/acme/schedules/{sid}").json()
    assert (seen["name"], seen["branch_id"], seen["cron"], seen["recipients"], seen["active"]) == (
        "Dari halaman", None, "0 8 * * *", ["c@bank.example"], False)  # fmt: skip

    assert hub.api("DELETE", f"/acme/schedules/{sid}").status_code == 204
    refused(hub.api("GET", f"/acme/schedules/{sid}"), 404)
    assert f'data-schedule="{sid}"' not in hub.client.get("/analytics/schedules", params={"tenant": TENANT}).text
    counts = [len(hub.audited(f"report_schedule.{a}")) for a in ("create", "update", "pause", "resume", "delete")]
    assert counts == [1, 2, 1, 1, 1]
    assert {e.actor for e in hub.audited("report_schedule.pause")} == {"ana"}


def test_a_branch_schedule_runs_in_that_branch_s_zone(hub: Hub) -> None:
    with transaction(hub.engine) as conn:
        conn.execute(sa.insert(branch_settings).values(tenant_id=TENANT, branch_id="mks-01", timezone="Asia/Makassar",
                                                       sla_minutes="{}"))  # fmt: skip
    made = hub.api("POST", "/acme/schedules", json={**GOOD, "branch_id": "mks-01"}).json()
    assert made["timezone"] == "Asia/Makassar"
    assert datetime.fromisoformat(made["next_run_at"]).utcoffset() == timedelta(hours=8)
    wide = hub.api("POST", "/acme/schedules", json={**GOOD, "branch_id": None}).json()  # tenant-wide: Jakarta
    assert (wide["branch_id"], wide["timezone"]) == (None, "Asia/Jakarta")


ROUTES = [
    ("GET", "/acme/settings", None), ("PUT", "/acme/settings", {"show_contacts": False}),
    ("GET", "/acme/schedules", None), ("POST", "/acme/schedules", GOOD),
    ("GET", "/acme/schedules/{sid}", None), ("PUT", "/acme/schedules/{sid}", GOOD),
    ("POST", "/acme/schedules/{sid}/pause", None), ("POST", "/acme/schedules/{sid}/resume", None),
    ("DELETE", "/acme/schedules/{sid}", None),
]  # fmt: skip


def test_roles_and_tenants_route_by_route(hub: Hub) -> None:
    """A viewer (auditor) and a branch manager lack reports.manage: 403 on every route, reads too (as the pages);
    another tenant's admin: 404 on every acme route, and for its own tenant with acme's schedule id; no credentials:
    401. All problem+json. Nothing changed by any of them."""
    sid = hub.api("POST", "/acme/schedules", json=GOOD).json()["schedule_id"]
    for method, path, body in ROUTES:
        route = path.format(sid=sid)
        for user in ("aud", "bob"):
            refused(hub.api(method, route, user=user, json=body), 403)
        refused(hub.api(method, route, user="gus", json=body), 404)
        if "{sid}" in path:  # acme's schedule id under gus's own tenant
            refused(hub.api(method, route.replace("/acme/", "/globex/"), user="gus", json=body), 404)
        refused(hub.client.request(method, API + route, json=body), 401)
    refused(hub.api("GET", f"/globex/schedules/{sid}", user="root"), 404)  # acme's id under globex
    refused(hub.api("GET", "/nobody/settings", user="root"), 404)  # no such tenant at the hub
    assert hub.api("GET", f"/acme/schedules/{sid}", user="root").status_code == 200
    [row] = schedules.listed(hub.engine, frozenset({TENANT}))
    assert (row["active"], row["cron"]) == (True, GOOD["cron"])
    assert hub.audited("analytics.pii") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "name": 5}, "name"),
        ({**GOOD, "days": "seven"}, "days"),
        ({**GOOD, "recipients": "ops@bank.example"}, "recipients"),
        ({**GOOD, "colour": "red"}, "colour"),
        ({k: v for k, v in GOOD.items() if k != "cron"}, "cron"),
        ({**GOOD, "branch_id": "sby-01"}, "branch_id"),  # another tenant's branch
        ({**GOOD, "branch_id": "nowhere"}, "branch_id"),
        ({**GOOD, "cron": "every day at seven"}, "cron"),
        ({**GOOD, "cron": "0 7 * *"}, "cron"),
        ({**GOOD, "cron": "0 25 * * *"}, "cron"),
        ({**GOOD, "cron": "0 0 31 2 *"}, "cron"),  # valid fields, never a day
        ({**GOOD, "recipients": []}, "recipients"),
        ({**GOOD, "recipients": ["not-an-address"]}, "recipients"),
        ({**GOOD, "recipients": ["a@bank.example, b@bank.example"]}, "recipients"),
        ({**GOOD, "recipients": [f"u{i}@bank.example" for i in range(21)]}, "recipients"),
        ({**GOOD, "days": 0}, "days"),
        ({**GOOD, "days": 2**70}, None),
        ({**GOOD, "lang": "fr"}, "lang"),
        ({**GOOD, "name": "   "}, "name"),
        ([GOOD], None),
        ("not json at all", None),
    ],
)
def test_bad_schedule_bodies_are_400_problems_naming_the_field(hub: Hub, body: Any, field: str | None) -> None:
    if isinstance(body, str):
        answer = hub.client.post(API + "/acme/schedules", content=body.encode(),
                                 headers={"Authorization": f"Bearer {hub.tokens['ana']}",
                                          "Content-Type": "application/json"})  # fmt: skip
    else:
        answer = hub.api("POST", "/acme/schedules", json=body)
    refused(answer, 400, field)
    sid = hub.api("POST", "/acme/schedules", json=GOOD).json()["schedule_id"]
    if not isinstance(body, str):
        refused(hub.api("PUT", f"/acme/schedules/{sid}", json=body), 400, field)
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schedule_rows)).scalar_one() == 1
    assert schedules.get(hub.engine, sid, None)["cron"] == GOOD["cron"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alert_recipients": ["ops@bank.example", "not-an-address"]}, "alert_recipients"),
        ({"alert_recipients": ["a@bank.example; b@bank.example"]}, "alert_recipients"),
        ({"alert_recipients": "ops@bank.example"}, "alert_recipients"),
        ({"alert_recipients": [f"u{i}@bank.example" for i in range(21)]}, "alert_recipients"),
        ({"show_contacts": "yes"}, "show_contacts"),
        ({"show_contacts": False, "alert_recipients": ["bad"]}, "alert_recipients"),  # neither is stored
        ({"pii": False}, "pii"),
        ([], None),
    ],
)
def test_bad_settings_bodies_are_400_problems_and_change_nothing(hub: Hub, body: Any, field: str | None) -> None:
    refused(hub.api("PUT", "/acme/settings", json=body), 400, field)
    assert hub.api("GET", "/acme/settings").json() == {"tenant": TENANT, "show_contacts": True,
                                                       "alert_recipients": []}  # fmt: skip
    assert hub.audited("analytics.pii") == []


def test_the_openapi_document_describes_the_routes_and_refusals(hub: Hub) -> None:
    doc = hub.client.get("/schema/openapi.json").json()
    paths = doc["paths"]
    assert set(paths[f"{API}/{{tenant}}/schedules/{{schedule_id}}"]) == {"get", "put", "delete"}
    create = paths[f"{API}/{{tenant}}/schedules"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScheduleFields")
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/Schedule")
    assert "application/problem+json" in create["responses"]["400"]["content"]
    assert set(doc["components"]["schemas"]["SettingsChange"]["properties"]) == {"show_contacts", "alert_recipients"}


def test_control_characters_and_a_nul_schedule_id_are_400(any_store_hub: Hub) -> None:
    """A NUL in a schedule's name or in its id in the path was a 500 on PostgreSQL (it refuses NUL in text); an
    address with a control character was stored as an alert recipient. A NUL anywhere in the path is refused at the
    hub's door (cloud/ops/web.py) before the route runs."""
    hub = any_store_hub
    for name in ("Harian\x00", "Harian\x1b[2J"):
        refused(hub.api("POST", "/acme/schedules", json={**GOOD, "name": name}), 400, "name")
    refused(hub.api("POST", "/acme/schedules", json={**GOOD, "recipients": ["ops\x00@bank.example"]}), 400,
            "recipients")  # fmt: skip
    refused(hub.api("PUT", "/acme/settings", json={"alert_recipients": ["ops\x00@bank.example"]}), 400,
            "alert_recipients")  # fmt: skip
    for method, suffix in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume")):
        body = {"json": GOOD} if method == "PUT" else {}
        refused(hub.api(method, f"/acme/schedules/ab%00cd{suffix}", **body), 400)
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schedule_rows)).scalar_one() == 0
