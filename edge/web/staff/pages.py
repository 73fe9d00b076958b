"""Staff pages: sign-in/out, language, the agent's counter desk and its live stream."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template

from edge.analytics import reports
from edge.audit import insert as insert_audit
from edge.auth import User, check_password, find_user
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.web.deps import Appliance, appliance
from edge.web.staff import boards, feedback, presence
from edge.web.staff.render import MESSAGES, RETRYABLE, error_message, language, render, translator
from edge.web.staff.session import (
    COOKIE,
    LANG_COOKIE,
    SESSION_LIFETIME,
    Refused,
    Staff,
    StaffDep,
    check_csrf,
    client_of,
    current_staff,
    entry,
    open_session,
    provide_staff,
    revoke_session,
    same_origin,
)
from edge.web.stream import Filter, Wire, event_stream, make_filter

NextParam = Annotated[str | None, QueryParameter(name="next")]
HOME = {"agent": "/staff/counter", "supervisor": "/staff/supervisor/", "admin": "/staff/supervisor/"}
LOGIN_FAILED = "Wrong username or password."
# Actions an agent's desk may post and whether they change a counter's presence rather than a ticket.
TICKET_ACTIONS = frozenset(
    {"call_next", "call", "recall", "start", "complete", "no_show", "hold", "unhold", "transfer", "cancel"}
)
AUDITED_FOR_AGENTS = frozenset({"transfer", "cancel", "presence"})


def _secure(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser reached us over TLS (directly or through a reverse proxy)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _safe_next(target: str | None, default: str) -> str:
    """Only local staff paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return target
    return default


def _login_page(request: Request[Any, Any, Any], status: int, **context: Any) -> Template:
    """The sign-in page, with the hub's single sign-on when this appliance offers it (edge/web/staff/sso.py)."""
    from edge.web.staff.sso import login_context  # it imports this module

    return render(request, "staff/login.html", None, status, **login_context(request), **context)


def wants_json(request: Request[Any, Any, Any]) -> bool:
    """The page's script posted (it reads a JSON answer); a plain form post gets a redirect."""
    return request.headers.get("x-requested-with") == "fetch"


def answer(
    request: Request[Any, Any, Any], back: str, ok: bool, message: str, retry: bool = False, status: int = 200
) -> Response[Any]:
    """The result of a posted action: JSON for the page's script, else a redirect back with the message."""
    if wants_json(request):
        return Response({"ok": ok, "message": message, "retry": retry}, status_code=status)
    sep = "&" if "?" in back else "?"
    return Redirect(f"{back}{sep}{'msg' if ok else 'err'}={quote(message)}", status_code=303)


async def run(app: Appliance, command: c.Command, audit: Any = None) -> dict[str, Any]:
    """Submit to the single writer (with an audit entry written in the same transaction) and await it."""
    outcome = await asyncio.wrap_future(app.service.submit(command, audit=audit))
    return outcome.response


class AuthPages(Controller):
    """Sign in, sign out, language switch."""

    path = "/staff"

    @get("/", sync_to_thread=False)
    def home(self, request: Request[Any, Any, Any]) -> Redirect:
        """Each role starts on its own page."""
        staff = current_staff(request)
        return Redirect(HOME.get(staff.role, "/staff/login") if staff else "/staff/login")

    @get("/login", sync_to_thread=False)
    def login_form(self, request: Request[Any, Any, Any], next_: NextParam = None) -> Template:
        """The sign-in form."""
        return _login_page(request, 200, next=_safe_next(next_, ""), error=None)

    @post("/login")
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any] | Template:
        """Check the password (throttled like the API's token route), open a session, set the cookie."""
        form = await request.form()
        username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:256]
        target = _safe_next(str(form.get("next", "")), "")
        _ = translator(request)
        if not same_origin(request):
            raise Refused("csrf")
        app = appliance(request)
        ip, agent = client_of(request)
        attempt = app.throttle.attempt(f"user:{username}", f"ip:{ip}")  # counted before the check (no race)
        if wait := attempt.wait:
            message = _("Too many failed attempts. Try again in %(minutes)s minutes.", minutes=(wait + 59) // 60)
            return _login_page(request, 429, next=target, error=message, username=username)
        found = app.service.read(lambda conn: find_user(conn, username)) if username else None
        user: User | None = found[0] if found else None
        ok = await asyncio.to_thread(check_password, found[1] if found else None, password)
        if not ok or user is None or not user.active or user.role == "device":
            role = user.role if user else None
            audit = entry(request, username or "?", role, "login_failed", via="staff_web")
            await asyncio.wrap_future(
                app.service.submit_store(lambda conn: insert_audit(conn, audit, datetime.now(UTC)))
            )
            return _login_page(request, 401, next=target, error=_(LOGIN_FAILED), username=username)
        attempt.succeeded()
        now = datetime.now(UTC)
        audit = entry(request, user.username, user.role, "login", via="staff_web")

        def sign_in(conn: sqlite3.Connection) -> str:
            insert_audit(conn, audit, now)
            return open_session(conn, user.username, ip, agent, now)

        session_id: str = await asyncio.wrap_future(app.service.submit_store(sign_in))
        response: Response[Any] = Redirect(target or HOME.get(user.role, "/staff/"), status_code=303)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path="/staff",
            httponly=True,
            samesite="lax",
            secure=_secure(request),
        )
        return response

    @post("/logout", dependencies={"staff": Provide(provide_staff)})
    async def logout(self, request: Request[Any, Any, Any], staff: StaffDep) -> Response[Any]:
        """Revoke the session (the cookie stops working everywhere) and clear it."""
        await check_csrf(request, staff, dict(await request.form()))
        app = appliance(request)
        audit = entry(request, staff.username, staff.role, "logout")

        def sign_out(conn: sqlite3.Connection) -> None:
            insert_audit(conn, audit, datetime.now(UTC))
            revoke_session(conn, staff.session_id)

        await asyncio.wrap_future(app.service.submit_store(sign_out))
        who = client_of(request)
        await presence.signed_out(app.service, staff.session_id, staff.username, staff.role, who)  # nobody left: closed
        response: Response[Any] = Redirect("/staff/login", status_code=303)
        response.delete_cookie(COOKIE, path="/staff")
        return response

    @get("/lang/{lang:str}", sync_to_thread=False)
    def switch_language(
        self, request: Request[Any, Any, Any], lang: FromPath[str], next_: NextParam = None
    ) -> Response[Any]:
        """Remember the language choice for a year and go back."""
        response: Response[Any] = Redirect(_safe_next(next_, "/staff/"))
        if lang in ("id", "en"):
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, path="/staff", samesite="lax", secure=_secure(request)
            )
        return response


class DeskPages(Controller):
    """The counter desk: current ticket, actions, waiting list, presence, live."""

    path = "/staff"
    dependencies = {"staff": Provide(provide_staff)}

    @get("/counter", sync_to_thread=False)
    def my_counter(self, request: Request[Any, Any, Any], staff: StaffDep) -> Redirect:
        """The first counter the staff member may use."""
        counters = _my_counters(request, staff)
        if not counters:
            raise Refused("no_counter")
        return Redirect(f"/staff/counter/{counters[0].id}")

    @get("/counter/{counter_id:str}")
    async def desk_page(
        self,
        request: Request[Any, Any, Any],
        staff: StaffDep,
        counter_id: FromPath[str],
        service: FromQuery[str | None] = None,
    ) -> Template:
        """The whole desk page; an agent opening it signs in to the counter (a closed counter opens)."""
        staff.require(*HOME)
        staff.require_counter(counter_id)
        app = appliance(request)
        if app.service.view.state.config and app.service.view.state.config.counter(counter_id):
            who = client_of(request)
            await presence.open_desk(app.service, staff.session_id, staff.username, staff.role, counter_id, who)
        return self._desk(request, staff, counter_id, service, "staff/counter.html")

    @get("/counter/{counter_id:str}/live")
    async def desk_live(
        self,
        request: Request[Any, Any, Any],
        staff: StaffDep,
        counter_id: FromPath[str],
        service: FromQuery[str | None] = None,
    ) -> Template:
        """Just the live part (re-fetched on every event; the agent's own figures include that event)."""
        await reports.fresh(appliance(request).service)
        return self._desk(request, staff, counter_id, service, "staff/_desk.html")

    def _desk(
        self, request: Request[Any, Any, Any], staff: StaffDep, counter_id: str, service: str | None, template: str
    ) -> Template:
        staff.require(*HOME)
        staff.require_counter(counter_id)
        view = appliance(request).service.view
        found = boards.desk(view, counter_id, datetime.now(UTC), language(request), service or None)
        if found is None:
            raise Refused("not_found", status=404)
        notice = request.query_params.get("msg")
        error = request.query_params.get("err")
        return render(
            request,
            template,
            staff,
            desk=found,
            counters=_my_counters(request, staff),
            service_filter=service or "",
            notice=notice,
            error=error,
            seq=view.seq,
            my_day=reports.agent_today(appliance(request).service, staff.username),
        )

    @post("/counter/{counter_id:str}/act")
    async def act(self, request: Request[Any, Any, Any], staff: StaffDep, counter_id: FromPath[str]) -> Response[Any]:
        """One desk action; engine refusals come back as a clear message (409s offer a retry)."""
        form = dict(await request.form())
        await check_csrf(request, staff, form)
        staff.require_counter(counter_id)
        back = f"/staff/counter/{counter_id}"
        _ = translator(request)
        action = str(form.get("action", ""))
        app = appliance(request)
        try:
            command = desk_command(app, staff, counter_id, action, form)
            audited = staff.principal.privileged or action in AUDITED_FOR_AGENTS
            audit = (
                entry(
                    request,
                    staff.username,
                    staff.role,
                    action,
                    target=f"counter:{counter_id}",
                    ticket=form.get("ticket_id"),
                    to_service=form.get("to_service_id"),
                    to_counter=form.get("to_counter_id"),
                    reason=form.get("reason"),
                    status=form.get("status"),
                    outcome=form.get("outcome"),
                )
                if audited
                else None
            )
            response = await run(app, command, audit)
        except DomainError as exc:
            retry = exc.code in RETRYABLE
            return answer(request, back, False, error_message(request, exc), retry=retry, status=exc.status)
        if action == "call_next" and response.get("ticket") is None:
            reason = str(response.get("reason") or "empty")
            return answer(request, back, True, _(MESSAGES.get(reason, MESSAGES["empty"])))
        if action == "presence":  # whoever sets a desk's presence is at that counter
            session_id = staff.session_id
            bind = presence.bind
            await asyncio.wrap_future(app.service.submit_store(lambda conn: bind(conn, session_id, counter_id)))
        state = app.service.view.state
        done = feedback.confirmation(state, language(request), action, {**form, "counter_id": counter_id}, response)
        return answer(request, back, True, done)

    @get("/events", sync_to_thread=False)
    def events(self, request: Request[Any, Any, Any], staff: StaffDep) -> ServerSentEvent:
        """The engine's event stream for this page session (the pages re-render on each event)."""
        app = appliance(request)
        assert app.broadcaster is not None
        wanted = make_filter(app.service, None, None) if staff.principal.privileged else _agent_filter(app, staff)
        return ServerSentEvent(
            event_stream(app.service, app.broadcaster, app.service.view.seq, wanted, notices=True),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _agent_filter(app: Appliance, staff: Staff) -> Filter:
    """An agent's page hears only events of its counters and of the services they serve (plus config changes)."""
    counters = set(staff.user.counters)

    def wanted(wire: Wire) -> bool:
        config = app.service.view.state.config
        services = {sid for cid in counters if config and (k := config.counter(cid)) for sid in k.services}
        return wire.broadcast or bool(wire.counter_ids & counters) or bool(wire.service_ids & services)

    return wanted


def _my_counters(request: Request[Any, Any, Any], staff: StaffDep) -> list[Any]:
    config = appliance(request).service.view.state.config
    if config is None:
        return []
    return [c for c in config.counters if staff.principal.may_use_counter(c.id) and c.active]


def _opt(form: dict[str, Any], key: str) -> str | None:
    value = str(form.get(key) or "").strip()
    return value[:500] or None


def desk_command(app: Appliance, staff: StaffDep, counter_id: str, action: str, form: dict[str, Any]) -> c.Command:
    """The engine command for a desk action, after the agent-specific access checks."""
    actor = staff.username
    ticket_id = _opt(form, "ticket_id") or ""
    request_id = _opt(form, "request_id")
    if action == "presence":
        status = str(form.get("status", ""))
        if status not in ("available", "busy", "break", "closed"):
            raise Refused("input", status=422)
        return c.SetPresence(actor=actor, request_id=request_id, counter_id=counter_id, status=status)  # type: ignore[arg-type]
    if action not in TICKET_ACTIONS:
        raise Refused("input", status=422)
    if action == "call_next":
        return c.CallNext(actor=actor, request_id=request_id, counter_id=counter_id)
    _check_ticket_access(app, staff, ticket_id, counter_id)
    base: dict[str, Any] = {"actor": actor, "request_id": request_id, "ticket_id": ticket_id, "counter_id": counter_id}
    if action == "call":
        return c.CallTicket(**base)
    if action == "transfer":
        return c.Transfer(
            **base,
            to_service_id=_opt(form, "to_service_id"),
            to_counter_id=_opt(form, "to_counter_id"),
            reason=_opt(form, "reason"),
        )
    if action == "complete":
        return c.Complete(**base, outcome=_opt(form, "outcome"))
    if action == "cancel":
        return c.Cancel(**base, reason=_opt(form, "reason"))
    simple: dict[str, type[c.Command]] = {
        "recall": c.Recall,
        "start": c.Start,
        "no_show": c.NoShow,
        "hold": c.Hold,
        "unhold": c.Unhold,
    }
    return simple[action](**base)


def _check_ticket_access(app: Appliance, staff: StaffDep, ticket_id: str, counter_id: str) -> None:
    """An agent may touch only tickets of services their counter serves, or tickets already at their counter."""
    if staff.principal.privileged:
        return
    state = app.service.view.state
    ticket = state.tickets.get(ticket_id)
    counter = state.config.counter(counter_id) if state.config else None
    if ticket is None or counter is None:
        return  # the engine answers not-found precisely
    if ticket.counter_id != counter_id and ticket.service_id not in counter.services:
        raise Refused("service")
