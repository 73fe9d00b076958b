"""The staff web app in process: sessions, CSRF, role gating, desk actions, interventions, admin edits, audit.

The browser-level behaviour (live updates, keyboard, accessibility) is in tests/e2e/staff/.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from edge import audit as audit_log
from edge.audit import AuditEntry
from edge.auth import LOGIN_MAX_FAILURES
from edge.web.staff.session import COOKIE
from tests.edge.web.conftest import Api
from tests.support.appliance import event_rows, free_port

FETCH = {"x-requested-with": "fetch"}


def audit_rows(data_dir: Path, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Audit rows read with a separate connection."""
    conn = sqlite3.connect(f"file:{data_dir / 'qms.sqlite3'}?mode=ro", uri=True)
    try:
        sql = f"SELECT actor, action, target, detail, ip, user_agent, seq FROM audit WHERE {where} ORDER BY id"  # noqa: S608
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Staff:
    """A browser-like staff session over the in-process TestClient."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.csrf = ""

    def login(self, username: str, password: str = "demo") -> httpx.Response:  # noqa: S107 - demo password
        r = self.client.post("/staff/login", data={"username": username, "password": password}, follow_redirects=False)
        if r.status_code == 303:
            self.refresh_csrf()
        return r

    def refresh_csrf(self) -> None:
        page = self.client.get("/staff/")
        found = re.search(r'name="csrf-token" content="([0-9a-f]*)"', page.text)
        self.csrf = found[1] if found else ""

    def act(self, counter: str, action: str, **form: str) -> httpx.Response:
        data = {"action": action, "csrf_token": self.csrf, **form}
        return self.client.post(f"/staff/counter/{counter}/act", data=data, headers=FETCH)

    def intervene(self, action: str, **form: str) -> httpx.Response:
        data = {"action": action, "csrf_token": self.csrf, **form}
        return self.client.post("/staff/supervisor/act", data=data, headers=FETCH)


@pytest.fixture
def staff(client: TestClient[Any]) -> Staff:
    return Staff(client)


# ---- sign-in, session, CSRF -------------------------------------------------------------------------------------


def test_login_sets_a_hardened_session_cookie_and_lands_on_the_role_page(staff: Staff, data_dir: Path) -> None:
    r = staff.login("agent1")
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/counter"
    cookie = r.headers["set-cookie"].lower()
    assert f"{COOKIE}=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/staff" in cookie
    page = staff.client.get("/staff/counter/1")
    assert page.status_code == 200
    assert 'lang="id"' in page.text
    assert "Panggil berikutnya" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    # opening the desk signs the agent in to the counter: it opens (issue 11)
    assert [row[:2] for row in audit_rows(data_dir)] == [("agent1", "login"), ("agent1", "presence")]


def test_wrong_password_is_refused_audited_and_throttled(staff: Staff, data_dir: Path) -> None:
    for _ in range(LOGIN_MAX_FAILURES):
        r = staff.login("agent1", "wrong")
        assert r.status_code == 401
        assert "Nama pengguna atau kata sandi salah" in r.text
    r = staff.login("agent1", "demo")
    assert r.status_code == 429
    assert "Terlalu banyak percobaan" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert [row[1] for row in audit_rows(data_dir)] == ["login_failed"] * LOGIN_MAX_FAILURES


def test_pages_need_a_session(client: TestClient[Any]) -> None:
    r = client.get("/staff/counter/1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/login?next=/staff/counter/1"
    assert client.get("/staff/counter/1/live").status_code == 401
    assert client.get("/staff/events").status_code == 401


def test_a_forged_or_missing_csrf_token_changes_nothing(staff: Staff, api: Api) -> None:
    staff.login("agent1")
    api.enqueue("teller")
    staff.csrf = "0" * 64
    r = staff.act("1", "call_next")
    assert r.status_code == 403
    assert api.snapshot()["now_calling"] == []
    r = staff.client.post("/staff/counter/1/act", data={"action": "call_next"}, headers=FETCH)
    assert r.status_code == 403


def test_cross_site_login_post_is_refused(client: TestClient[Any]) -> None:
    r = client.post("/staff/login", data={"username": "agent1", "password": "demo"},
                    headers={"origin": "http://evil.example"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_logout_revokes_the_session_even_for_a_copied_cookie(staff: Staff, client: TestClient[Any]) -> None:
    staff.login("agent1")
    stolen = client.cookies.get(COOKIE)
    r = client.post("/staff/logout", data={"csrf_token": staff.csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set(COOKIE, stolen or "", path="/staff")
    assert client.get("/staff/counter/1", follow_redirects=False).status_code == 303


def test_open_redirect_after_login_is_not_followed(client: TestClient[Any]) -> None:
    r = client.post("/staff/login", data={"username": "agent1", "password": "demo", "next": "https://evil.example/"},
                    follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/staff/counter"


# ---- role gating -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/staff/admin/", "/staff/admin/users", "/staff/admin/audit", "/staff/supervisor/"])
def test_agents_cannot_reach_configuration_or_supervision(staff: Staff, path: str) -> None:
    staff.login("agent1")
    r = staff.client.get(path)
    assert r.status_code == 403
    assert "Tidak diizinkan" in r.text


def test_an_agent_cannot_open_or_act_for_another_counter(staff: Staff, api: Api) -> None:
    staff.login("agent1")  # counters 1 and 2
    assert staff.client.get("/staff/counter/3").status_code == 403
    api.enqueue("teller")
    r = staff.act("3", "call_next")
    assert r.status_code == 403
    assert r.json()["message"] == "Loket ini bukan milik Anda."
    assert api.snapshot()["now_calling"] == []


def test_an_agent_only_lists_their_counters_and_services(staff: Staff, api: Api) -> None:
    api.enqueue("teller")
    api.enqueue("loan")
    staff.login("agent1")
    page = staff.client.get("/staff/counter/1").text
    assert "Loket 1" in page
    assert "Loket 2" in page
    assert "Meja CS 4" not in page
    assert "A001" in page
    assert "C001" not in page


def test_supervisors_see_the_floor_but_not_configuration(staff: Staff) -> None:
    staff.login("supervisor")
    assert staff.client.get("/staff/supervisor/").status_code == 200
    assert staff.client.get("/staff/admin/").status_code == 403


def test_supervisors_see_kiosk_printer_trouble_on_the_floor(staff: Staff, api: Api) -> None:
    doc, etag = api.config()
    doc["kiosk"]["printer"] = {"host": "127.0.0.1", "port": free_port(), "timeout_seconds": 1}  # nothing listens
    doc["kiosk"]["printers"] = {"kiosk-lobby": {"device": "/dev/usb/lp7"}}
    assert api.put("/config", doc, headers={"If-Match": etag}).status_code == 200
    staff.login("supervisor")
    floor = staff.client.get("/staff/supervisor/live").text
    assert 'data-printer="kiosk-lobby" data-ok="unknown"' in floor  # configured, nothing printed yet
    assert "/dev/usb/lp7" in floor
    r = api.client.post("/kiosk/api/tickets", json={"service_id": "teller", "request_id": "p-1"},
                        headers=api.h("admin"))  # fmt: skip
    assert r.json()["print"]["error"] == "offline"
    floor = staff.client.get("/staff/supervisor/live").text
    assert 'data-printer="admin" data-ok="false"' in floor
    assert floor.index('data-printer="admin"') < floor.index('data-printer="kiosk-lobby"')  # trouble first
    assert "Printer kiosk" in floor
    assert "Tiket tetap diterbitkan" in floor


# ---- desk ------------------------------------------------------------------------------------------------------


def test_call_next_on_an_empty_queue_is_a_calm_message(staff: Staff) -> None:
    staff.login("agent1")
    r = staff.act("1", "call_next")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "message": "Tidak ada antrean. Semua sudah terlayani.", "retry": False}
    assert "Tidak ada antrean" in staff.client.get("/staff/counter/1/live").text


def test_desk_flow_call_start_complete_offers_only_allowed_actions(staff: Staff, api: Api) -> None:
    ticket = api.enqueue("teller")
    staff.login("agent1")
    assert staff.act("1", "call_next").json()["ok"] is True
    live = staff.client.get("/staff/counter/1/live").text
    assert 'data-ticket="A001" data-status="called"' in live
    assert 'value="start"' in live
    assert 'value="complete"' not in live
    assert staff.act("1", "start", ticket_id=ticket["ticket_id"]).json()["ok"] is True
    live = staff.client.get("/staff/counter/1/live").text
    assert 'value="complete"' in live
    assert 'value="recall"' not in live
    assert staff.act("1", "complete", ticket_id=ticket["ticket_id"], outcome="deposit").json()["ok"] is True
    done = api.ticket(ticket["ticket_id"])
    assert (done["status"], done["outcome"]) == ("done", "deposit")


def test_a_stale_action_answers_409_with_a_clear_message_and_retry(staff: Staff, api: Api) -> None:
    ticket = api.enqueue("teller")
    staff.login("agent1")
    staff.act("1", "call_next")
    assert staff.act("1", "start", ticket_id=ticket["ticket_id"]).status_code == 200
    r = staff.act("1", "start", ticket_id=ticket["ticket_id"])  # a second tab still showing "called"
    assert r.status_code == 409
    body = r.json()
    assert body["ok"] is False
    assert body["retry"] is False  # sending the same start again cannot work: the screen refreshes instead
    assert "baru saja berubah" in body["message"]


def test_transfer_needs_a_target_and_moves_the_ticket(staff: Staff, api: Api, data_dir: Path) -> None:
    ticket = api.enqueue("teller")
    staff.login("agent1")
    staff.act("1", "call_next")
    r = staff.act("1", "transfer", ticket_id=ticket["ticket_id"])
    assert r.status_code == 422
    assert "Pilih layanan atau loket tujuan" in r.json()["message"]
    r = staff.act("1", "transfer", ticket_id=ticket["ticket_id"], to_service_id="cs", reason="needs CS")
    assert r.json()["ok"] is True
    moved = api.ticket(ticket["ticket_id"])
    assert (moved["status"], moved["service_id"], moved["transfer_reason"]) == ("waiting", "cs", "needs CS")
    assert audit_rows(data_dir, "action = 'transfer'")[0][:3] == ("agent1", "transfer", "counter:1")


def test_hold_and_unhold_from_the_waiting_list(staff: Staff, api: Api) -> None:
    ticket = api.enqueue("teller")
    staff.login("agent1")
    assert staff.act("1", "hold", ticket_id=ticket["ticket_id"]).json()["ok"] is True
    assert api.ticket(ticket["ticket_id"])["status"] == "held"
    assert staff.act("1", "call_next").json()["message"].startswith("Tidak ada antrean")
    assert staff.act("1", "unhold", ticket_id=ticket["ticket_id"]).json()["ok"] is True
    assert api.ticket(ticket["ticket_id"])["status"] == "waiting"


def test_agent_cannot_touch_a_ticket_of_a_service_their_counter_does_not_serve(staff: Staff, api: Api) -> None:
    loan = api.enqueue("loan")
    staff.login("agent1")
    r = staff.act("1", "hold", ticket_id=loan["ticket_id"])
    assert r.status_code == 403
    assert api.ticket(loan["ticket_id"])["status"] == "waiting"


def test_break_stops_call_next_and_available_restores_it(staff: Staff, api: Api, data_dir: Path) -> None:
    api.enqueue("teller")
    staff.login("agent1")
    assert staff.act("1", "presence", status="break").json()["ok"] is True
    r = staff.act("1", "call_next")
    assert "istirahat atau tutup" in r.json()["message"]
    staff.act("1", "presence", status="available")
    assert staff.act("1", "call_next").json() == {"ok": True, "message": "A001 dipanggil ke Loket 1", "retry": False}
    statuses = [json.loads(r[3])["status"] for r in audit_rows(data_dir, "action = 'presence'")]
    assert statuses == ["available", "break", "available"]  # the first: the desk opened at sign-in


# ---- supervisor ------------------------------------------------------------------------------------------------


def test_interventions_are_audited_in_the_same_transaction(staff: Staff, api: Api, data_dir: Path) -> None:
    ticket = api.enqueue("teller")
    staff.login("supervisor")
    r = staff.intervene("transfer", ticket_id=ticket["ticket_id"], to_counter_id="2", reason="VIP")
    assert r.json()["ok"] is True
    assert api.ticket(ticket["ticket_id"])["target_counter"] == "2"
    r = staff.intervene("presence", counter_id="3", status="closed")
    assert r.json()["ok"] is True
    rows = audit_rows(data_dir, "action IN ('reassign', 'close_counter')")
    assert [(a, act, t) for a, act, t, *_ in rows] == [
        ("supervisor", "reassign", f"ticket:{ticket['ticket_id']}"),
        ("supervisor", "close_counter", "counter:3"),
    ]
    transferred = event_rows(data_dir, "SELECT seq FROM events WHERE ticket_id = ? ORDER BY seq DESC LIMIT 1",
                             (ticket["ticket_id"],))  # fmt: skip
    assert rows[0][6] == transferred[0][0]
    assert rows[0][4] == "testclient"
    assert rows[0][5]  # user agent recorded


def test_a_refused_intervention_leaves_no_audit_row(staff: Staff, api: Api, data_dir: Path) -> None:
    ticket = api.enqueue("teller")
    staff.login("supervisor")
    r = staff.intervene("transfer", ticket_id=ticket["ticket_id"], to_counter_id="4")  # counter 4 has no teller
    assert r.status_code == 409
    assert audit_rows(data_dir, "action = 'reassign'") == []


def test_the_floor_shows_counters_queues_and_serving_time(staff: Staff, api: Api) -> None:
    api.enqueue("teller")
    api.enqueue("cs")
    api.call_next("4")
    staff.login("supervisor")
    page = staff.client.get("/staff/supervisor/live").text
    assert 'data-service="teller"' in page
    assert 'data-waiting="1"' in page
    assert "B001" in page
    assert "agent3" in page


# ---- admin -----------------------------------------------------------------------------------------------------


def _service_form(staff: Staff, base_version: int, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": staff.csrf, "base_version": str(base_version), "old_id": "teller", "id": "teller",
        "name": "Teller", "name_id": "Teller", "name_en": "Teller", "prefix": "A", "digits": "3",
        "area_id": "lantai-1", "active": "on", "sla_minutes": "10", "avg_service_seconds": "240",
        "priority_enabled": "on", "default_priority": "0", "hours": "", "grace_seconds": "120",
        "no_show_policy": "no_show", "max_returns": "1", "outcome_codes": "deposit, withdrawal",
    }  # fmt: skip
    return {**form, **changes}


def test_admin_edits_a_service_applied_without_restart_and_audited(staff: Staff, api: Api, data_dir: Path) -> None:
    staff.login("admin")
    form = _service_form(staff, 1, sla_minutes="7", hours="mon-fri 08:00-15:00\nsat 08:00-12:00")
    r = staff.client.post("/staff/admin/config/service", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    doc, etag = api.config()
    teller = next(s for s in doc["services"] if s["id"] == "teller")
    assert etag == '"2"'
    assert teller["sla_minutes"] == 7
    assert teller["hours"]["mon"] == [["08:00", "15:00"]]
    assert teller["hours"]["sat"] == [["08:00", "12:00"]]
    assert teller["outcome_codes"] == ["deposit", "withdrawal"]
    rows = audit_rows(data_dir, "action = 'config_service'")
    assert rows[0][:3] == ("admin", "config_service", "service:teller")


def test_a_stale_config_form_is_refused_with_a_clear_message(staff: Staff, api: Api) -> None:
    staff.login("admin")
    api.change_config(teller={"sla_minutes": 12})  # someone else applied version 2 meanwhile
    r = staff.client.post("/staff/admin/config/service", data=_service_form(staff, 1, sla_minutes="7"))
    assert r.status_code == 422
    assert "Konfigurasi baru saja diubah orang lain" in r.text
    doc, etag = api.config()
    assert etag == '"2"'
    assert next(s for s in doc["services"] if s["id"] == "teller")["sla_minutes"] == 12


def test_invalid_service_values_are_reported_not_applied(staff: Staff, api: Api) -> None:
    staff.login("admin")
    r = staff.client.post("/staff/admin/config/service", data=_service_form(staff, 1, prefix="B", hours="someday"))
    assert r.status_code == 422
    assert "hours" in r.text
    r = staff.client.post("/staff/admin/config/service", data=_service_form(staff, 1, prefix="B"))
    assert r.status_code == 422
    assert "already used" in r.text
    assert api.config()[1] == '"1"'


def test_a_counter_can_only_be_mapped_to_configured_services(staff: Staff, api: Api) -> None:
    staff.login("admin")
    form = {"csrf_token": staff.csrf, "base_version": "1", "old_id": "1", "id": "1", "name": "Loket 1",
            "area_id": "lantai-1", "active": "on", "services": ["teller", "ghost"]}  # fmt: skip
    r = staff.client.post("/staff/admin/config/counter", data=form, follow_redirects=False)
    assert r.status_code == 303
    doc, _ = api.config()
    assert next(c for c in doc["counters"] if c["id"] == "1")["services"] == ["teller"]
    form["services"] = ["ghost"]
    form["base_version"] = "2"
    r = staff.client.post("/staff/admin/config/counter", data=form)
    assert r.status_code == 422
    assert api.config()[1] == '"2"'


def test_admin_creates_a_user_who_can_sign_in_and_deactivation_signs_them_out(
    staff: Staff, client: TestClient[Any], data_dir: Path
) -> None:
    staff.login("admin")
    form = {"csrf_token": staff.csrf, "username": "teller9", "role": "agent", "counters": ["3"],
            "password": "long-enough-1", "active": "on"}  # fmt: skip
    assert client.post("/staff/admin/users", data=form, follow_redirects=False).status_code == 303
    other = Staff(TestClient(client.app))
    with other.client:
        assert other.login("teller9", "long-enough-1").status_code == 303
        assert other.client.get("/staff/counter/3").status_code == 200
        assert other.client.get("/staff/counter/1").status_code == 403
        form.pop("active")
        form["password"] = ""
        assert client.post("/staff/admin/users", data=form, follow_redirects=False).status_code == 303
        assert other.client.get("/staff/counter/3", follow_redirects=False).status_code == 303
        assert other.login("teller9", "long-enough-1").status_code == 401
    actions = [r[1] for r in audit_rows(data_dir, "target = 'user:teller9'")]
    assert actions == ["user_create", "user_update"]


def test_an_agent_without_counters_or_a_short_password_is_refused(staff: Staff) -> None:
    staff.login("admin")
    form = {"csrf_token": staff.csrf, "username": "x1", "role": "agent", "password": "short", "active": "on"}
    r = staff.client.post("/staff/admin/users", data=form)
    assert r.status_code == 422
    assert "minimal satu loket" in r.text
    assert "minimal 8 karakter" in r.text


# ---- audit viewer, language ------------------------------------------------------------------------------------


def test_audit_viewer_filters_by_user_action_and_day(staff: Staff, api: Api) -> None:
    Staff(staff.client).login("agent1")
    staff.login("admin")
    api.enqueue("teller")
    page = staff.client.get("/staff/admin/audit", params={"actor": "agent1"}).text
    assert page.count('data-action="login"') == 1
    page = staff.client.get("/staff/admin/audit", params={"action": "login"}).text
    assert page.count('data-action="login"') == 2
    page = staff.client.get("/staff/admin/audit", params={"day_from": "2000-01-01", "day_to": "2000-01-02"}).text
    assert 'data-action="' not in page


def test_the_audit_log_pages_back_and_exports_csv_in_branch_time(staff: Staff, api: Api, data_dir: Path) -> None:
    staff.login("admin")
    entries = [AuditEntry(actor="agent1", role="agent", action="presence", target=f"counter:{i % 6 + 1}",
                          detail={"status": "break"}, ip="10.0.0.7") for i in range(230)]  # fmt: skip
    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta
    api.client.app.state["appliance"].service.submit_store(
        lambda conn: [audit_log.insert(conn, e, at) for e in entries]
    ).result(timeout=10)
    first = staff.client.get("/staff/admin/audit", params={"actor": "agent1"}).text
    assert first.count('data-action="presence"') == 200
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older, "a link to the older entries"
    second = staff.client.get(older.group(1).replace("&amp;", "&")).text
    assert second.count('data-action="presence"') == 30  # the rest, none twice
    assert 'rel="next"' not in second
    r = staff.client.get("/staff/admin/audit.csv", params={"actor": "agent1", "action": "presence"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["time", "user", "role", "action", "target", "details", "ip", "user_agent", "event_seq",
                       "target_name", "details_text"]  # fmt: skip
    assert len(rows) == 231
    assert rows[1][0] == "2026-11-24T09:00:00+07:00"  # the branch's time, with its offset
    assert json.loads(rows[1][5]) == {"status": "break"}
    assert audit_rows(data_dir, "action = 'audit_export'")[0][0] == "admin"  # exporting the log is audited too
    staff.login("supervisor")
    assert staff.client.get("/staff/admin/audit.csv").status_code == 403


def _idle_for(data_dir: Path, minutes: float) -> None:
    """Pretend every session's last activity was `minutes` ago (another connection, like another process)."""
    conn = sqlite3.connect(data_dir / "qms.sqlite3")
    try:
        at = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
        conn.execute("UPDATE staff_sessions SET last_seen = ?", (at,))
        conn.commit()
    finally:
        conn.close()


def _last_seen(data_dir: Path) -> datetime:
    conn = sqlite3.connect(data_dir / "qms.sqlite3")
    try:
        return datetime.fromisoformat(conn.execute("SELECT last_seen FROM staff_sessions").fetchone()[0])
    finally:
        conn.close()


def test_a_session_left_alone_ends_and_live_refreshes_do_not_keep_it_alive(staff: Staff, data_dir: Path) -> None:
    staff.login("agent1")
    assert staff.client.get("/staff/counter/1").status_code == 200
    _idle_for(data_dir, 29)
    before = _last_seen(data_dir)
    assert staff.client.get("/staff/counter/1/live").status_code == 200  # an open desk refreshing itself
    assert _last_seen(data_dir) == before  # is not activity
    assert staff.client.get("/staff/counter/1").status_code == 200  # a page load is
    deadline = time.monotonic() + 10
    while _last_seen(data_dir) == before:
        assert time.monotonic() < deadline, "the page load did not count as activity"
        time.sleep(0.02)
    _idle_for(data_dir, 31)  # 30 minutes without doing anything: signed out
    r = staff.client.get("/staff/counter/1", follow_redirects=False)
    assert r.status_code in (302, 303)
    assert "/staff/login" in r.headers["location"]
    assert staff.client.get("/staff/counter/1/live", follow_redirects=False).status_code in (302, 303, 401)


def test_the_language_switch_is_remembered(staff: Staff) -> None:
    staff.login("agent1")
    r = staff.client.get("/staff/lang/en", params={"next": "/staff/counter/1"}, follow_redirects=False)
    assert r.headers["location"] == "/staff/counter/1"
    page = staff.client.get("/staff/counter/1").text
    assert 'lang="en"' in page
    assert "Call next" in page
    assert "Now serving" in page


def test_call_a_specific_ticket_from_the_waiting_list(staff: Staff, api: Api) -> None:
    api.enqueue("teller")
    second = api.enqueue("teller")
    staff.login("agent1")
    assert staff.act("1", "call", ticket_id=second["ticket_id"]).json()["ok"] is True
    called = api.ticket(second["ticket_id"])
    assert (called["status"], called["counter_id"]) == ("called", "1")


def test_the_floor_names_who_last_acted_at_a_counter(staff: Staff, api: Api) -> None:
    api.enqueue("teller")
    agent = Staff(staff.client)
    agent.login("agent2")
    agent.act("3", "call_next")
    staff.login("supervisor")
    row = re.search(r'<tr data-counter="3">.*?</tr>', staff.client.get("/staff/supervisor/live").text, re.S)
    assert row is not None
    assert "<strong>agent2</strong>" in row[0]
    assert "aksi terakhir" in row[0]


def test_editing_a_user_prefills_the_form(staff: Staff) -> None:
    staff.login("admin")
    page = staff.client.get("/staff/admin/users", params={"edit": "agent3"}).text
    assert 'value="agent3" readonly' in page
    assert re.search(r'id="uc-4" name="counters" value="4"\s+checked', page)
    assert not re.search(r'id="uc-1" name="counters" value="1"\s+checked', page)


def test_admin_changes_the_branch_timezone_and_an_unknown_one_is_refused(staff: Staff, api: Api) -> None:
    staff.login("admin")
    form = {"csrf_token": staff.csrf, "base_version": "1", "name": "KCP Sudirman", "timezone": "Mars/Olympus",
            "lang_id": "on", "lang_en": "on"}  # fmt: skip
    r = staff.client.post("/staff/admin/config/branch", data=form)
    assert r.status_code == 422
    assert "not a known IANA timezone" in r.text
    form["timezone"] = "Asia/Makassar"
    form["day_close"] = "sometimes"
    assert staff.client.post("/staff/admin/config/branch", data=form).status_code == 422
    form["day_close"] = "keep"
    assert staff.client.post("/staff/admin/config/branch", data=form, follow_redirects=False).status_code == 303
    doc, etag = api.config()
    assert (doc["name"], doc["timezone"], doc["languages"], doc["day_close"], etag) == (
        "KCP Sudirman",
        "Asia/Makassar",
        ["id", "en"],
        "keep",
        '"2"',
    )
    assert '<option value="keep" selected>' in staff.client.get("/staff/admin/").text
    assert 'data-tz="Asia/Makassar"' in staff.client.get("/staff/admin/audit").text


def test_recall_no_show_and_cancel_from_the_desk(staff: Staff, api: Api, data_dir: Path) -> None:
    first = api.enqueue("teller")
    second = api.enqueue("teller")
    staff.login("agent1")
    staff.act("1", "call_next")
    assert staff.act("1", "recall", ticket_id=first["ticket_id"]).json()["ok"] is True
    assert api.ticket(first["ticket_id"])["recall_count"] == 1
    assert staff.act("1", "no_show", ticket_id=first["ticket_id"]).json()["ok"] is True
    assert api.ticket(first["ticket_id"])["status"] == "no_show"
    staff.act("1", "call_next")
    assert staff.act("1", "cancel", ticket_id=second["ticket_id"], reason="left").json()["ok"] is True
    assert api.ticket(second["ticket_id"])["status"] == "cancelled"
    assert audit_rows(data_dir, "action = 'cancel'")[0][3] == f'{{"ticket":"{second["ticket_id"]}","reason":"left"}}'


def test_supervisor_force_transfers_to_another_service_and_cancels(staff: Staff, api: Api, data_dir: Path) -> None:
    first = api.enqueue("teller")
    second = api.enqueue("teller")
    staff.login("supervisor")
    assert staff.intervene("transfer", ticket_id=first["ticket_id"], to_service_id="loan").json()["ok"] is True
    assert api.ticket(first["ticket_id"])["service_id"] == "loan"
    assert staff.intervene("cancel", ticket_id=second["ticket_id"], reason="duplicate").json()["ok"] is True
    assert api.ticket(second["ticket_id"])["status"] == "cancelled"
    assert [r[1] for r in audit_rows(data_dir, "actor = 'supervisor' AND action != 'login'")] == [
        "force_transfer",
        "cancel",
    ]


def test_admin_adds_and_renames_an_area(staff: Staff, api: Api) -> None:
    staff.login("admin")
    form = {"csrf_token": staff.csrf, "base_version": "1", "id": "lantai-3", "name": "Lantai 3 - Prioritas"}
    assert staff.client.post("/staff/admin/config/area", data=form, follow_redirects=False).status_code == 303
    form = {"csrf_token": staff.csrf, "base_version": "2", "old_id": "lantai-1", "id": "lantai-1", "name": "Lobi"}
    assert staff.client.post("/staff/admin/config/area", data=form, follow_redirects=False).status_code == 303
    areas = {a["id"]: a["name"] for a in api.config()[0]["areas"]}
    assert areas == {"lantai-1": "Lobi", "lantai-2": "Lantai 2 - Customer Service", "lantai-3": "Lantai 3 - Prioritas"}


def test_a_supervisor_asking_for_an_unknown_counter_gets_not_found(staff: Staff) -> None:
    staff.login("supervisor")
    r = staff.client.get("/staff/counter/nope")
    assert r.status_code == 404
    assert "Tidak ditemukan." in r.text


def test_admin_sets_up_the_kiosks_in_a_form(staff: Staff, api: Api) -> None:
    staff.login("admin")
    page = staff.client.get("/staff/admin/kiosk")
    assert page.status_code == 200
    assert 'name="phone_input"' in page.text
    form = {"csrf_token": staff.csrf, "base_version": "1", "phone_input": "required", "customer_ref_input": "off",
            "phone_display": "masked", "idle_seconds": "30", "ticket_seconds": "15", "title_id": "Selamat datang",
            "title_en": "Welcome", "accent_color": "#112233", "logo_text": "BANK", "logo_image": "",
            "footer_id": "", "footer_en": "Thank you", "printer_host": "192.168.1.50", "printer_port": "9100",
            "printer_device": "", "printer_paper": "58", "offline_lease_size": "5",
            "offline_print_url": "http://127.0.0.1:9111/print", "public_base_url": ""}  # fmt: skip
    r = staff.client.post("/staff/admin/config/kiosk", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    kiosk = api.config()[0]["kiosk"]
    assert (kiosk["phone_input"], kiosk["idle_seconds"], kiosk["title"], kiosk["footer"]) == (
        "required",
        30,
        {"id": "Selamat datang", "en": "Welcome"},
        {"en": "Thank you"},
    )
    assert (kiosk["printer"]["host"], kiosk["printer"]["paper_mm"], kiosk["offline_lease_size"]) == (
        "192.168.1.50",
        58,
        5,
    )
    assert kiosk["offline_print_url"] == "http://127.0.0.1:9111/print"
    assert kiosk["offline_browser_print"] is False
    # The kiosk page follows (remote config): a required phone number.
    assert '"phone_input":"required"' in staff.client.get("/kiosk").text
    # Bad values are refused with the reason and nothing changes.
    form |= {"csrf_token": staff.csrf, "base_version": "2", "printer_device": "/dev/usb/lp0"}  # host and device
    r = staff.client.post("/staff/admin/config/kiosk", data=form)
    assert r.status_code == 422
    assert "exactly one of host" in r.text
    form |= {"printer_device": "", "accent_color": "blue"}
    r = staff.client.post("/staff/admin/config/kiosk", data=form)
    assert r.status_code == 422
    assert api.config()[1] == '"2"'
    assert staff.client.get("/staff/admin/kiosk", headers={"Accept-Language": "id"}).status_code == 200
