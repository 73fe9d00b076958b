"""The branch report page, its drill-down and CSV download through the staff session (in-process app)."""

from __future__ import annotations

import json
import re
import sqlite3

from tests.edge.analytics.conftest import Api
from tests.edge.analytics.test_reports_api import HEADER, _day


def _login(api: Api, username: str) -> None:
    r = api.client.post("/staff/login", data={"username": username, "password": "demo"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_report_page_tables_drill_down_and_csv(api: Api) -> None:
    """Totals link to their tickets; the drill-down lists them with contacts masked; the CSV downloads."""
    tickets = _day(api)
    phone = api.enqueue("cs", phone="081234567890")
    _login(api, "supervisor")
    page = api.client.get("/staff/reports/")
    assert page.status_code == 200, page.text
    assert f'data-figure="tickets">{len(tickets) + 1}<' in page.text
    assert "/static/vendor/chartjs/chart.umd.min.js" in page.text
    assert "Arrivals vs served per hour" in page.text or "Kedatangan" in page.text
    done_link = re.search(r'href="([^"]+)" data-figure="done"', page.text)
    assert done_link is not None
    drill = api.client.get(done_link[1].replace("&amp;", "&"))
    assert drill.status_code == 200
    done = [t for t in tickets if t["status"] == "done"]
    assert drill.text.count('<tr data-ticket="') == len(done)
    everything = api.client.get("/staff/reports/tickets")
    assert "0812*****890" in everything.text
    assert "081234567890" not in everything.text
    assert phone["ticket_number"] in everything.text
    csv = api.client.get("/staff/reports/tickets.csv", params={"sep": ";"})
    assert csv.status_code == 200
    assert csv.text.split("\r\n", 1)[0] == HEADER.replace(",", ";")
    assert "081234567890" not in csv.text


def test_report_page_filters_and_errors(api: Api) -> None:
    """A service filter narrows the figures; a bad date is explained, not a crash; agents are refused."""
    _day(api)
    _login(api, "admin")
    r = api.client.get("/staff/reports/", params={"service_id": "loan"})
    assert r.status_code == 200
    assert 'data-figure="tickets">1<' in r.text
    r = api.client.get("/staff/reports/", params={"from": "yesterday"})
    assert r.status_code == 400
    assert "from:" in r.text
    r = api.client.get("/staff/reports/tickets", params={"outcome": "everything"})
    assert r.status_code == 400
    api.client.post("/staff/logout", data={})
    api.client.cookies.clear()
    _login(api, "agent1")
    assert api.client.get("/staff/reports/").status_code == 403


def test_desk_shows_the_agents_own_day_and_the_floor_today(api: Api) -> None:
    """The desk counts what this agent completed today; the floor shows today's KPIs and tickets past their SLA."""
    api.clock.advance(-11 * 60)  # taken 11 minutes ago: the teller's SLA is 10 (the floor reads the wall clock)
    late = api.enqueue("teller")
    api.clock.advance(11 * 60)
    for _ in range(2):
        t = api.enqueue("teller")
        api.act_ok(t["ticket_id"], "call", user="agent1", counter_id="1")
        api.act_ok(t["ticket_id"], "start", user="agent1", counter_id="1")
        api.clock.advance(125)
        api.act_ok(t["ticket_id"], "complete", user="agent1", counter_id="1")
    other = api.enqueue("teller")
    api.act_ok(other["ticket_id"], "call", user="admin", counter_id="2")
    api.act_ok(other["ticket_id"], "start", user="admin", counter_id="2")
    api.act_ok(other["ticket_id"], "complete", user="admin", counter_id="2")
    _login(api, "agent1")
    desk = api.client.get("/staff/counter/1/live")
    assert desk.status_code == 200, desk.text
    assert 'data-served-today="2"' in desk.text
    assert "2:05" in desk.text  # the average handling time
    api.client.cookies.clear()
    _login(api, "supervisor")
    floor = api.client.get("/staff/supervisor/live")
    assert floor.status_code == 200
    assert 'data-today-tickets="4"' in floor.text
    assert 'data-past-sla="1"' in floor.text
    assert late["ticket_number"] in floor.text


def _csrf(api: Api) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]*)"', api.client.get("/staff/reports/").text)
    assert found is not None
    return found[1]


def test_the_admins_pii_switch_hides_contacts_in_drill_downs(api: Api) -> None:
    """Off: the drill-down has no contact column at all (not even masked); audited; only the admin may switch it."""
    api.enqueue("cs", phone="081234567890")
    _login(api, "supervisor")
    assert "report-pii" not in api.client.get("/staff/reports/").text  # not the supervisor's switch
    refused = api.client.post("/staff/reports/contacts", data={"csrf_token": _csrf(api)}, follow_redirects=False)
    assert refused.status_code == 403
    api.client.post("/staff/logout", data={})
    api.client.cookies.clear()
    _login(api, "admin")
    assert 'name="show_contacts" checked' in api.client.get("/staff/reports/").text
    assert "0812*****890" in api.client.get("/staff/reports/tickets").text
    no_token = api.client.post("/staff/reports/contacts", data={}, follow_redirects=False)
    assert no_token.status_code == 403
    off = api.client.post("/staff/reports/contacts", data={"csrf_token": _csrf(api)}, follow_redirects=False)
    assert off.status_code == 303
    drill = api.client.get("/staff/reports/tickets")
    assert "0812*****890" not in drill.text
    assert '<th scope="col">Kontak</th>' not in drill.text
    assert '<th scope="col">Contact</th>' not in drill.text
    assert 'name="show_contacts" checked' not in api.client.get("/staff/reports/").text
    conn = sqlite3.connect(api.data_dir / "qms.sqlite3")
    try:
        [(actor, detail)] = conn.execute("SELECT actor, detail FROM audit WHERE action = 'report_contacts'").fetchall()
    finally:
        conn.close()
    assert actor == "admin"
    assert json.loads(detail)["shown"] is False
    api.client.post("/staff/reports/contacts", data={"csrf_token": _csrf(api), "show_contacts": "on"})
    assert "0812*****890" in api.client.get("/staff/reports/tickets").text
