"""Offline kiosk tickets the appliance refused, for supervisors and the branch admin: the list on the floor page
(beside the kiosk printers), issuing a real ticket for the person holding the refused paper, or dismissing it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import Provide

from edge import offline_refused
from edge.audit import insert as insert_audit
from edge.audit import making_ticket
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.web.deps import Appliance, appliance
from edge.web.staff.boards import zone
from edge.web.staff.pages import answer, run
from edge.web.staff.render import error_message, translator
from edge.web.staff.session import Refused, StaffDep, check_csrf, entry, provide_staff

SUPERVISORS = ("admin", "supervisor")
BACK = "/staff/supervisor/"


def issue_request_id(temp_id: str) -> str:
    """The idempotency key of the real ticket issued for a refused one: a second click gets the same ticket."""
    return f"refused-{temp_id}"


def floor_rows(app: Appliance, lang: str) -> list[dict[str, Any]]:
    """The open refused tickets as the floor shows them: number, service, issue time in the branch zone, reason."""
    tz = zone(app.service.view)
    config = app.service.view.state.config
    rows = []
    for t in app.service.read(offline_refused.listing):
        names = t.service_names
        rows.append({
            "temp_id": t.temp_id,
            "number": offline_refused.printed_number(t),
            "service": names.get(lang) or names.get("") or t.service_id or "\u2013",
            "issued": t.issued_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
            "device_id": t.device_id,
            "reason": offline_refused.reason_text(t.code, lang),
            "code": t.code,
            "detail": t.detail,
            "known": t.code in offline_refused.REFUSED_WORDS["en"],  # else the engine's detail is shown beside it
            "attempts": t.attempts,
            "can_issue": bool(t.service_id and config and (s := config.service(t.service_id)) and s.active),
        })  # fmt: skip
    return rows


class OfflineRefusedPages(Controller):
    """`POST /staff/offline-refused/act`: issue a real ticket for a refused offline one, or dismiss it (audited)."""

    path = "/staff/offline-refused"
    dependencies = {"staff": Provide(provide_staff)}

    @post("/act")
    async def act(self, request: Request[Any, Any, Any], staff: StaffDep) -> Response[Any]:
        """`action=issue|dismiss`, `temp_id`: the refused ticket must still be open."""
        staff.require(*SUPERVISORS)
        form = dict(await request.form())
        await check_csrf(request, staff, form)
        app = appliance(request)
        _ = translator(request)
        temp_id = str(form.get("temp_id") or "")[:200]
        found = app.service.read(lambda conn: offline_refused.find(conn, temp_id))
        if found is None:
            raise Refused("not_found", status=404)
        if found.state != "open":
            return answer(request, BACK, False, _("This refused ticket was already handled."), status=409)
        number = offline_refused.printed_number(found)
        action = str(form.get("action") or "")
        if action == "dismiss":
            audit = entry(request, staff.username, staff.role, "offline_dismiss", target=f"offline:{temp_id}",
                          offline_number=number, refusal=found.code)  # fmt: skip
            if not await resolve_refused(app, temp_id, "dismissed", staff.username, audit):
                return answer(request, BACK, False, _("This refused ticket was already handled."), status=409)
            return answer(request, BACK, True, _("Refused ticket %(n)s dismissed.", n=number))
        if action != "issue" or found.service_id is None:
            raise Refused("input", status=422)
        audit = making_ticket(entry(request, staff.username, staff.role, "offline_issue", target=f"offline:{temp_id}",
                                    offline_number=number, refusal=found.code))  # fmt: skip
        try:
            ticket = await run(app, issue_command(found, staff.username), audit)
        except DomainError as exc:
            return answer(request, BACK, False, error_message(request, exc), status=exc.status)
        await resolve_refused(app, temp_id, "issued", staff.username, None, ticket)
        message = _("Ticket %(new)s issued for refused offline ticket %(n)s.", new=ticket["ticket_number"], n=number)
        return answer(request, BACK, True, message)


def issue_command(found: offline_refused.RefusedTicket, actor: str) -> c.Enqueue:
    """The real ticket for the person holding a refused one: the same service and language, idempotent per refusal
    (the floor's button and `POST /api/v1/kiosk/offline-refused/{temp_id}/issue` make the same one)."""
    assert found.service_id is not None  # callers refuse a refusal without a service first
    return c.Enqueue(actor=actor, request_id=issue_request_id(found.temp_id), service_id=found.service_id,
                     channel="front_desk", lang=found.lang)  # fmt: skip


async def resolve_refused(app: Appliance, temp_id: str, state: offline_refused.State, actor: str, audit: Any,
                          ticket: dict[str, Any] | None = None) -> bool:  # fmt: skip
    """Close the refused ticket (and write the audit entry with it) in one writer transaction; False (and no audit
    entry) when it was no longer open (someone else handled it meanwhile)."""
    now = datetime.now(UTC)

    def write(conn: sqlite3.Connection) -> bool:
        done = offline_refused.resolve(conn, temp_id, state, actor=actor, now=now,  # type: ignore[arg-type]
                                       ticket_id=ticket["ticket_id"] if ticket else None,
                                       new_number=ticket["ticket_number"] if ticket else None)  # fmt: skip
        if done and audit is not None:
            insert_audit(conn, audit, now)
        return done

    return bool(await asyncio.wrap_future(app.service.submit_store(write)))
