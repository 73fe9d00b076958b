"""`/api/v1/kiosk/offline-refused`: offline kiosk tickets the appliance refused, for supervisors and admins (and
integrators with their token): the list, and per refused ticket `issue` (a real ticket for the person holding the
paper, idempotent) or `dismiss` — the floor page's two buttons (edge/web/staff/offline_refused.py) as JSON."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from msgspec import Struct

from edge import offline_refused
from edge.audit import making_ticket
from edge.engine.model import ticket_decoder
from edge.views import ticket_view
from edge.web.deps import Appliance, appliance, audit_entry, require_role
from edge.web.kiosk import Caller, _kiosk_app
from edge.web.problems import PROBLEM_MEDIA_TYPE, ApiError, Problem
from edge.web.staff.offline_refused import issue_command, resolve_refused

ROLES = ("admin", "supervisor")
Wanted = Literal["open", "issued", "dismissed", "all"]
StateParam = Annotated[Wanted, QueryParameter(name="state")]  # `state` is a reserved kwarg name in Litestar
LangParam = FromQuery[Literal["id", "en"]]


def _problem(text: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_MEDIA_TYPE, description=text)


NOT_FOUND = _problem("No refused offline ticket with this temporary id (`offline_refused_not_found`)")


class RefusedView(Struct, kw_only=True, forbid_unknown_fields=True):
    """One refused offline ticket: what the customer's paper says, why the appliance refused it, what became of it."""

    temp_id: str
    lease_id: str
    seq_no: int
    device_id: str
    service_id: str | None
    service_name: str | None
    ticket_number: str | None
    issued_at: datetime
    issued_local: str
    lang: str | None
    code: str
    reason: str
    detail: str
    refused_at: datetime
    attempts: int
    state: Literal["open", "issued", "dismissed"]
    resolved_by: str | None
    resolved_at: datetime | None
    ticket_id: str | None
    new_number: str | None


class RefusedList(Struct, kw_only=True, forbid_unknown_fields=True):
    """The refused offline tickets in the asked state; `open` counts those still waiting for staff."""

    state: Wanted
    open: int
    tickets: list[RefusedView]


@get("/api/v1/kiosk/offline-refused", sync_to_thread=False,
     summary="Offline kiosk tickets the appliance refused (supervisor, admin)")  # fmt: skip
def offline_refused_list(
    request: Request[Any, Any, Any],
    principal: Caller,
    wanted: StateParam = "open",
    lang: LangParam = "en",
) -> RefusedList:
    """Tickets a kiosk issued offline that the appliance refused at reconciliation (oldest first), with the reason
    in words (`lang`) and the issue time in the branch's zone; `state=all` lists every one kept."""
    require_role(principal, *ROLES)
    service = _kiosk_app(request).service
    config = service.view.state.config
    tz = ZoneInfo(config.timezone if config else "Asia/Jakarta")  # a configured zone is validated on apply
    selected = None if wanted == "all" else wanted
    found, open_count = service.read(
        lambda conn: (offline_refused.listing(conn, selected), offline_refused.count_open(conn))
    )
    views = [_view(t, lang, tz) for t in found]
    return RefusedList(state=wanted, open=open_count, tickets=views)


def _view(t: offline_refused.RefusedTicket, lang: str, tz: ZoneInfo) -> RefusedView:
    """The stored row with its service's name and reason in `lang` and its issue time in the branch's zone."""
    return RefusedView(
        temp_id=t.temp_id, lease_id=t.lease_id, seq_no=t.seq_no, device_id=t.device_id, service_id=t.service_id,
        service_name=t.service_names.get(lang) or t.service_names.get("") or None, ticket_number=t.ticket_number,
        issued_at=t.issued_at, issued_local=t.issued_at.astimezone(tz).isoformat(), lang=t.lang, code=t.code,
        reason=offline_refused.reason_text(t.code, lang), detail=t.detail, refused_at=t.refused_at,
        attempts=t.attempts, state=t.state, resolved_by=t.resolved_by, resolved_at=t.resolved_at,
        ticket_id=t.ticket_id, new_number=t.new_number,
    )  # fmt: skip


def _found(app: Appliance, temp_id: str) -> offline_refused.RefusedTicket:
    found = app.service.read(lambda conn: offline_refused.find(conn, temp_id))
    if found is None:
        raise ApiError(404, "offline_refused_not_found", "no refused offline ticket with this temporary id")
    return found


def _zone(app: Appliance) -> ZoneInfo:
    config = app.service.view.state.config
    return ZoneInfo(config.timezone if config else "Asia/Jakarta")


def _issued_ticket(app: Appliance, ticket_id: str) -> dict[str, Any]:
    """The ticket issued for a refused one: from memory (today's), else from the tickets projection (earlier day)."""
    found = app.service.view.ticket(ticket_id)
    if found is not None:
        return found
    row = app.service.read(lambda conn: conn.execute("SELECT data FROM tickets WHERE ticket_id = ?",
                                                     (ticket_id,)).fetchone())  # fmt: skip
    if row is None:  # cannot happen: a ticket is never deleted from the projection
        raise ApiError(404, "ticket_not_found", f"no ticket {ticket_id!r}")
    return ticket_view(ticket_decoder.decode(row[0]))


@post("/api/v1/kiosk/offline-refused/{temp_id:str}/issue", status_code=201,
      summary="Issue a real ticket for a refused offline ticket (supervisor, admin)",
      responses={404: NOT_FOUND,
                 409: _problem("The refused ticket was dismissed (`offline_refused_handled`)"),
                 422: _problem("No ticket can be made: the refusal has no known service "
                               "(`offline_refused_no_service`) or the engine refuses it (`unknown_service`, "
                               "`service_inactive`, …: dismiss it then)")})  # fmt: skip
async def offline_refused_issue(request: Request[Any, Any, Any], principal: Caller,
                                temp_id: FromPath[str]) -> Response[dict[str, Any]]:  # fmt: skip
    """Enqueue a ticket of the refused one's service and language (channel `front_desk`) for the person holding the
    paper, audited with the offline number; the ticket is the answer. Idempotent: asked again (or after the floor's
    button), it answers the same ticket with `Idempotent-Replayed: true`. Not printed: tickets staff issue never are."""
    require_role(principal, *ROLES)
    app = appliance(request)
    found = _found(app, temp_id)
    if found.state == "issued" and found.ticket_id:
        return Response(_issued_ticket(app, found.ticket_id), status_code=201, headers={"Idempotent-Replayed": "true"})
    if found.state != "open":
        raise ApiError(409, "offline_refused_handled", f"this refused ticket was {found.state}", state=found.state)
    if found.service_id is None:
        raise ApiError(422, "offline_refused_no_service", "the refused ticket's service is not known: dismiss it")
    number = offline_refused.printed_number(found)
    audit = audit_entry(request, principal.username, principal.role, "offline_issue", f"offline:{temp_id}",
                        offline_number=number, refusal=found.code, via="api")  # fmt: skip
    audit = making_ticket(audit)  # with the new ticket's id and number
    outcome = await asyncio.wrap_future(app.service.submit(issue_command(found, principal.username), audit=audit))
    ticket: dict[str, Any] = outcome.response
    await resolve_refused(app, temp_id, "issued", principal.username, None, ticket)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return Response(ticket, status_code=201, headers=headers)


@post("/api/v1/kiosk/offline-refused/{temp_id:str}/dismiss", status_code=200,
      summary="Dismiss a refused offline ticket (supervisor, admin)",
      responses={404: NOT_FOUND,
                 409: _problem("Already handled: issued or dismissed before (`offline_refused_handled`)")})  # fmt: skip
async def offline_refused_dismiss(request: Request[Any, Any, Any], principal: Caller, temp_id: FromPath[str],
                                  lang: LangParam = "en") -> RefusedView:  # fmt: skip
    """Close it without a ticket (the person left, or was helped otherwise), audited; the answer is the closed row
    (reason in `lang`)."""
    require_role(principal, *ROLES)
    app = appliance(request)
    found = _found(app, temp_id)
    if found.state == "open":
        audit = audit_entry(request, principal.username, principal.role, "offline_dismiss", f"offline:{temp_id}",
                            offline_number=offline_refused.printed_number(found), refusal=found.code,
                            via="api")  # fmt: skip
        if await resolve_refused(app, temp_id, "dismissed", principal.username, audit):
            return _view(_found(app, temp_id), lang, _zone(app))
        found = _found(app, temp_id)  # handled meanwhile
    raise ApiError(409, "offline_refused_handled", f"this refused ticket was already {found.state}",
                   state=found.state)  # fmt: skip
