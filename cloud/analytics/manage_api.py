"""The JSON twin of the analytics console's tenant pages, for an integrator's or HQ's scripts:

* `GET/PUT /api/v1/analytics/{tenant}/settings` — the PII switch and the anomaly alert recipients;
* `GET/POST /api/v1/analytics/{tenant}/schedules`, `GET/PUT/DELETE …/schedules/{schedule_id}`, `POST …/pause`,
  `POST …/resume` — scheduled reports.

Same permission as the pages (`reports.manage`), same scope (a tenant or schedule outside the caller's is 404, never
a confirmation that it exists), same validation (`settings.check_addresses`, `schedules.build`) and the same audit
entries. Every refusal is RFC 9457 problem+json with a stable `code`, and `field` for a bad field; a body that is not
the documented JSON is 400 too. Times are shown in the schedule's zone (the branch's, Asia/Jakarta for a tenant-wide
report) with their offset; they are stored in UTC. (BI tokens have their JSON API in `bi.py`.)
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from litestar.exceptions import ClientException, HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from sqlalchemy.engine import Engine

from cloud.analytics import schedules
from cloud.analytics import settings as tenant_settings
from cloud.analytics.console import schedule_in_scope, tenant_branches, visible_tenants
from cloud.identity.permissions import require_tenant, requires
from cloud.web.console_auth import HqPrincipal
from cloud.web.request_state import actor as _actor
from cloud.web.request_state import client_ip as _ip
from cloud.web.request_state import principal as _user
from cloud.web.request_state import store_engine as _engine
from sync import kpi

PROBLEM = "application/problem+json"
NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")
AT_FIELD = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
MAX_BODY = 64 * 1024
CODES = {400: "invalid_body", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         413: "too_large", 429: "too_many_requests"}  # fmt: skip


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 refusal: `code` is stable, `field` names the bad input (400)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None


class AnalyticsSettings(msgspec.Struct, kw_only=True):
    """A tenant's analytics settings: contacts shown (masked) in drill-downs, and who gets anomaly alert e-mails."""

    tenant: str
    show_contacts: bool
    alert_recipients: list[str]


class SettingsChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to change; an absent (or null) field stays as it is. `alert_recipients: []` sends alerts to nobody."""

    show_contacts: bool | None = None
    alert_recipients: list[str] | None = None


class ScheduleFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scheduled report as given: cron (five fields) read in the branch's zone (Asia/Jakarta without a branch),
    1-20 recipients, the days covered (1-31, ending yesterday), the language (id|en), paused when not `active`."""

    name: str
    cron: str
    recipients: list[str]
    branch_id: str | None = None
    days: int = 1
    lang: str = "id"
    active: bool = True


class Schedule(msgspec.Struct, kw_only=True):
    """A stored schedule; times in its zone (`timezone`) with their offset."""

    schedule_id: str
    tenant: str
    branch_id: str | None
    name: str
    cron: str
    timezone: str
    recipients: list[str]
    days: int
    lang: str
    active: bool
    next_run_at: str
    last_run_at: str | None
    last_error: str | None
    created_by: str
    created_at: str


class ScheduleList(msgspec.Struct):
    """A tenant's schedules the caller sees, by name."""

    schedules: list[Schedule]


def problem(status: int, detail: str, code: str | None = None, field: str | None = None,
            headers: dict[str, str] | None = None) -> Response[Any]:  # fmt: skip
    """A problem+json answer."""
    code = code or CODES.get(status, "error")
    body = Problem(type=f"urn:qms:problem:{code}", title=code.replace("_", " "), status=status, detail=detail,
                   code=code, field=field)  # fmt: skip
    return Response(msgspec.to_builtins(body), status_code=status, media_type=PROBLEM, headers=headers)


class FieldRefused(ClientException):
    """A field the forms' validation refused (400 with its `code` and `field`)."""

    field: str | None

    def __init__(self, refused: schedules.ScheduleInvalid | tenant_settings.SettingInvalid, code: str) -> None:
        """Keep the field and the code beside the words."""
        super().__init__(detail=str(refused))
        self.code, self.field = code, refused.field


class BodyRefused(FieldRefused):
    """A body that decodes only leniently: a wrong type (`"7"` for a number, `1` for a boolean) or a key given twice."""

    def __init__(self, detail: str, field: str | None) -> None:
        """400 `invalid_body`, naming the field."""
        ClientException.__init__(self, detail=detail)
        self.code, self.field = "invalid_body", field


class _Twice(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Twice(key)
        found[key] = value
    return found


T = TypeVar("T")


async def strict(request: Request[Any, Any, Any], model: type[T]) -> T:
    """The body decoded strictly (Litestar's own decoding converts `"7"` to 7 and `1` to true, and keeps the last of a
    duplicated key): the route's typed `data` is only its schema; this is what it acts on."""
    body = await request.body()
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _Twice as twice:
        raise BodyRefused(f"{twice.key}: given more than once", twice.key) from None
    except (ValueError, RecursionError):
        raise BodyRefused("the body is not JSON", None) from None
    try:
        return msgspec.json.decode(body, type=model, strict=True)
    except msgspec.ValidationError as exc:
        named = AT_FIELD.search(str(exc)) or NAMED_FIELD.search(str(exc))
        field = named[1] if named else None
        raise BodyRefused(f"{field}: {exc}" if field else str(exc), field) from None


def as_problem(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """The refusals on these routes (guard 401/403, 404, a bad field, a body that does not decode) as problem+json; a
    bad body names its first bad field in words."""
    detail, field, code = str(exc.detail), None, None
    if isinstance(exc, FieldRefused):
        field, code = exc.field, exc.code
    elif isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0] if isinstance(exc.extra[0], dict) else {}
        message = str(first.get("message") or detail)
        named = NAMED_FIELD.search(message)
        field = named[1] if named else first.get("key") if first.get("key") != "data" else None
        detail = f"{field}: {message}" if field else message
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "content-type"}
    return problem(exc.status_code, detail, code, field=field, headers=headers or None)


REFUSALS = {
    400: ResponseSpec(Problem, description="Bad input: `field` names it", media_type=PROBLEM),
    403: ResponseSpec(Problem, description="The role lacks reports.manage", media_type=PROBLEM),
    404: ResponseSpec(Problem, description="No such tenant or schedule in the caller's scope", media_type=PROBLEM),
}


def _tenant(engine: Engine, principal: HqPrincipal, tenant: str) -> None:
    """404 unless the tenant is the caller's and known to the hub (named in the account, or with a branch)."""
    if len(tenant) > kpi.MAX_ID_LENGTH or not tenant.isprintable():
        raise NotFoundException("no such tenant")
    require_tenant(principal, tenant)
    if tenant not in visible_tenants(engine, principal):
        raise NotFoundException(f"no tenant {tenant!r}")


def _settings(engine: Engine, tenant: str) -> AnalyticsSettings:
    with engine.connect() as conn:
        current = tenant_settings.load(conn, tenant)
    return AnalyticsSettings(tenant=tenant, show_contacts=current.show_contacts,
                             alert_recipients=list(current.alert_recipients))  # fmt: skip


def _local(value: str | None, zone_name: str) -> str | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(kpi.zone(zone_name)).isoformat()


def _schedule(row: dict[str, Any]) -> Schedule:
    zone = row["timezone"]
    return Schedule(schedule_id=row["schedule_id"], tenant=row["tenant_id"], branch_id=row["branch_id"],
                    name=row["name"], cron=row["cron"], timezone=zone, recipients=list(row["recipients"]),
                    days=int(row["days"]), lang=row["lang"], active=bool(row["active"]),
                    next_run_at=_local(row["next_run_at"], zone) or "", last_run_at=_local(row["last_run_at"], zone),
                    last_error=row["last_error"], created_by=row["created_by"],
                    created_at=_local(row["created_at"], zone) or "")  # fmt: skip


def _build(engine: Engine, principal: HqPrincipal, tenant: str, data: ScheduleFields) -> schedules.NewSchedule:
    """The form's `schedules.build` over the JSON fields (the branch: one the caller sees)."""
    allowed = tenant_branches(engine, principal, tenant)
    return schedules.build(engine, tenant, name=data.name, cron=data.cron, recipients=data.recipients,
                           branch_id=data.branch_id, days=data.days, lang=data.lang, allowed=allowed)  # fmt: skip


GUARD = [requires("reports.manage")]
SETTINGS = "/{tenant:str}/settings"
SCHEDULES = "/{tenant:str}/schedules"
ONE = "/{tenant:str}/schedules/{schedule_id:str}"


@get(SETTINGS, guards=GUARD, responses=REFUSALS)
async def settings_show(request: Request[Any, Any, Any], tenant: FromPath[str]) -> AnalyticsSettings:
    """The tenant's analytics settings."""
    engine = _engine(request)
    await asyncio.to_thread(_tenant, engine, _user(request), tenant)
    return await asyncio.to_thread(_settings, engine, tenant)


@put(SETTINGS, guards=GUARD, responses=REFUSALS, request_max_body_size=MAX_BODY)
async def settings_change(
    request: Request[Any, Any, Any], tenant: FromPath[str], data: JSONBody[SettingsChange]
) -> AnalyticsSettings:
    """Change the PII switch and/or the alert recipients (each checked before either is stored; each change is
    audited as on the page: analytics.pii, analytics.alert_recipients)."""
    data = await strict(request, SettingsChange)
    engine = _engine(request)
    await asyncio.to_thread(_tenant, engine, _user(request), tenant)
    addresses = None
    if data.alert_recipients is not None:
        try:
            addresses = tenant_settings.check_addresses(data.alert_recipients)
        except tenant_settings.SettingInvalid as exc:
            raise FieldRefused(exc, "invalid_setting") from None
    if data.show_contacts is not None:
        await asyncio.to_thread(tenant_settings.set_show_contacts, engine, tenant, data.show_contacts,
                                _actor(request), _ip(request))  # fmt: skip
    if addresses is not None:
        await asyncio.to_thread(tenant_settings.set_alert_recipients, engine, tenant, addresses, _actor(request),
                                _ip(request))  # fmt: skip
    return await asyncio.to_thread(_settings, engine, tenant)


def _listed(engine: Engine, principal: HqPrincipal, tenant: str) -> ScheduleList:
    rows = schedules.listed(engine, frozenset({tenant}))
    seen = [r for r in rows if r["branch_id"] is None or principal.sees_branch(tenant, r["branch_id"])]
    return ScheduleList(schedules=[_schedule(r) for r in seen])


@get(SCHEDULES, guards=GUARD, responses=REFUSALS)
async def schedules_list(request: Request[Any, Any, Any], tenant: FromPath[str]) -> ScheduleList:
    """The tenant's scheduled reports (of the branches the caller sees), with their next run and last error."""
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    return await asyncio.to_thread(_listed, engine, principal, tenant)


@post(SCHEDULES, guards=GUARD, responses=REFUSALS, status_code=201, request_max_body_size=MAX_BODY)
async def schedule_create(
    request: Request[Any, Any, Any], tenant: FromPath[str], data: JSONBody[ScheduleFields]
) -> Response[Schedule]:
    """Add a scheduled report (201 with it and its `Location`); its first run is the cron's next occurrence."""
    data = await strict(request, ScheduleFields)
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    try:
        new = await asyncio.to_thread(_build, engine, principal, tenant, data)
        schedule_id = await asyncio.to_thread(schedules.create, engine, new, _actor(request), datetime.now(UTC),
                                              data.active)  # fmt: skip
    except schedules.ScheduleInvalid as exc:
        raise FieldRefused(exc, "invalid_schedule") from None
    row = await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant)
    location = f"/api/v1/analytics/{tenant}/schedules/{schedule_id}"
    return Response(_schedule(row), status_code=201, headers={"Location": location})


@get(ONE, guards=GUARD, responses=REFUSALS)
async def schedule_show(request: Request[Any, Any, Any], tenant: FromPath[str], schedule_id: FromPath[str]) -> Schedule:
    """One schedule (another tenant's or an unknown id: 404)."""
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    return _schedule(await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant))


@put(ONE, guards=GUARD, responses=REFUSALS, request_max_body_size=MAX_BODY)
async def schedule_replace(
    request: Request[Any, Any, Any], tenant: FromPath[str], schedule_id: FromPath[str], data: JSONBody[ScheduleFields]
) -> Schedule:
    """Replace a schedule's fields (its next run is recomputed from now), as the page's edit form does."""
    data = await strict(request, ScheduleFields)
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant)
    try:
        new = await asyncio.to_thread(_build, engine, principal, tenant, data)
        await asyncio.to_thread(schedules.update, engine, schedule_id, new, data.active, frozenset({tenant}),
                                _actor(request), datetime.now(UTC))  # fmt: skip
    except schedules.ScheduleInvalid as exc:
        raise FieldRefused(exc, "invalid_schedule") from None
    return _schedule(await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant))


@delete(ONE, guards=GUARD, responses=REFUSALS, status_code=204)
async def schedule_delete(request: Request[Any, Any, Any], tenant: FromPath[str], schedule_id: FromPath[str]) -> None:
    """Delete a schedule (204)."""
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant)
    if not await asyncio.to_thread(schedules.remove, engine, schedule_id, frozenset({tenant}), _actor(request),
                                   datetime.now(UTC)):  # fmt: skip
        raise NotFoundException("no such schedule")


async def _set_active(request: Request[Any, Any, Any], tenant: str, schedule_id: str, active: bool) -> Schedule:
    engine, principal = _engine(request), _user(request)
    await asyncio.to_thread(_tenant, engine, principal, tenant)
    await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant)
    await asyncio.to_thread(schedules.set_active, engine, schedule_id, active, frozenset({tenant}), _actor(request),
                            datetime.now(UTC))  # fmt: skip
    return _schedule(await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id, tenant))


@post(ONE + "/pause", guards=GUARD, responses=REFUSALS, status_code=200)
async def schedule_pause(
    request: Request[Any, Any, Any], tenant: FromPath[str], schedule_id: FromPath[str]
) -> Schedule:
    """Pause a schedule (nothing is sent until it is resumed)."""
    return await _set_active(request, tenant, schedule_id, False)


@post(ONE + "/resume", guards=GUARD, responses=REFUSALS, status_code=200)
async def schedule_resume(
    request: Request[Any, Any, Any], tenant: FromPath[str], schedule_id: FromPath[str]
) -> Schedule:
    """Resume a schedule: its next run is the cron's next occurrence from now (a time missed while paused is not
    sent late)."""
    return await _set_active(request, tenant, schedule_id, True)


HANDLERS = [
    settings_show, settings_change, schedules_list, schedule_create, schedule_show, schedule_replace, schedule_delete,
    schedule_pause, schedule_resume,
]  # fmt: skip
router = Router(
    path="/api/v1/analytics", route_handlers=HANDLERS, exception_handlers={HTTPException: as_problem}, tags=["reports"]
)
ROUTES: list[Any] = [router]
