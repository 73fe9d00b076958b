"""The analytics area's routes: the KPI API, the ticket export, the HQ dashboard (page, live SSE, drill-down), the
vendored chart script; `cloud.web.app` mounts `ROUTES` and enters `lifespan(app)`.

Every route declares its permission (`analytics.read`, `analytics.export`) and answers only inside the caller's
scope: another tenant's or an unseen branch's id is 404, never an empty answer that would confirm it exists.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get
from litestar.response import Stream
from sqlalchemy.engine import Engine

from cloud.analytics.export import csv_chunks
from cloud.analytics.facts import load_settings
from cloud.analytics.queries import Scope, kpis
from cloud.identity.permissions import requires
from cloud.store import branches
from cloud.web.console_auth import HqPrincipal
from sync import kpi

STATIC = Path(__file__).parents[1] / "web" / "static"
PROBLEM = "application/problem+json"
SCOPE_PARAMS = ("tenant", "branch_id")


class NotInScope(Exception):
    """The tenant or branch is unknown or not the caller's (404)."""


def problem(status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None) -> Response[Any]:
    """An RFC 9457 problem+json answer with a stable `code`."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _engine(request: Request[Any, Any, Any]) -> Engine:
    engine: Engine = request.app.state["engine"]
    return engine


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


ROUTES: list[Any] = [kpis_api, tickets_csv]
