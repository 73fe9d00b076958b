"""`GET /api/v1/kpis` and `GET /api/v1/reports/tickets.csv`: the KPI API and the ticket export of ARCHITECTURE.md.

Thin: filters parsed by `sync.kpi.parse_query` (a bad one is 400 problem+json naming it), figures from the fact
projection. For the branch's admin (the branch manager) and supervisors only: reports show every ticket's times.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from edge.analytics import reports
from edge.auth import Principal
from edge.web.deps import Appliance, provide_principal, require_role
from edge.web.problems import ApiError
from sync.kpi import CSV_HEADER, KpiQuery, KpiQueryError

REPORT_ROLES = ("admin", "supervisor")
AppDep = NamedDependency[Appliance]
Caller = NamedDependency[Principal]


def _param(description: str, name: str | None = None) -> Any:
    """An optional, documented query parameter (validated by sync.kpi.parse_query, not by the framework)."""
    return QueryParameter(description=description, name=name, required=False)


_D = "Branch-local date YYYY-MM-DD, inclusive (default: today)."
From = Annotated[str | None, _param(_D, "from")]
To = Annotated[str | None, _param(_D, "to")]
ServiceId = Annotated[str | None, _param("Only this service.")]
Priority = Annotated[str | None, _param("Only this priority class (0-9).")]
Channel = Annotated[str | None, _param("Only this channel: walk_in, kiosk, web, mobile, appointment, front_desk.")]
CounterId = Annotated[str | None, _param("Only tickets last handled at this counter.")]
GroupBy = Annotated[str | None, _param("day|hour|service|counter|branch, comma-separated (a row per combination).")]
Sep = Annotated[str | None, _param("Field separator: ',' (default) or ';' (Excel in the Indonesian locale).")]


class KpiFigures(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The KPI fields of one row or of the totals (null where there is nothing to measure)."""

    tickets: int
    done: int
    no_shows: int
    cancelled: int
    no_show_rate: float | None
    wait_avg_s: float | None
    wait_p50_s: float | None
    wait_p90_s: float | None
    service_avg_s: float | None
    service_p50_s: float | None
    sla_met_pct: float | None
    throughput_per_hour: float | None


class KpiRow(KpiFigures, kw_only=True, forbid_unknown_fields=True):
    """One group's figures with its keys (only the keys of the requested grouping are present)."""

    day: str | msgspec.UnsetType | None = msgspec.UNSET
    hour: int | msgspec.UnsetType | None = msgspec.UNSET
    service_id: str | msgspec.UnsetType | None = msgspec.UNSET
    counter_id: str | msgspec.UnsetType | None = msgspec.UNSET
    branch_id: str | msgspec.UnsetType | None = msgspec.UNSET


class KpiAnswer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /kpis`: the range, the grouping, a row per group and the totals."""

    date_from: str = msgspec.field(name="from")
    date_to: str = msgspec.field(name="to")
    timezone: str
    group_by: list[str]
    rows: list[KpiRow]
    totals: KpiFigures


def parse(request: Request[Any, Any, Any], app: Appliance) -> KpiQuery:
    """The validated filters of a request, or 400 `invalid_query` naming the parameter."""
    params = dict(request.query_params.items())
    try:
        return reports.query_of(app.service, params)
    except KpiQueryError as exc:
        raise ApiError(400, "invalid_query", str(exc), parameter=exc.field) from None


class ReportController(Controller):
    """Branch KPIs and the ticket export."""

    path = "/"
    dependencies = {"principal": Provide(provide_principal)}
    tags = ["reports"]

    @get("/kpis", summary="Branch KPIs (wait, service, no-shows, SLA, throughput) by day, hour, service or counter")
    async def kpis(
        self,
        request: Request[Any, Any, Any],
        app: AppDep,
        principal: Caller,
        date_from: From = None,
        date_to: To = None,
        service_id: ServiceId = None,
        priority: Priority = None,
        channel: Channel = None,
        counter_id: CounterId = None,
        group_by: GroupBy = None,
    ) -> KpiAnswer:
        """`{"rows": [{<group keys>, tickets, done, no_shows, cancelled, no_show_rate, wait_avg_s, wait_p50_s,
        wait_p90_s, service_avg_s, service_p50_s, sla_met_pct, throughput_per_hour}], "totals": {...}}`.

        Definitions (sync/kpi.py): wait = first call - creation; service = completion - start of serving (done only);
        no_show_rate = no-shows / (done + no-shows); sla_met_pct over tickets with a wait; throughput = done per hour
        with activity; p50/p90 exact (percentile_cont). Dates and hours are branch-local; a figure with nothing to
        measure is null. Group keys: `day`, `hour`, `service_id`, `counter_id`, `branch_id`.
        """
        require_role(principal, *REPORT_ROLES)
        return msgspec.convert(await reports.kpis(app.service, parse(request, app)), KpiAnswer, from_attributes=False)

    @get(
        "/reports/tickets.csv",
        summary="Ticket export (CSV, header version 1), streamed",
        media_type="text/csv; charset=utf-8",
    )
    async def tickets_csv(
        self,
        request: Request[Any, Any, Any],
        app: AppDep,
        principal: Caller,
        date_from: From = None,
        date_to: To = None,
        service_id: ServiceId = None,
        priority: Priority = None,
        channel: Channel = None,
        counter_id: CounterId = None,
        sep: Sep = None,
    ) -> Stream:
        """UTF-8, RFC 4180, one row per ticket in creation order, the header fixed as version 1:
        `ticket_id,ticket_number,branch_id,service_id,counter_id,priority,channel,status,created_at,called_at,
        served_at,completed_at,wait_seconds,service_seconds,outcome,transferred,returned,timezone`.

        Times are RFC 3339 with the branch zone's offset; cells starting with = + - @ get a leading apostrophe; no
        phone, e-mail or customer reference. Streamed from the database in pages (constant memory).
        """
        require_role(principal, *REPORT_ROLES)
        query = parse(request, app)
        if query.group_by:
            raise ApiError(400, "invalid_query", "group_by: not used by the export", parameter="group_by")
        await reports.fresh(app.service)
        name = reports.csv_filename(app.service.view.state.branch_id, query)
        return Stream(
            reports.csv_chunks(reports.db_path(app.service), query),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-QMS-CSV-Version": "1",
                "X-QMS-CSV-Columns": str(len(CSV_HEADER)),
            },
        )


ROUTES = [ReportController]
