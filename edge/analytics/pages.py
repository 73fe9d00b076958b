"""`/staff/reports`: the branch report page (filters, KPI tables, charts), drill-down to tickets, CSV download.

For the branch manager (admin) and supervisors, signed in with the staff session. The figures are the API's
(`sync.kpi` over the fact projection); the page renders them as tables first, and the vendored Chart.js draws the
charts over the same numbers when JavaScript runs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.response import Stream, Template

from edge.analytics import figures, reports
from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from edge.engine.model import ticket_decoder
from edge.views import mask_email, mask_phone
from edge.web.deps import appliance
from edge.web.staff.pages import answer
from edge.web.staff.render import render, translator
from edge.web.staff.session import Refused, StaffDep, check_csrf, entry, provide_staff
from sync.kpi import CHANNELS, KpiQuery, KpiQueryError, TicketFact, parse_query

MANAGERS = ("admin", "supervisor")
FILTERS = ("from", "to", "service_id", "priority", "channel", "counter_id")
DRILL = ("day", "hour", "outcome", "sla")
OUTCOMES = {
    "done": "status = 'done'",
    "no_show": "status = 'no_show'",
    "cancelled": "status = 'cancelled'",
    "open": "status IN ('waiting', 'called', 'serving', 'held')",
}
DRILL_LIMIT = 500  # tickets listed on one drill-down page (the CSV has them all)


def _params(request: Request[Any, Any, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The non-empty query parameters among `names`."""
    return {k: v for k in names if (v := request.query_params.get(k, "").strip())}


def _query(request: Request[Any, Any, Any]) -> tuple[KpiQuery | None, str | None]:
    """The page's filters, or the reason they cannot be used (shown above the form)."""
    app = appliance(request)
    try:
        return parse_query(_params(request, FILTERS), reports.today(app.service)), None
    except KpiQueryError as exc:
        return None, f"{exc.field}: {exc.message}"


def _drill_condition(params: dict[str, str]) -> tuple[str, tuple[Any, ...]] | None:
    """The drill-down's extra SQL condition over fact columns; None when a value is not one we offer."""
    clauses: list[str] = []
    values: list[Any] = []
    if "day" in params:
        if len(params["day"]) != len("2026-01-01"):
            return None
        clauses.append("business_date = ?")
        values.append(params["day"])
    if "hour" in params:
        if not params["hour"].isdigit() or int(params["hour"]) > 23:  # noqa: PLR2004 - hours of a day
            return None
        clauses.append("hour = ?")
        values.append(int(params["hour"]))
    if "outcome" in params:
        if params["outcome"] not in OUTCOMES:
            return None
        clauses.append(OUTCOMES[params["outcome"]])
    if "sla" in params:
        if params["sla"] not in ("met", "missed"):
            return None
        clauses.append("sla_met = ?")
        values.append(1 if params["sla"] == "met" else 0)
    return " AND ".join(clauses), tuple(values)


CONTACTS_KEY = "report_contacts"  # meta: "hidden" when the branch admin switched contacts off in reports


def contacts_shown(conn: sqlite3.Connection) -> bool:
    """Whether report drill-downs show (masked) contacts: the branch admin's PII switch (default on)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CONTACTS_KEY,)).fetchone()
    return row is None or row[0] != "hidden"


def set_contacts_shown(conn: sqlite3.Connection, show: bool, audit: AuditEntry) -> None:
    """Store the PII switch and its audit entry (one writer transaction)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (CONTACTS_KEY, "shown" if show else "hidden"))  # fmt: skip
    insert_audit(conn, audit, datetime.now(UTC))


def _contacts(request: Request[Any, Any, Any], ticket_ids: list[str]) -> dict[str, str]:
    """Masked phone or e-mail of listed tickets (from the ticket projection; the facts never hold contacts)."""
    if not ticket_ids:
        return {}
    marks = ",".join("?" * len(ticket_ids))
    sql = f"SELECT data FROM tickets WHERE ticket_id IN ({marks})"  # noqa: S608 - placeholders only
    rows = appliance(request).service.read(lambda conn: conn.execute(sql, ticket_ids).fetchall())
    out = {}
    for (data,) in rows:
        ticket = ticket_decoder.decode(data)
        shown = mask_phone(ticket.phone) or mask_email(ticket.email)
        if shown:
            out[ticket.ticket_id] = shown
    return out


def _options(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The filter form's choices from the configuration."""
    config = appliance(request).service.view.state.config
    return {
        "services": config.services if config else [],
        "counters": config.counters if config else [],
        "channels": sorted(CHANNELS),
    }


def _counter_label(request: Request[Any, Any, Any]) -> Any:
    """A counter's configured name (its id once it is no longer configured)."""
    config = appliance(request).service.view.state.config

    def label(counter_id: str) -> str:
        counter = config.counter(counter_id) if config else None
        return counter.name if counter else counter_id

    return label


def _link(base: str, filters: dict[str, str], **drill: Any) -> str:
    """A URL with the current filters and drill-down values."""
    params = {**filters, **{k: str(v) for k, v in drill.items() if v is not None}}
    return f"{base}?{urlencode(params)}" if params else base


class ReportPages(Controller):
    """The report page, its drill-down and its CSV download."""

    path = "/staff/reports"
    dependencies = {"staff": Provide(provide_staff)}

    @get("/")
    async def page(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """Filters, totals, tables per day/service/counter, wait distribution, heat map, SLA trend."""
        staff.require(*MANAGERS)
        query, error = _query(request)
        filters = _params(request, FILTERS)
        data = None
        if query is not None:
            data = figures.report(await reports.select(appliance(request).service, query))
        chart = json.dumps(
            {"wait": data["wait_histogram"] if data else None, "sla": data["sla_trend"] if data else []}
        ).replace("<", "\\u003c")  # inside a <script> data block: no markup can close it
        return render(
            request,
            "staff/reports.html",
            staff,
            400 if error else 200,
            query=query,
            error=error,
            filters=filters,
            data=data,
            chart_json=chart,
            drill=lambda **kw: _link("/staff/reports/tickets", filters, **kw),
            csv_url=_link("/staff/reports/tickets.csv", filters),
            csv_excel_url=_link("/staff/reports/tickets.csv", {**filters, "sep": ";"}),
            lambda_day=lambda day: day,
            counter_label=_counter_label(request),
            show_contacts=appliance(request).service.read(contacts_shown),
            notice=request.query_params.get("msg"),
            **_options(request),
        )

    @get("/tickets")
    async def tickets(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """The tickets behind a figure: the page's filters plus day/hour/outcome/SLA; contacts masked."""
        staff.require(*MANAGERS)
        query, error = _query(request)
        drill = _params(request, DRILL)
        condition = _drill_condition(drill)
        found: list[TicketFact] = []
        if query is not None and condition is not None:
            found = await reports.select(appliance(request).service, query, *condition)
        elif condition is None:
            error = "drill-down: unknown value"
        shown = found[:DRILL_LIMIT]
        show_contacts = appliance(request).service.read(contacts_shown)
        return render(
            request,
            "staff/report_tickets.html",
            staff,
            400 if error else 200,
            error=error,
            filters=_params(request, FILTERS),
            drill_params=drill,
            tickets=shown,
            total=len(found),
            limit=DRILL_LIMIT,
            contacts=_contacts(request, [f.ticket_id for f in shown]) if show_contacts else {},
            show_contacts=show_contacts,
            back=_link("/staff/reports/", _params(request, FILTERS)),
            csv_url=_link("/staff/reports/tickets.csv", _params(request, FILTERS)),
        )

    @post("/contacts")
    async def contacts_switch(self, request: Request[Any, Any, Any], staff: StaffDep) -> Response[Any]:
        """The branch admin's PII switch: show contacts (masked) in report drill-downs, or not at all; audited."""
        staff.require("admin")
        form = dict(await request.form())
        await check_csrf(request, staff, form)
        show = form.get("show_contacts") == "on"
        audit = entry(request, staff.username, staff.role, "report_contacts", target="reports", shown=show)
        service = appliance(request).service
        await asyncio.wrap_future(service.submit_store(lambda conn: set_contacts_shown(conn, show, audit)))
        return answer(request, "/staff/reports/", True, translator(request)("Saved."))

    @get("/tickets.csv")
    async def download(self, request: Request[Any, Any, Any], staff: StaffDep) -> Stream:
        """The CSV export (same as the API's) for the page's filters, with the staff session."""
        staff.require(*MANAGERS)
        app = appliance(request)
        params = _params(request, FILTERS)
        if request.query_params.get("sep"):
            params["sep"] = request.query_params["sep"]
        try:
            query = parse_query(params, reports.today(app.service))
        except KpiQueryError:
            raise Refused("input", status=400) from None
        await reports.fresh(app.service)
        name = reports.csv_filename(app.service.view.state.branch_id, query)
        return Stream(
            reports.csv_chunks(reports.db_path(app.service), query),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )


ROUTES = [ReportPages]
