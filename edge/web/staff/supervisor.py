"""The supervisor's floor view: every counter and service live, and audited interventions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.response import Template

from edge.analytics import hq_alerts, reports
from edge.auth import list_users
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.web.deps import appliance
from edge.web.kiosk.printing import PrintDesk
from edge.web.staff import boards, feedback, offline_refused
from edge.web.staff.pages import answer, run
from edge.web.staff.render import RETRYABLE, error_message, language, render, translator
from edge.web.staff.session import Refused, StaffDep, check_csrf, entry, provide_staff

SUPERVISORS = ("admin", "supervisor")
RECENT_EVENTS = 500  # how far back the floor looks for who last acted at each counter


def kiosk_printers(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """Every kiosk printer the configuration names or that printed since start, with its last outcome (problems first).

    A printer that has not printed yet has `ok` None; `at` is a datetime (UTC) when known.
    """
    config = appliance(request).service.view.state.config
    desk: PrintDesk = request.app.state["kiosk"].desk
    known = {p["device_id"]: p for p in desk.snapshot()}
    configured = dict(config.kiosk.printers) if config else {}
    rows = []
    for device_id in sorted(known.keys() | configured.keys()):
        status = known.get(device_id)
        address = desk.address_for(config.kiosk, device_id) if config and status is None else None
        rows.append({
            "device_id": device_id,
            "address": status["address"] if status else (address.target if address else None),
            "ok": status["ok"] if status else None,
            "error": status["error"] if status else None,
            "detail": status["detail"] if status else None,
            "at": datetime.fromisoformat(status["at"]) if status and status["at"] else None,
            "printed": status["printed"] if status else 0,
            "failed": status["failed"] if status else 0,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["ok"] is not False, r["device_id"]))


def _opt(form: dict[str, Any], key: str) -> str | None:
    value = str(form.get(key) or "").strip()
    return value[:500] or None


def intervention(actor: str, form: dict[str, Any]) -> tuple[str, c.Command]:
    """The audit action name and the engine command of a supervisor's intervention."""
    action = str(form.get("action", ""))
    ticket_id = _opt(form, "ticket_id") or ""
    if action == "presence":
        status = str(form.get("status", ""))
        counter_id = _opt(form, "counter_id") or ""
        if status not in ("available", "busy", "break", "closed"):
            raise Refused("input", status=422)
        name = "close_counter" if status == "closed" else "set_presence"
        return name, c.SetPresence(actor=actor, counter_id=counter_id, status=status)  # type: ignore[arg-type]
    if action == "transfer":
        to_counter = _opt(form, "to_counter_id")
        name = "reassign" if to_counter and not _opt(form, "to_service_id") else "force_transfer"
        cmd = c.Transfer(
            actor=actor,
            ticket_id=ticket_id,
            to_service_id=_opt(form, "to_service_id"),
            to_counter_id=to_counter,
            reason=_opt(form, "reason"),
        )
        return name, cmd
    if action == "cancel":
        return "cancel", c.Cancel(actor=actor, ticket_id=ticket_id, reason=_opt(form, "reason"))
    if action == "unhold":
        return "unhold", c.Unhold(actor=actor, ticket_id=ticket_id)
    raise Refused("input", status=422)


class SupervisorPages(Controller):
    """`/staff/supervisor`: the floor at a glance, live."""

    path = "/staff/supervisor"
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", sync_to_thread=False)
    def floor(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """The whole page."""
        return self._floor(request, staff, "staff/supervisor.html")

    @get("/live")
    async def floor_live(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """The live part, re-fetched on each event (today's figures include that event)."""
        await reports.fresh(appliance(request).service)
        return self._floor(request, staff, "staff/_floor.html")

    def _floor(self, request: Request[Any, Any, Any], staff: StaffDep, template: str) -> Template:
        staff.require(*SUPERVISORS)
        app = appliance(request)
        view = app.service.view
        now = datetime.now(UTC)
        by_counter: dict[str, list[str]] = {}
        for user in app.service.read(list_users):
            if user.active and user.role == "agent":
                for counter_id in user.counters:
                    by_counter.setdefault(counter_id, []).append(user.username)
        config = view.state.config
        recent = app.service.events_after(max(0, view.seq - RECENT_EVENTS), RECENT_EVENTS)
        last_actor = {
            cid: event.actor
            for event in recent
            if (cid := getattr(event, "counter_id", None)) and event.actor not in ("system", "")
        }
        return render(
            request,
            template,
            staff,
            counters=boards.counter_lines(view, now, by_counter),
            last_actor=last_actor,
            services=boards.service_lines(view, now),
            tickets=boards.active_rows(view, now, language(request)),
            all_services=config.services if config else [],
            all_counters=config.counters if config else [],
            service_name=lambda sid: boards.service_name(
                config.service(sid) if config else None, language(request), sid
            ),
            counter_name=lambda cid: config.counter(cid).name if config and config.counter(cid) else cid,  # type: ignore[union-attr]
            printers=kiosk_printers(request),
            refused=offline_refused.floor_rows(app, language(request)),
            today=reports.today_row(app.service),
            hq_alerts=hq_alerts.floor_view(app.service.data_dir, reports.timezone(app.service)),
            error=request.query_params.get("err"),
            notice=request.query_params.get("msg"),
        )

    @post("/act")
    async def act(self, request: Request[Any, Any, Any], staff: StaffDep) -> Response[Any]:
        """An intervention; written to the audit log in the same transaction as its effect."""
        staff.require(*SUPERVISORS)
        form = dict(await request.form())
        await check_csrf(request, staff, form)
        name, command = intervention(staff.username, form)
        target = f"counter:{form['counter_id']}" if form.get("counter_id") else f"ticket:{form.get('ticket_id')}"
        audit = entry(
            request,
            staff.username,
            staff.role,
            name,
            target=target,
            ticket=form.get("ticket_id"),
            to_service=form.get("to_service_id"),
            to_counter=form.get("to_counter_id"),
            reason=form.get("reason"),
            status=form.get("status"),
        )
        app = appliance(request)
        try:
            response = await run(app, command, audit)
        except DomainError as exc:
            return answer(
                request,
                "/staff/supervisor/",
                False,
                error_message(request, exc),
                retry=exc.code in RETRYABLE,
                status=exc.status,
            )
        done = feedback.confirmation(app.service.view.state, language(request), name, form, response)
        return answer(request, "/staff/supervisor/", True, done or translator(request)("Done."))
