"""`/api/v1/kpis` and the CSV export against each ticket's own timestamps, computed here independently."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.edge.analytics.conftest import Api
from tests.edge.web.conftest import assert_problem
from tests.support.appliance import RunningAppliance

JAKARTA = ZoneInfo("Asia/Jakarta")
SLA_MINUTES = {"teller": 10, "cs": 20, "loan": 30}  # the demo branch's configuration
HEADER = (
    "ticket_id,ticket_number,branch_id,service_id,counter_id,priority,channel,status,created_at,called_at,"
    "served_at,completed_at,wait_seconds,service_seconds,outcome,transferred,returned,timezone"
)


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _cont(values: list[float], q: float) -> float | None:
    """percentile_cont, via the standard library (method='inclusive' interpolates between closest ranks)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return (
        statistics.quantiles(values, n=10, method="inclusive")[int(q * 10) - 1]
        if q != 0.5
        else statistics.median(values)
    )


def _expected(tickets: list[dict[str, Any]]) -> dict[str, Any]:
    """The KPI figures of these tickets from their own timestamps (first call = the only call here)."""
    waits = [(_t(t["called_at"]) - _t(t["created_at"])).total_seconds() for t in tickets if t["called_at"]]  # type: ignore[operator]
    services = [
        (_t(t["completed_at"]) - _t(t["served_at"])).total_seconds()  # type: ignore[operator]
        for t in tickets
        if t["status"] == "done" and t["served_at"] and t["completed_at"]
    ]
    met = [w <= SLA_MINUTES[t["service_id"]] * 60 for t in tickets if t["called_at"] for w in [
        (_t(t["called_at"]) - _t(t["created_at"])).total_seconds()]]  # type: ignore[operator]  # fmt: skip
    done = sum(t["status"] == "done" for t in tickets)
    no_shows = sum(t["status"] == "no_show" for t in tickets)
    hours = {_t(t["created_at"]).astimezone(JAKARTA).strftime("%Y-%m-%d %H") for t in tickets}  # type: ignore[union-attr]
    hours |= {_t(t["completed_at"]).astimezone(JAKARTA).strftime("%Y-%m-%d %H") for t in tickets  # type: ignore[union-attr]
              if t["status"] == "done"}  # fmt: skip
    return {
        "tickets": len(tickets),
        "done": done,
        "no_shows": no_shows,
        "cancelled": sum(t["status"] == "cancelled" for t in tickets),
        "no_show_rate": no_shows / (done + no_shows) if done + no_shows else None,
        "wait_avg_s": sum(waits) / len(waits) if waits else None,
        "wait_p50_s": _cont(waits, 0.5),
        "wait_p90_s": _cont(waits, 0.9),
        "service_avg_s": sum(services) / len(services) if services else None,
        "service_p50_s": _cont(services, 0.5),
        "sla_met_pct": 100 * sum(met) / len(met) if met else None,
        "throughput_per_hour": done / len(hours) if hours else None,
    }


def _close(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        got = actual[key]
        if want is None:
            assert got is None, key
        else:
            assert got is not None, key
            assert abs(got - want) <= 0.051 + abs(want) * 1e-4, (key, got, want)


def _day(api: Api) -> list[dict[str, Any]]:
    """Serve a morning: waits and services of varied lengths, a no-show, a cancellation, two still waiting."""
    ids: list[str] = []
    for i, service in enumerate(["teller", "teller", "cs", "teller", "loan", "teller", "cs", "teller"]):
        ids.append(api.enqueue(service, phone="+6281234567890" if i == 0 else None)["ticket_id"] if i == 0 else
                   api.enqueue(service)["ticket_id"])  # fmt: skip
        api.clock.advance(37 + 11 * i)
    for step, counter in enumerate(["1", "4", "2", "6", "3"]):
        called = api.call_next_ok(counter)
        api.clock.advance(20 + 20 * step)  # within every service's no-show grace (120 s)
        api.act_ok(called["ticket_id"], "start", counter_id=counter)
        api.clock.advance(90 + 45 * step)
        api.act_ok(called["ticket_id"], "complete", counter_id=counter)
        api.clock.advance(400)  # later calls wait past the teller's 10-minute SLA
    called = api.call_next_ok("1")
    api.clock.advance(5)
    api.act_ok(called["ticket_id"], "no-show", counter_id="1")
    waiting = api.get("/tickets", params={"status": "waiting"}).json()["tickets"]
    api.act_ok(waiting[-1]["ticket_id"], "cancel")
    api.enqueue("cs")
    return [api.ticket(t["ticket_id"]) for t in api.get("/tickets").json()["tickets"]]


def test_kpis_and_csv_agree_with_each_tickets_timestamps(api: Api) -> None:
    """Totals, per-service rows and every CSV record equal what the tickets' own timestamps say."""
    tickets = _day(api)
    assert {t["status"] for t in tickets} >= {"done", "no_show", "cancelled", "waiting"}
    _agree(api.get, tickets)


def test_a_running_appliance_agrees_with_its_tickets(appliance: RunningAppliance) -> None:
    """The real server (`qms-edge serve`): tickets served over HTTP in real time, read back ticket by ticket."""

    def get(path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{appliance.api}{path}", headers=appliance.headers("admin"), timeout=10, **kw)

    def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(f"{appliance.api}{path}", json=body, headers=appliance.headers("admin"), timeout=10)
        assert r.status_code in (200, 201), r.text
        return r.json()

    for service in ("teller", "cs", "teller", "loan", "teller"):
        post("/tickets", {"service_id": service})
    for counter in ("1", "4", "2"):
        called = post(f"/counters/{counter}/call-next")["ticket"]
        post(f"/tickets/{called['ticket_id']}/start", {"counter_id": counter})
        post(f"/tickets/{called['ticket_id']}/complete", {"counter_id": counter})
    called = post("/counters/3/call-next")["ticket"]
    post(f"/tickets/{called['ticket_id']}/no-show", {"counter_id": "3"})
    listed = get("/tickets").json()["tickets"]
    tickets = [get(f"/tickets/{t['ticket_id']}").json() for t in listed]
    _agree(get, tickets)


def _agree(get: Callable[..., httpx.Response], tickets: list[dict[str, Any]]) -> None:
    """/kpis (totals and per service) and the CSV against the tickets' own timestamps."""
    r = get("/kpis", params={"group_by": "service"})
    assert r.status_code == 200, r.text
    body = r.json()
    _close(body["totals"], _expected(tickets))
    assert [row["service_id"] for row in body["rows"]] == sorted({t["service_id"] for t in tickets})
    for row in body["rows"]:
        _close(row, _expected([t for t in tickets if t["service_id"] == row["service_id"]]))

    r = get("/kpis", params={"group_by": "day,hour"})
    assert sum(row["tickets"] for row in r.json()["rows"]) == len(tickets)

    r = get("/reports/tickets.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.split("\r\n", 1)[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(tickets)
    by_id = {row["ticket_id"]: row for row in rows}
    assert "+62812" not in r.text
    for t in tickets:
        row = by_id[t["ticket_id"]]
        assert row["ticket_number"] == t["ticket_number"]
        assert row["branch_id"] == "jkt-sudirman"
        assert (row["service_id"], row["status"], row["outcome"]) == (t["service_id"], t["status"], t["status"])
        assert row["priority"] == str(t["priority"])
        assert row["channel"] == t["channel"]
        assert row["timezone"] == "Asia/Jakarta"
        for field in ("created_at", "called_at", "served_at", "completed_at"):
            want = _t(t[field])
            assert row[field] == (want.astimezone(JAKARTA).isoformat(timespec="seconds") if want else ""), field
            assert not row[field] or row[field].endswith("+07:00")
        wait = (_t(t["called_at"]) - _t(t["created_at"])).total_seconds() if t["called_at"] else None  # type: ignore[operator]
        assert (row["wait_seconds"] == "") if wait is None else abs(float(row["wait_seconds"]) - wait) < 0.001
        if t["status"] == "done":
            service = (_t(t["completed_at"]) - _t(t["served_at"])).total_seconds()  # type: ignore[operator]
            assert abs(float(row["service_seconds"]) - service) < 0.001
        else:
            assert row["service_seconds"] == ""


def test_filters_and_semicolon_export(api: Api) -> None:
    """Filters narrow both answers alike; `sep=;` gives the Excel-friendly variant with the same header."""
    tickets = _day(api)
    teller = [t for t in tickets if t["service_id"] == "teller"]
    r = api.get("/kpis", params={"service_id": "teller"})
    _close(r.json()["totals"], _expected(teller))
    assert r.json()["rows"] == []
    r = api.get("/kpis", params={"counter_id": "4", "group_by": "counter"})
    assert [row["counter_id"] for row in r.json()["rows"]] == ["4"]
    r = api.get("/reports/tickets.csv", params={"service_id": "teller", "sep": ";"})
    lines = r.text.strip("\r\n").split("\r\n")
    assert lines[0] == HEADER.replace(",", ";")
    assert len(lines) == 1 + len(teller)
    yesterday = (datetime.now(JAKARTA) - timedelta(days=1)).date().isoformat()
    r = api.get("/kpis", params={"from": yesterday, "to": yesterday})
    assert r.json()["totals"]["tickets"] == 0
    assert r.json()["totals"]["wait_avg_s"] is None


def test_bad_filters_are_400_naming_the_parameter(api: Api) -> None:
    """A malformed filter is a problem+json 400, never a 500 nor an empty answer."""
    for params, field in [
        ({"from": "04-12-2026"}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"priority": "urgent"}, "priority"),
        ({"sep": "|"}, "sep"),
        ({"nonsense": "1"}, "nonsense"),
    ]:
        body = assert_problem(api.get("/kpis", params=params), 400, "invalid_query")
        assert body["parameter"] == field
    assert_problem(api.get("/reports/tickets.csv", params={"to": "2026-02-30"}), 400, "invalid_query")


def test_reports_need_a_manager_or_supervisor(api: Api) -> None:
    """Agents and devices see their own desk, not the branch's reports; no token is 401."""
    assert api.get("/kpis", user="supervisor").status_code == 200
    assert_problem(api.get("/kpis", user="agent1"), 403, "forbidden")
    assert_problem(api.get("/reports/tickets.csv", user="agent1"), 403, "forbidden")
    assert_problem(api.get("/kpis", user=None), 401, "unauthorized")
