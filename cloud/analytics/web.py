"""The analytics area's routes: the KPI API, the ticket export, the HQ dashboard (page, live SSE, drill-down), the
vendored chart script; `cloud.web.app` mounts `ROUTES` and enters `lifespan(app)`.

Every route declares its permission (`analytics.read`, `analytics.export`) and answers only inside the caller's
scope: another tenant's or an unseen branch's id is 404, never an empty answer that would confirm it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import sqlalchemy as sa
from litestar import Litestar, Request, Response, get, post
from litestar.response import ServerSentEvent, ServerSentEventMessage, Stream, Template
from litestar.static_files import create_static_files_router
from sqlalchemy.engine import Engine

from cloud.analytics import anomalies, bi, console, manage_api, schedules
from cloud.analytics.alert_push import AlertPublisher
from cloud.analytics.export import csv_chunks
from cloud.analytics.facts import load_settings
from cloud.analytics.live import LiveFeed, board
from cloud.analytics.queries import Scope, arrivals, heat_map, kpis, ticket_page, wait_histogram
from cloud.analytics.tables import tenant_settings
from cloud.identity.permissions import requires
from cloud.nats_link import background_link, ready_wait
from cloud.notify import contacts
from cloud.store import branches
from cloud.web.console_auth import HqPrincipal
from cloud.web.request_state import store_engine as _engine
from sync import kpi

STATIC = Path(__file__).parents[1] / "web" / "static"
PROBLEM = "application/problem+json"
SCOPE_PARAMS = ("tenant", "branch_id")


class NotInScope(Exception):
    """The tenant or branch is unknown or not the caller's (404)."""


def problem(status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None) -> Response[Any]:
    """An RFC 9457 problem+json answer with a stable `code`."""
    body = {"type": f"urn:qms:problem:{code}", "title": title, "status": status, "detail": detail, "code": code}
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The query parameters, one value each (the last one given)."""
    return dict(request.query_params.items())


def scope_for(engine: Engine, principal: HqPrincipal, tenant: str | None, branch_id: str | None) -> Scope:
    """The caller's scope narrowed to `tenant` / `branch_id`; NotInScope when either is not theirs or unknown."""
    if tenant is not None and not principal.sees_tenant(tenant):
        raise NotInScope(f"no tenant {tenant!r}")
    tenants = frozenset({tenant}) if tenant is not None else principal.tenants
    if branch_id is not None:
        query = sa.select(branches.c.tenant_id).where(branches.c.branch_id == branch_id)
        if tenants is not None:
            query = query.where(branches.c.tenant_id.in_(sorted(tenants)))
        with engine.connect() as conn:
            owners = {t for t in conn.execute(query).scalars() if principal.sees_branch(t, branch_id)}
        if not owners:
            raise NotInScope(f"no branch {branch_id!r}")
        tenants = frozenset(owners)
    return Scope(tenants=tenants, branch_id=branch_id, branches=principal.branches)


def _today(engine: Engine, scope: Scope) -> date:
    """The default day: today in the branch's zone (one branch), else in Asia/Jakarta."""
    zone_name = kpi.DEFAULT_TIMEZONE
    if scope.branch_id is not None and scope.tenants is not None and len(scope.tenants) == 1:
        with engine.connect() as conn:
            zone_name = load_settings(conn, next(iter(scope.tenants)), scope.branch_id).timezone
    return datetime.now(UTC).astimezone(kpi.zone(zone_name)).date()


def parse(request: Request[Any, Any, Any]) -> tuple[Scope, kpi.KpiQuery]:
    """Scope and validated filters of a KPI/export request (KpiQueryError → 400, NotInScope → 404)."""
    params = _params(request)
    for name in SCOPE_PARAMS:
        value = params.get(name)
        if value is not None and (len(value) > kpi.MAX_ID_LENGTH or not value.isprintable()):
            raise kpi.KpiQueryError(name, "not a valid identifier")
    engine = _engine(request)
    scope = scope_for(engine, request.scope["user"], params.get("tenant") or None, params.get("branch_id") or None)
    return scope, kpi.parse_query(params, _today(engine, scope), extra=SCOPE_PARAMS)


def _bad_query(exc: kpi.KpiQueryError) -> Response[Any]:
    return problem(400, "Invalid query", str(exc), exc.code)


@get("/api/v1/kpis", sync_to_thread=True, guards=[requires("analytics.read")])
def kpis_api(request: Request[Any, Any, Any]) -> Response[Any]:
    """KPIs over the caller's branches: `tenant`, `branch_id` and the contract's filters and `group_by`. One branch and
    one day: exact (from facts, as the appliance computes them); wider: merged from hourly rollups (header
    `X-KPI-Percentiles: exact|histogram`)."""
    try:
        scope, query = parse(request)
    except kpi.KpiQueryError as exc:
        return _bad_query(exc)
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    with _engine(request).connect() as conn:
        body, exact = kpis(conn, scope, query)
    return Response(body, headers={"X-KPI-Percentiles": "exact" if exact else "histogram", "Cache-Control": "no-store"})


@get("/api/v1/reports/tickets.csv", sync_to_thread=True, guards=[requires("analytics.export")])
def tickets_csv(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    """The ticket export (CSV contract version 1), streamed; `sep=;` for Excel in the Indonesian locale."""
    try:
        scope, query = parse(request)
    except kpi.KpiQueryError as exc:
        return _bad_query(exc)
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    name = f"tickets-{query.date_from.isoformat()}-{query.date_to.isoformat()}.csv"
    return Stream(
        csv_chunks(_engine(request), scope, query),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-CSV-Version": str(kpi.CSV_VERSION),
        },
    )


WORDS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Analitik", "live": "Langsung", "live_hint": "menyambung…", "connected": "langsung",
        "reconnecting": "menyambung ulang…", "branch": "Cabang", "waiting": "Antre", "longest": "Tunggu terlama",
        "serving": "Dilayani", "counters": "Loket buka (dilayani hari ini)", "tickets_today": "Tiket hari ini",
        "done": "Selesai", "wait_avg": "Rata-rata tunggu", "sla": "SLA terpenuhi", "no_branches": "Belum ada cabang.",
        "history": "Riwayat", "from": "Dari", "to": "Sampai", "service": "Layanan", "priority": "Prioritas",
        "channel": "Kanal", "any": "semua", "counter": "Loket", "group_by": "Kelompokkan", "g_branch": "Cabang",
        "g_day": "Hari", "g_hour": "Jam", "g_service": "Layanan", "g_counter": "Loket", "apply": "Terapkan",
        "export": "Ekspor CSV", "tickets": "Tiket", "no_show_rate": "Tidak hadir", "cancelled": "Batal",
        "service_avg": "Rata-rata layanan", "throughput": "Selesai/jam", "nothing": "Tidak ada tiket.",
        "total": "Total", "exact": "Persentil tepat (satu cabang, satu hari).",
        "merged": "Persentil diperkirakan dari histogram gabungan (beberapa hari atau cabang).",
        "wait_dist": "Sebaran waktu tunggu", "as_table": "Sebagai tabel", "minutes": "Menit",
        "arrivals": "Kedatangan dan selesai per jam", "hour": "Jam", "tickets_title": "Tiket", "number": "Nomor",
        "status": "Status", "created": "Dibuat", "wait": "Tunggu", "service_time": "Layanan", "contact": "Kontak",
        "more": "Berikutnya", "alerts": "Peringatan: antrean lebih lambat dari biasanya", "p90_now": "Tunggu p90 kini",
        "usual": "Biasanya (p90)", "since": "Sejak", "heat": "Kedatangan dan selesai per hari dan jam",
        "heat_hint": "kedatangan / selesai menurut hari dan jam cabang; makin gelap = makin banyak kedatangan",
        "day": "Hari", "Mon": "Sen", "Tue": "Sel", "Wed": "Rab", "Thu": "Kam", "Fri": "Jum", "Sat": "Sab",
        "Sun": "Min",
    },
    "en": {
        "title": "Analytics", "live": "Live", "live_hint": "connecting…", "connected": "live",
        "reconnecting": "reconnecting…", "branch": "Branch", "waiting": "Waiting", "longest": "Longest wait",
        "serving": "Being served", "counters": "Counters open (served today)", "tickets_today": "Tickets today",
        "done": "Done", "wait_avg": "Average wait", "sla": "SLA met", "no_branches": "No branches yet.",
        "history": "History", "from": "From", "to": "To", "service": "Service", "priority": "Priority",
        "channel": "Channel", "any": "any", "counter": "Counter", "group_by": "Group by", "g_branch": "Branch",
        "g_day": "Day", "g_hour": "Hour", "g_service": "Service", "g_counter": "Counter", "apply": "Apply",
        "export": "Export CSV", "tickets": "Tickets", "no_show_rate": "No-show", "cancelled": "Cancelled",
        "service_avg": "Average service", "throughput": "Done/hour", "nothing": "No tickets.", "total": "Total",
        "exact": "Exact percentiles (one branch, one day).",
        "merged": "Percentiles estimated from merged histograms (several days or branches).",
        "wait_dist": "Wait time distribution", "as_table": "As a table", "minutes": "Minutes",
        "arrivals": "Arrivals and completions per hour", "hour": "Hour", "tickets_title": "Tickets",
        "number": "Number", "status": "Status", "created": "Created", "wait": "Wait", "service_time": "Service",
        "contact": "Contact", "more": "Next", "alerts": "Alerts: queues slower than usual", "p90_now": "Wait p90 now",
        "usual": "Usual (p90)", "since": "Since", "heat": "Arrivals and completions by weekday and hour",
        "heat_hint": "arrivals / done, by the branch's weekday and hour; darker = more arrivals", "day": "Day",
        "Mon": "Mon", "Tue": "Tue", "Wed": "Wed", "Thu": "Thu", "Fri": "Fri", "Sat": "Sat", "Sun": "Sun",
    },
}  # fmt: skip
LANG_COOKIE = "qms_lang"
DRILL_PAGE = 100
HOURS_PER_DAY = 24


def _lang(request: Request[Any, Any, Any]) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "id"
    return lang if lang in WORDS else "id"


def mmss(seconds: float | None) -> str:
    """A duration as m:ss (— when not measured)."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def pct(value: float | None, scale: float = 1.0) -> str:
    """A percentage (— when not measured); `scale` 100 for a 0..1 rate."""
    return "—" if value is None else f"{value * scale:.1f}%"


def _page_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The filters of a page request: the API's parameters without the page's own (lang, after, hour)."""
    return {k: v for k, v in _params(request).items() if k not in ("lang", "after", "hour") and v != ""}


def _query_string(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _live_board(request: Request[Any, Any, Any], scope: Scope) -> list[dict[str, Any]]:
    with _engine(request).connect() as conn:
        return board(conn, scope, _today(_engine(request), scope))


@get("/analytics", sync_to_thread=True, guards=[requires("analytics.read")])
def dashboard(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """The HQ dashboard: live board, KPIs for the filters (group by one dimension) with drill-down, two charts."""
    lang, params = _lang(request), _page_params(request)
    group_by = params.pop("group_by", "branch")
    error = None
    try:
        scope = scope_for(_engine(request), request.scope["user"], params.get("tenant"), params.get("branch_id"))
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    try:
        query = kpi.parse_query({**params, "group_by": group_by}, _today(_engine(request), scope), extra=SCOPE_PARAMS)
    except kpi.KpiQueryError as exc:
        error, group_by = str(exc), "branch"
        query = kpi.parse_query({"group_by": "branch"}, _today(_engine(request), scope))
    with _engine(request).connect() as conn:
        body, exact = kpis(conn, scope, query)
        waits = wait_histogram(conn, scope, query)
        hours = arrivals(conn, scope, query)
        heat = heat_map(conn, scope, query)
        alerts = [a for a in anomalies.open_alerts(conn, scope.tenants)
                  if (scope.branch_id is None or a["branch_id"] == scope.branch_id)
                  and (scope.branches is None or (a["tenant_id"], a["branch_id"]) in scope.branches)]  # fmt: skip
        for alert in alerts:  # shown in the branch's time zone
            zone = kpi.zone(load_settings(conn, alert["tenant_id"], alert["branch_id"]).timezone)
            alert["since"] = datetime.fromisoformat(alert["opened_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    filters = {**params, "from": query.date_from.isoformat(), "to": query.date_to.isoformat()}
    base = dict(filters)
    rows = []
    for row in body["rows"]:
        key = row[kpi.GROUP_KEY[group_by]]
        drill = dict(base)
        if group_by == "day":
            drill["from"] = drill["to"] = key
        elif group_by == "hour":
            drill["hour"] = key
        else:
            drill[kpi.GROUP_KEY[group_by]] = key
        rows.append({**row, "key": key, "drill": _query_string({**drill, "lang": lang})})
    words = WORDS[lang]
    live_params = {k: params[k] for k in SCOPE_PARAMS if k in params}
    context = {
        "lang": lang, "w": words, "active": "analytics", "request": request, "board": _live_board(request, scope),
        "kpis": rows, "totals": body["totals"], "exact": exact, "group_by": group_by, "filters": filters,
        "error": error, "channels": sorted(kpi.CHANNELS), "query": _query_string(filters),
        "live_url": "/analytics/live" + ("?" + _query_string(live_params) if live_params else ""),
        "waits": waits, "arrivals": hours, "mmss": mmss, "pct": pct, "alerts": alerts, "tab_words": console.WORDS[lang],
        "heat": heat,
        "js_words": {k: words[k] for k in ("tickets", "done", "connected", "reconnecting", "minutes", "hour")},
    }  # fmt: skip
    return Template(template_name="analytics/dashboard.html", context=context, headers={"Cache-Control": "no-store"})


@get("/analytics/live", guards=[requires("analytics.read")])
async def live(request: Request[Any, Any, Any]) -> ServerSentEvent | Response[Any]:
    """The live board as Server-Sent Events (`event: board`): at once, then after every applied batch."""
    params = _params(request)
    try:
        scope = await asyncio.to_thread(
            scope_for, _engine(request), request.scope["user"], params.get("tenant"), params.get("branch_id")
        )
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    feed: LiveFeed = request.app.state["analytics_live"]

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        seen = feed.version
        while True:
            branches_now = await asyncio.to_thread(_live_board, request, scope)
            yield ServerSentEventMessage(event="board", data=json.dumps({"version": seen, "branches": branches_now}))
            while (moved := await feed.wait(seen, KEEPALIVE_SECONDS)) == seen:
                yield ServerSentEventMessage(comment="keep-alive")
            seen = moved

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@get("/analytics/tickets", sync_to_thread=True, guards=[requires("analytics.read")])
def drill_down(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """The tickets behind a figure (the dashboard's filters, plus `hour`), 100 a page; contacts masked, or not shown
    at all when the tenant turned contacts off."""
    lang, params = _lang(request), _page_params(request)
    try:
        scope, query = parse_params(request, params)
    except kpi.KpiQueryError as exc:
        return _bad_query(exc)
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    hour_raw, after = request.query_params.get("hour"), request.query_params.get("after")
    if hour_raw is not None and not (hour_raw.isdigit() and int(hour_raw) < HOURS_PER_DAY):
        return _bad_query(kpi.KpiQueryError("hour", "expected 0..23"))
    hour = int(hour_raw) if hour_raw is not None else None
    try:
        with _engine(request).connect() as conn:
            found = ticket_page(conn, scope, query, hour=hour, after=after, limit=DRILL_PAGE)
    except kpi.KpiQueryError as exc:  # a cursor that is not one of ours
        return _bad_query(exc)
    show = {t: contacts_shown(_engine(request), t) for t in {row["tenant_id"] for row in found}}
    rows = []
    with _engine(request).connect() as conn:
        by_branch: dict[tuple[str, str], list[str]] = {}
        for row in found:
            by_branch.setdefault((row["tenant_id"], row["branch_id"]), []).append(row["ticket_id"])
        masked_contacts: dict[str, str] = {}
        for (tenant, branch_id), ids in by_branch.items():
            if show[tenant]:
                for ticket_id, contact in contacts.read_many(conn, tenant, branch_id, ids).items():
                    shown = contacts.masked(contact)
                    masked_contacts[ticket_id] = " ".join(v for v in (shown["phone"], shown["email"]) if v)
    for row in found:
        zone = kpi.zone(row["timezone"])
        created = datetime.fromisoformat(row["created_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M") if row[
            "created_at"] else "—"  # fmt: skip
        rows.append({**row, "created": created, "contact": masked_contacts.get(row["ticket_id"])})
    next_url = None
    if len(found) == DRILL_PAGE:
        next_url = "/analytics/tickets?" + _query_string({**params, "hour": hour_raw, "lang": lang,
                                                          "after": found[-1]["cursor"]})  # fmt: skip
    context = {
        "lang": lang, "w": WORDS[lang], "active": "analytics", "request": request, "rows": rows, "mmss": mmss,
        "show_contacts": any(show.values()) or not show, "next_url": next_url,
        "back_url": "/analytics?" + _query_string({**params, "lang": lang}),
    }  # fmt: skip
    return Template(template_name="analytics/tickets.html", context=context, headers={"Cache-Control": "no-store"})


def parse_params(request: Request[Any, Any, Any], params: dict[str, str]) -> tuple[Scope, kpi.KpiQuery]:
    """Like `parse`, over already-picked parameters."""
    engine = _engine(request)
    for name in SCOPE_PARAMS:
        value = params.get(name)
        if value is not None and (len(value) > kpi.MAX_ID_LENGTH or not value.isprintable()):
            raise kpi.KpiQueryError(name, "not a valid identifier")
    scope = scope_for(engine, request.scope["user"], params.get("tenant"), params.get("branch_id"))
    return scope, kpi.parse_query(params, _today(engine, scope), extra=SCOPE_PARAMS)


def contacts_shown(engine: Engine, tenant: str) -> bool:
    """Whether the tenant lets drill-downs show (masked) contacts (default yes)."""
    with engine.connect() as conn:
        value = conn.execute(
            sa.select(tenant_settings.c.show_contacts).where(tenant_settings.c.tenant_id == tenant)
        ).scalar_one_or_none()
    return True if value is None else bool(value)


class ScheduleBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/v1/reports/schedules`."""

    tenant: str
    name: str
    cron: str
    recipients: list[str]
    branch_id: str | None = None
    days: int = 1
    lang: str = "id"


@post("/api/v1/reports/schedules", guards=[requires("reports.manage")])
async def create_schedule(request: Request[Any, Any, Any]) -> Response[Any]:
    """Schedule a report (cron in the branch's zone, or Asia/Jakarta for a tenant-wide one); 201 with its id. (The
    older form of `POST /api/v1/analytics/{tenant}/schedules`, kept for existing scripts.)"""
    try:
        body = msgspec.json.decode(await request.body(), type=ScheduleBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return problem(400, "Invalid body", str(exc), "invalid_body")
    engine, principal = _engine(request), request.scope["user"]
    try:
        await asyncio.to_thread(scope_for, engine, principal, body.tenant, body.branch_id)
    except NotInScope as exc:
        return problem(404, "Not found", str(exc), "not_found")
    allowed = [body.branch_id] if body.branch_id is not None else []  # scope_for found it among the caller's
    try:
        new = await asyncio.to_thread(schedules.build, engine, body.tenant, name=body.name, cron=body.cron,
                                      recipients=body.recipients, branch_id=body.branch_id, days=body.days,
                                      lang=body.lang, allowed=allowed)  # fmt: skip
        schedule_id = await asyncio.to_thread(
            schedules.create, engine, new, principal.username or "hq", datetime.now(UTC)
        )
    except schedules.ScheduleInvalid as exc:
        return problem(400, "Invalid schedule", str(exc), "invalid_schedule")
    return Response({"schedule_id": schedule_id}, status_code=201)


@get("/api/v1/reports/schedules", sync_to_thread=True, guards=[requires("reports.manage")])
def list_schedules(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The caller's tenants' schedules."""
    return {"schedules": schedules.listed(_engine(request), request.scope["user"].tenants)}


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """The live feed that wakes dashboards after each applied batch, this replica's report scheduler, its anomaly
    check, and (with NATS) the push of each branch's open alerts to its floor."""
    engine: Engine = app.state["engine"]
    feed = LiveFeed(engine)
    app.state["analytics_live"] = feed
    feed.start()
    scheduler = schedules.ReportScheduler(engine)
    app.state["analytics_reports"] = scheduler
    scheduler.start()
    # Anomaly alerts (cloud/analytics/anomalies.py) every QMS_ANOMALY_CHECK_SECONDS (default 60; 0 = off).
    interval = float(os.environ.get(anomalies.INTERVAL_ENV, "60"))
    checker = anomalies.AnomalyChecker(engine, interval=interval)
    app.state["analytics_anomalies"] = checker
    publishers: list[AlertPublisher] = []

    async def ready(nc: Any) -> None:
        publisher = AlertPublisher(engine, nc.jetstream())  # it makes the qms_alerts bucket itself, retrying
        publisher.start()
        publishers.append(publisher)
        checker.on_checked = publisher.nudge  # each check's opened/cleared alerts reach the floors at once
        app.state["analytics_alert_push"] = publisher

    if interval > 0:
        checker.start()
    servers = list(app.state.get("nats_servers") or ())
    async with contextlib.AsyncExitStack() as stack:
        if servers:  # connected in the background: a hub started while NATS is down still serves
            options = dict(app.state.get("nats_options") or {})
            await stack.enter_async_context(background_link("analytics", servers, options, ready,
                                                            ready_wait(app.state)))  # fmt: skip
        try:
            yield
        finally:
            for publisher in publishers:
                await publisher.stop()
            await checker.stop()
            await scheduler.stop()
            await feed.stop()


KEEPALIVE_SECONDS = 15.0
static = create_static_files_router(
    path="/analytics/static", directories=[STATIC], guards=[requires("analytics.read")], include_in_schema=False
)
ROUTES: list[Any] = [
    kpis_api,
    tickets_csv,
    dashboard,
    live,
    drill_down,
    static,
    create_schedule,
    list_schedules,
    *bi.ROUTES,
    *console.ROUTES,
    *manage_api.ROUTES,
]
