"""`/api/v1`: thin controllers that turn requests into engine commands and views into JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from datetime import date as datetime_date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent

from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from edge.auth import Principal, User, check_password, find_user
from edge.devices.api import DeviceController, PairingController
from edge.engine import commands as c
from edge.engine.model import ACTIVE_STATUSES, ticket_decoder
from edge.engine.numbering import business_date
from edge.service import Outcome
from edge.views import ticket_view
from edge.web.deps import (
    Appliance,
    audit_entry,
    client_address,
    provide_appliance,
    provide_principal,
    require_counter,
    require_role,
)
from edge.web.kiosk import check_lang
from edge.web.problems import ApiError, decode_json_body
from edge.web.schemas import (
    CallTicketBody,
    CancelBody,
    CompleteBody,
    CounterCommand,
    CreateTicket,
    PresenceBody,
    TokenRequest,
    TransferBody,
)
from edge.web.stream import event_stream, make_filter
from sync.contract import TicketStatus
from sync.contract_config import BranchConfig, config_decoder, structural_errors

STAFF = ("admin", "supervisor", "agent")
AppDep = NamedDependency[Appliance]
Caller = NamedDependency[Principal]
CONFIG_MAX_BYTES = 1024 * 1024
CONFIG_BODY = (
    "The whole branch configuration document (`GET /config` returns the current one; fields in "
    "docs/branch-admin-guide.md). A document that breaks a rule is `422 invalid_config` with every error listed."
)
MAX_SEQ_DIGITS = 18  # seq is a SQLite INTEGER


async def record(app: Appliance, entry: AuditEntry) -> None:
    """Write an audit row that goes with no command (sign-ins, refusals) in its own writer transaction."""
    await asyncio.wrap_future(app.service.submit_store(lambda conn: insert_audit(conn, entry, datetime.now(UTC))))


async def run(app: AppDep, command: c.Command, audit: AuditEntry | None = None) -> Outcome:
    """Submit to the single writer and await the committed outcome (with `audit`, recorded in its transaction)."""
    return await asyncio.wrap_future(app.service.submit(command, audit))


# Audit rule (docs/branch-admin-guide.md): every sign-in; every action of a supervisor or admin (an intervention);
# and, from agents and devices, the actions that take a ticket away from its queue or change a counter's
# availability. An agent's routine call/recall/start/complete/hold/unhold is in the event log with its actor already.
AUDITED_ALWAYS = frozenset({"transfer", "cancel", "no_show", "presence"})
ACTION_NAMES: dict[type[c.Command], str] = {
    c.CallTicket: "call",
    c.Recall: "recall",
    c.Start: "start",
    c.Complete: "complete",
    c.Cancel: "cancel",
    c.Hold: "hold",
    c.Unhold: "unhold",
    c.Transfer: "transfer",
    c.NoShow: "no_show",
}


def audited(principal: Principal, action: str) -> bool:
    """Whether an API action goes to the audit log (the same rule as the staff web)."""
    return principal.privileged or action in AUDITED_ALWAYS


def replayable(outcome: Outcome, status: int = 200) -> Response[dict[str, Any]]:
    """The command's answer; a replay of an earlier request_id says so (`Idempotent-Replayed: true`), on every route."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return Response(outcome.response, status_code=status, headers=headers)


class AuthController(Controller):
    """`POST /auth/token`: username/password -> an expiring bearer token."""

    path = "/auth"

    @post("/token", status_code=200, summary="Get a bearer token")
    async def token(self, request: Request[Any, Any, Any], data: JSONBody[TokenRequest], app: AppDep) -> dict[str, Any]:
        """Exchange credentials for a token; repeated failures are throttled (429); every sign-in is audited."""
        keys = (f"user:{data.username}", f"ip:{client_address(request)}")
        attempt = app.throttle.attempt(*keys)  # counted before the password is checked: concurrency cannot beat it
        if attempt.wait:
            raise ApiError(
                429,
                "too_many_attempts",
                "too many failed logins; try later",
                headers={"Retry-After": str(attempt.wait)},
                retry_after=attempt.wait,
            )
        found = app.service.read(lambda conn: find_user(conn, data.username))
        user: User | None = found[0] if found else None
        ok = await asyncio.to_thread(check_password, found[1] if found else None, data.password)
        if not ok or user is None or not user.active:
            reason = "unknown_user" if user is None else ("inactive" if not user.active else "wrong_password")
            role = user.role if user else None
            await record(app, audit_entry(request, data.username, role, "login_failed", via="api", reason=reason))
            raise ApiError(401, "invalid_credentials", "wrong username or password")
        attempt.succeeded()
        await record(app, audit_entry(request, user.username, user.role, "login", via="api"))
        token, lifetime = app.issuer.issue(user, app.service.view.state.branch_id)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "role": user.role,
            "counters": user.counters,
        }

    @post(
        "/refresh",
        status_code=200,
        summary="Renew a device token",
        dependencies={"principal": Provide(provide_principal)},
    )
    async def refresh(self, app: AppDep, principal: Caller) -> dict[str, Any]:
        """A fresh token for a device whose token is still valid (kiosks and launchers renew before it expires).

        Only devices: staff sign in again. A revoked, re-paired or disabled device cannot renew (its token is refused
        before this runs), so renewal never outlives a revocation.
        """
        require_role(principal, "device")
        user = User(username=principal.username, role="device", counters=list(principal.counters),
                    token_epoch=principal.epoch)  # fmt: skip
        token, lifetime = app.issuer.issue(user, principal.branch_id, generation=principal.generation)
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}


class TicketController(Controller):
    """Tickets: create, read, and every lifecycle action."""

    path = "/tickets"
    dependencies = {"principal": Provide(provide_principal)}

    @post("/", status_code=201, summary="Create a ticket (enqueue)")
    async def create(self, data: JSONBody[CreateTicket], app: AppDep, principal: Caller) -> Response[dict[str, Any]]:
        """Enqueue a ticket for a service; the same request_id returns the same ticket. A `lang` neither the appliance
        nor the branch speaks is `422 lang_not_spoken`, as at the kiosk (the status page and notices speak it)."""
        if data.lang is not None and (config := app.service.view.state.config) is not None:
            check_lang(config, data.lang)
        outcome = await run(app, c.Enqueue(actor=principal.username, **msgspec.structs.asdict(data)))
        return replayable(outcome, status=201)

    @get("/", summary="List tickets (today's and those still active, or one business day's)")
    async def list_tickets(
        self,
        app: AppDep,
        principal: Caller,
        status: FromQuery[TicketStatus | None] = None,
        service_id: FromQuery[str | None] = None,
        area: FromQuery[str | None] = None,
        date: FromQuery[datetime_date | None] = None,
    ) -> dict[str, Any]:
        """Tickets filtered by status, service or area, in queue order.

        By default today's tickets (the branch-local business date) and any still-active ticket of an earlier day;
        after local midnight yesterday's finished tickets, with the same numbers as today's, are no longer listed.
        `?date=YYYY-MM-DD` lists that business day's tickets instead (from the projection for past days).
        """
        _check_filters(app, area, service_id)
        view = app.service.view
        state = view.state
        today = business_date(app.service.clock(), state.config.timezone) if state.config else state.business_date
        day = date.isoformat() if date else None
        if day is not None and day < state.business_date:  # a past day: the engine keeps only the current one in memory
            found = _tickets_of_day(app, day, status, service_id, area)
        else:

            def listed(ticket_id: str) -> bool:
                t = state.tickets[ticket_id]
                return t.business_date == day if day else t.business_date == today or t.status in ACTIVE_STATUSES

            found = [t for t in view.tickets(status=status, service_id=service_id, area=area) if listed(t["ticket_id"])]
        return {"seq": view.seq, "business_date": day or today, "tickets": found}

    @get("/{ticket_id:str}", summary="One ticket")
    async def get_ticket(self, ticket_id: FromPath[str], app: AppDep, principal: Caller) -> dict[str, Any]:
        """A ticket with its position and ETA while waiting."""
        found = app.service.view.ticket(ticket_id)
        if found is None:
            raise ApiError(404, "ticket_not_found", f"no ticket {ticket_id!r}")
        return found

    async def _act(
        self,
        request: Request[Any, Any, Any],
        app: AppDep,
        principal: Caller,
        ticket_id: str,
        body: CounterCommand,
        command: type[c.Command],
    ) -> Response[dict[str, Any]]:
        """Authorise, then run `command` built from the body (its fields are named like the command's), audited
        when the rule in `audited()` says so."""
        require_role(principal, *STAFF, "device")
        require_counter(principal, body.counter_id)
        if not principal.privileged and body.counter_id is not None:
            _check_service_access(app, ticket_id, body.counter_id)
        fields = msgspec.structs.asdict(body)
        cmd = command(actor=principal.username, ticket_id=ticket_id, **fields)  # type: ignore[call-arg]
        action = ACTION_NAMES[command]
        audit = None
        if audited(principal, action):
            audit = audit_entry(
                request, principal.username, principal.role, action, f"ticket:{ticket_id}", ticket=ticket_id, via="api",
                counter=body.counter_id, to_service=fields.get("to_service_id"), to_counter=fields.get("to_counter_id"),
                reason=fields.get("reason"), outcome=fields.get("outcome"), request_id=body.request_id,
            )  # fmt: skip
        return replayable(await run(app, cmd, audit))

    @post("/{ticket_id:str}/call", status_code=200, summary="Call this ticket to a counter")
    async def call(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        data: JSONBody[CallTicketBody],
        app: AppDep,
        principal: Caller,
    ) -> Response[dict[str, Any]]:
        """Call a chosen waiting ticket."""
        if data.counter_id is None:
            raise ApiError(422, "counter_required", "counter_id is required to call a ticket")
        return await self._act(request, app, principal, ticket_id, data, c.CallTicket)

    @post("/{ticket_id:str}/recall", status_code=200, summary="Recall (announce again)")
    async def recall(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """Announce a called ticket again."""
        return await self._act(request, app, principal, ticket_id, data or CounterCommand(), c.Recall)

    @post("/{ticket_id:str}/start", status_code=200, summary="Start serving")
    async def start(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """called -> serving, only at the calling counter."""
        return await self._act(request, app, principal, ticket_id, data or CounterCommand(), c.Start)

    @post("/{ticket_id:str}/complete", status_code=200, summary="Complete")
    async def complete(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CompleteBody | None] = None,
    ) -> Response[dict[str, Any]]:
        """serving -> done, with an optional outcome code."""
        return await self._act(request, app, principal, ticket_id, data or CompleteBody(), c.Complete)

    @post("/{ticket_id:str}/cancel", status_code=200, summary="Cancel")
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CancelBody | None] = None,
    ) -> Response[dict[str, Any]]:
        """Cancel a waiting/held/called ticket (serving only where the service allows)."""
        return await self._act(request, app, principal, ticket_id, data or CancelBody(), c.Cancel)

    @post("/{ticket_id:str}/hold", status_code=200, summary="Hold")
    async def hold(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """Put a ticket aside; call-next skips it."""
        return await self._act(request, app, principal, ticket_id, data or CounterCommand(), c.Hold)

    @post("/{ticket_id:str}/unhold", status_code=200, summary="Unhold")
    async def unhold(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """Back to waiting, at the position the service's policy says."""
        return await self._act(request, app, principal, ticket_id, data or CounterCommand(), c.Unhold)

    @post("/{ticket_id:str}/transfer", status_code=200, summary="Transfer to a service or a counter")
    async def transfer(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        data: JSONBody[TransferBody],
        app: AppDep,
        principal: Caller,
    ) -> Response[dict[str, Any]]:
        """Move the ticket; it waits in the target service (or for the target counter)."""
        return await self._act(request, app, principal, ticket_id, data, c.Transfer)

    @post("/{ticket_id:str}/no-show", status_code=200, summary="Mark no-show")
    async def no_show(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """The called customer did not come (or the ticket returns to the queue, per policy)."""
        return await self._act(request, app, principal, ticket_id, data or CounterCommand(), c.NoShow)


def _tickets_of_day(
    app: Appliance, day: str, status: str | None, service_id: str | None, area: str | None
) -> list[dict[str, Any]]:
    """A past business day's tickets from the tickets projection (the engine keeps only today's in memory)."""
    rows = app.service.read(
        lambda conn: conn.execute("SELECT data FROM tickets WHERE business_date = ?", (day,)).fetchall()
    )
    view = app.service.view
    tickets = [ticket_decoder.decode(r[0]) for r in rows]
    wanted = [
        t
        for t in tickets
        if (status is None or t.status == status)
        and (service_id is None or t.service_id == service_id)
        and (area is None or area in view.area_of(t))
    ]
    wanted.sort(key=lambda t: (t.created_at, t.ticket_number))
    return [ticket_view(t) for t in wanted]


def _check_service_access(app: AppDep, ticket_id: FromPath[str], counter_id: str) -> None:
    """An agent may only touch tickets of services their counter serves (or already at their counter)."""
    state = app.service.view.state
    ticket = state.tickets.get(ticket_id)
    counter = state.config.counter(counter_id) if state.config else None
    if ticket is None or counter is None:
        return  # the engine answers not-found precisely
    if ticket.counter_id != counter_id and ticket.service_id not in counter.services:
        raise ApiError(403, "service_not_assigned", f"counter {counter_id!r} does not serve {ticket.service_id!r}")


class CounterController(Controller):
    """Counters: call-next, presence, list."""

    path = "/counters"
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", summary="List counters")
    async def list_counters(self, app: AppDep, principal: Caller, area: FromQuery[str | None] = None) -> dict[str, Any]:
        """Counters with presence and current ticket."""
        _check_filters(app, area, None)
        view = app.service.view
        return {"seq": view.seq, "counters": view.counters(area)}

    @post("/{counter_id:str}/call-next", status_code=200, summary="Call the next ticket")
    async def call_next(
        self,
        request: Request[Any, Any, Any],
        counter_id: FromPath[str],
        app: AppDep,
        principal: Caller,
        data: JSONBody[CounterCommand | None] = None,
    ) -> Response[dict[str, Any]]:
        """The called ticket, or `{"ticket": null, "reason": ...}` when nothing is eligible."""
        require_role(principal, *STAFF, "device")
        require_counter(principal, counter_id)
        request_id = data.request_id if data else None
        audit = None
        if audited(principal, "call_next"):
            audit = audit_entry(request, principal.username, principal.role, "call_next", f"counter:{counter_id}",
                                counter=counter_id, via="api", request_id=request_id)  # fmt: skip
        cmd = c.CallNext(actor=principal.username, request_id=request_id, counter_id=counter_id)
        return replayable(await run(app, cmd, audit))

    @put("/{counter_id:str}/presence", summary="Set availability")
    async def presence(
        self,
        request: Request[Any, Any, Any],
        counter_id: FromPath[str],
        data: JSONBody[PresenceBody],
        app: AppDep,
        principal: Caller,
    ) -> Response[dict[str, Any]]:
        """available | busy | break | closed; on break the counter gets no tickets."""
        require_role(principal, *STAFF)
        require_counter(principal, counter_id)
        cmd = c.SetPresence(
            actor=principal.username, request_id=data.request_id, counter_id=counter_id, status=data.status
        )
        audit = audit_entry(request, principal.username, principal.role, "presence", f"counter:{counter_id}",
                            counter=counter_id, status=data.status, via="api", request_id=data.request_id)  # fmt: skip
        return replayable(await run(app, cmd, audit if audited(principal, "presence") else None))


class BranchController(Controller):
    """Configuration, snapshot, event stream, health."""

    path = "/"

    @get("/health", summary="Liveness and position in the log")
    async def health(self, app: AppDep) -> dict[str, Any]:
        """No auth: for kiosks, boards and monitoring to see the appliance is up."""
        state = app.service.view.state
        return {
            "status": "ok",
            "timezone": state.config.timezone if state.config else None,
            "seq": state.seq,
            "branch_id": state.branch_id,
            "config_version": state.config.version if state.config else 0,
        }

    @get("/config", summary="The branch configuration", dependencies={"principal": Provide(provide_principal)})
    async def get_config(self, app: AppDep, principal: Caller) -> Response[Any]:
        """The current document; its version is also the ETag."""
        config = app.service.view.state.config
        if config is None:
            raise ApiError(404, "not_configured", "the branch has no configuration yet")
        return Response(msgspec.to_builtins(config), headers={"ETag": f'"{config.version}"'})

    @put(
        "/config",
        summary="Replace the branch configuration (admin)",
        dependencies={"principal": Provide(provide_principal)},
        request_max_body_size=CONFIG_MAX_BYTES,
    )
    async def put_config(
        self,
        request: Request[Any, Any, Any],
        app: AppDep,
        principal: Caller,
        data: Annotated[dict[str, Any], Body(title="BranchConfig", description=CONFIG_BODY)],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
    ) -> Response[Any]:
        """Optimistic concurrency: base version from If-Match or the document's `version`; stale -> 412."""
        require_role(principal, "admin")
        config = _decode_config(await request.body())  # the raw bytes: precise errors, no second encoding
        base = _parse_if_match(if_match) if if_match is not None else config.version
        cmd = c.ApplyConfig(actor=principal.username, config=config, base_version=base, source="api")
        audit = audit_entry(
            request, principal.username, principal.role, "config_replace", f"config:{config.branch_id}",
            base_version=base, source="api",
        )  # fmt: skip
        outcome = await run(app, cmd, audit)
        version = outcome.response["version"]
        return Response({"version": version}, headers={"ETag": f'"{version}"'})

    @get("/snapshot", summary="State at a seq", dependencies={"principal": Provide(provide_principal)})
    async def snapshot(
        self,
        app: AppDep,
        principal: Caller,
        area: FromQuery[str | None] = None,
        service_id: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        """Active tickets, counters and current calls, consistent at `seq` (resync after reconnect)."""
        _check_filters(app, area, service_id)
        return app.service.view.snapshot(area=area, service_id=service_id)

    @get(
        "/events",
        summary="Live events (SSE)",
        dependencies={"principal": Provide(provide_principal)},
        media_type="text/event-stream",
        opt={"sse": True},
    )
    async def events(
        self,
        app: AppDep,
        principal: Caller,
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        after: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1)] = None,
        area: FromQuery[str | None] = None,
        service_id: FromQuery[str | None] = None,
    ) -> ServerSentEvent:
        """Server-Sent Events; `id` is the seq; resumes after Last-Event-ID (or ?after=) with no gap."""
        current = app.service.view.seq
        # The browser's EventSource resends the URL it was opened with (?after= included) plus the Last-Event-ID of
        # the last event it saw: that header is the fresher resume point and wins; ?after= serves the first connect.
        if last_event_id:
            start = _parse_last_event_id(last_event_id, current)
        else:
            start = after if after is not None else current
        if start > current:  # the client saw events this log does not have (e.g. after a restore): resync
            raise ApiError(
                409,
                "resume_point_ahead",
                f"resume point {start} is ahead of the log (seq {current}); resync from /snapshot",
                seq=current,
            )
        _check_filters(app, area, service_id)
        assert app.broadcaster is not None
        wanted = make_filter(app.service, area, service_id)
        return ServerSentEvent(
            event_stream(app.service, app.broadcaster, start, wanted),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _decode_config(body: bytes) -> BranchConfig:
    decode_json_body(body)  # well-formed at all? (a schema error in a truncated body would mislead)
    try:
        config = config_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_config", f"the configuration is not valid: {exc}", errors=[str(exc)]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    errors = structural_errors(config)
    if errors:
        raise ApiError(422, "invalid_config", "the configuration is not valid", errors=errors)
    return config


def _parse_if_match(value: str) -> int:
    cleaned = value.strip().removeprefix("W/").strip('"')
    if not cleaned.isdigit():
        raise ApiError(400, "bad_if_match", 'If-Match must be the quoted config version, e.g. "3"')
    return int(cleaned)


def _parse_last_event_id(value: str | None, current: int) -> int:
    """No Last-Event-ID: start live from now. Otherwise resume after it."""
    if value is None or value == "":
        return current
    if not value.strip().isdigit() or len(value.strip()) > MAX_SEQ_DIGITS:
        raise ApiError(400, "bad_last_event_id", "Last-Event-ID must be a seq number")
    return int(value)


def _check_filters(app: Appliance, area: str | None, service_id: str | None) -> None:
    """An unknown area or service in a filter is a mistake worth telling, not an empty result."""
    config = app.service.view.state.config
    if area is not None and (config is None or all(a.id != area for a in config.areas)):
        raise ApiError(404, "unknown_area", f"no area {area!r}")
    if service_id is not None and (config is None or config.service(service_id) is None):
        raise ApiError(404, "unknown_service", f"no service {service_id!r}")


ROUTE_HANDLERS = [
    AuthController,
    TicketController,
    CounterController,
    BranchController,
    DeviceController,
    PairingController,
]
APP_DEPENDENCIES = {"app": Provide(provide_appliance)}
