"""The appointments area's pages (id/en) and JSON API.

Public, no sign-in (a customer's phone): `/book/<tenant>/<branch>` to choose a service, a day and a time and book
(rate limited per address: QMS_BOOKING_RATE, default 10/minute), and `/book/<tenant>/v/<code>` — the booking's own
page, reachable only with its signed QR text — to show the QR, add the visit to a calendar (`booking.ics`), move it
to another free time or cancel. Staff (`appointments.read` / `appointments.manage`, scoped to the caller's tenants
and branches): `/appointments` (a branch's day with checked-in / no-show, booking, rescheduling and cancelling for a
customer, bookable services, check-in policy) and `/appointments/<tenant>/calendar` (holidays, blackouts, iCal
import/export). Integrators book, cancel and reschedule through `/api/v1/appointments/<tenant>/<branch>/bookings…`
(refusals are problem+json with a stable `code`). The lifespan pushes bookings to the branches and sends the
confirmation and reminder e-mails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from litestar import Litestar, MediaType, Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import Body, FromPath, JSONBody
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND
from sqlalchemy.engine import Engine

from cloud.admin.tables import branch_profiles
from cloud.appointments import admin, booking, calendar, messages, outbox
from cloud.appointments.publish import Publisher
from cloud.appointments.words import WORDS, pick
from cloud.identity.permissions import require_branch, require_tenant, requires, scope_filter
from cloud.nats_link import background_link, ready_wait
from cloud.notify.contacts import mask_email, mask_phone
from cloud.ops.rate_limits import too_many
from cloud.store import transaction
from cloud.web.console_auth import HqPrincipal
from cloud.web.problems import refusal
from cloud.web.request_state import principal as _user
from cloud.web.request_state import store_engine as _engine
from sync.appointments import QrInvalid, verify
from sync.rate_limit import Limit, RateLimiter

log = logging.getLogger("qms.cloud.appointments")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9 -]{6,20}$")
# control characters (NUL, newlines, C1) and the Unicode line/paragraph separators: no name or contact holds one, and
# they break a mail header, the staff page or PostgreSQL (NUL)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAYS_SHOWN = 14
NAME_MAX = 120
RATE_DEFAULT = "10/minute"
YEARS = (2000, 2999)  # a booking's time; outside is a malformed starts_at


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
    """Push bookings to the branches (with NATS) and send the booking messages through their outbox (a pass on every
    booking change, when a retry falls due, and every `appt_mail_seconds`)."""
    engine: Engine = app.state["engine"]
    publishers: list[Publisher] = []
    servers = list(app.state.get("nats_servers") or ())
    app.state["appt_publisher"] = None  # until NATS answers: bookings still work; the branches get them then

    async def ready(nc: Any) -> None:
        # the bucket is made by the publisher itself, retrying until JetStream answers
        publisher = Publisher(engine, nc.jetstream(), clock=app.state.get("appt_clock"))
        publisher.start()
        publishers.append(publisher)
        app.state["appt_publisher"] = publisher

    sender = outbox.Sender(
        engine, interval=float(app.state.get("appt_mail_seconds", 60)), clock=app.state.get("appt_clock"),
        hub_url=str(app.state.get("public_url") or ""),
    )  # fmt: skip
    app.state["appt_sender"] = sender
    sender.start()
    async with contextlib.AsyncExitStack() as stack:
        if servers:  # connected in the background: a hub started while NATS is down still serves
            link = background_link(
                "appointments", servers, dict(app.state.get("nats_options") or {}), ready, ready_wait(app.state)
            )
            await stack.enter_async_context(link)
        try:
            yield
        finally:
            await sender.stop()
            for publisher in publishers:
                await publisher.stop()


# --- helpers -----------------------------------------------------------------------------------------------------


def _lang(request: Request[Any, Any, Any]) -> str:
    return pick(request.query_params.get("lang") or request.cookies.get("qms_lang"))


def _now(request: Request[Any, Any, Any]) -> datetime:
    clock: Callable[[], datetime] | None = request.app.state.get("appt_clock")
    return clock() if clock else datetime.now(UTC)


def _changed(request: Request[Any, Any, Any]) -> None:
    """A booking changed: push to the branch and send its e-mail soon."""
    publisher: Publisher | None = request.app.state.get("appt_publisher")
    if publisher is not None:
        publisher.nudge()
    sender: outbox.Sender | None = request.app.state.get("appt_sender")
    if sender is not None:
        sender.wake()


def _page(request: Request[Any, Any, Any], name: str, status: int = 200, **values: Any) -> Template:
    lang = values.pop("lang", None) or _lang(request)
    return Template(
        template_name=f"appointments/{name}",
        context={"w": WORDS[lang], "lang": lang, "other": "en" if lang == "id" else "id", "request": request,
                 **values},
        status_code=status,
        media_type=MediaType.HTML,
    )  # fmt: skip


def _branch_or_404(conn: sa.Connection, tenant: str, branch_id: str) -> booking.Branch:
    branch = booking.load_branch(conn, tenant, branch_id)
    if branch is None:
        raise NotFoundException("no such branch", extra={"code": "unknown_branch"})
    return branch


def _day(text: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(text) if text else fallback
    except ValueError:
        return fallback


# what the JSON API says of a bad field (`errors`: field -> reason), for the pages' word keys of the same checks
API_REASONS = {
    "err_name": f"a name of 1-{NAME_MAX} characters without control characters is required",
    "err_email": "not an e-mail address (or it holds a control character)",
    "err_phone": "a phone number is digits, spaces, dashes and a leading + (6-20 characters)",
    "err_unknown_service": "required: the id of one of the branch's bookable services",
    "err_day": "a real date as YYYY-MM-DD is required",
}
STARTS_AT_REQUIRED = "required: an RFC 3339 time with offset (2026-12-07T10:30:00+07:00)"


def invalid(errors: dict[str, str]) -> ProblemDetailsException:
    """400 `invalid_fields`: every bad field at once (`fields`, sorted) with why (`errors`: field -> an English reason
    for people reading the answer; a page's word key is said as API_REASONS says it)."""
    return refusal(400, "invalid_fields", "invalid " + ", ".join(sorted(errors)), fields=sorted(errors),
                   errors={k: API_REASONS.get(errors[k], errors[k]) for k in sorted(errors)})  # fmt: skip


def _starts_at(value: Any) -> datetime:
    """A JSON body's `starts_at`, or 400 `invalid_fields` saying why (missing, not a string, no offset, ...)."""
    if value is None or value == "":
        raise invalid({"starts_at": STARTS_AT_REQUIRED})
    if not isinstance(value, str):
        raise invalid({"starts_at": f"must be a string: an RFC 3339 time with offset, not {type(value).__name__}"})
    try:
        return _at(value.strip())
    except ValidationException as exc:
        raise invalid({"starts_at": str(exc.detail)}) from None


def body_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """A JSON route's body that is not JSON or not an object: 400 `invalid_body` (type urn:qms:problem:invalid_body)
    like the appointments API's other refusals; any other refusal is the hub's own answer."""
    if exc.status_code != HTTPStatus.BAD_REQUEST or not isinstance(exc, ClientException):
        from cloud.ops.web import http_problem

        return http_problem(request, exc)
    body = {"type": "urn:qms:problem:invalid_body", "title": HTTPStatus(400).phrase, "status": 400,
            "detail": "the body must be a JSON object", "code": "invalid_body"}  # fmt: skip
    return Response(body, status_code=400, media_type="application/problem+json")


JSON_ERRORS: dict[Any, Any] = {ClientException: body_problem}


def _strict_day(text: str | None, fallback: date) -> date:
    """An API's `day` (YYYY-MM-DD; absent = `fallback`): anything else is 400 naming `day`, never another day."""
    if text is None or text == "":
        return fallback
    with contextlib.suppress(ValueError):
        if DAY_TEXT.match(text):
            return date.fromisoformat(text)
    raise invalid({"day": "err_day"})


def _maybe_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _at(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationException("an RFC 3339 time with offset is required", extra={"fields": ["starts_at"]}) from None
    if at.tzinfo is None:
        raise ValidationException("an RFC 3339 time with offset is required: this one has no offset",
                                  extra={"fields": ["starts_at"]})  # fmt: skip
    if not YEARS[0] <= at.year <= YEARS[1]:  # also keeps the zone conversions inside datetime's range
        raise ValidationException(f"out of range: a year from {YEARS[0]} to {YEARS[1]} is required",
                                  extra={"fields": ["starts_at"]})  # fmt: skip
    return at


def _contact_errors(form: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    name = str(form.get("name") or "").strip()
    if not 1 <= len(name) <= NAME_MAX or CONTROL.search(name):
        errors["name"] = "err_name"
    email = str(form.get("email") or "").strip()
    if email and (not EMAIL.match(email) or CONTROL.search(email)):
        errors["email"] = "err_email"
    phone = str(form.get("phone") or "").strip()
    if phone and not PHONE.match(phone):  # digits, spaces, dashes and a leading + only: no control character
        errors["phone"] = "err_phone"
    return errors


def _days(conn: sa.Connection, branch: booking.Branch, service_id: str, now: datetime) -> list[dict[str, Any]]:
    """The next DAYS_SHOWN days with their open/closed state and free places."""
    today = now.astimezone(ZoneInfo(branch.zone)).date()
    shown = []
    for offset in range(DAYS_SHOWN):
        day = today + timedelta(days=offset)
        reason = booking.closed_reason(conn, branch, day, now)
        slots = [] if reason else booking.day_slots(conn, branch, service_id, day, now)
        shown.append({"day": day, "reason": reason, "free": sum(s.left for s in slots), "open": bool(slots)})
    return shown


def _limit(request: Request[Any, Any, Any]) -> None:
    """Public writes per client address (QMS_BOOKING_RATE): one limiter per app, made on first use."""
    limiter: RateLimiter | None = request.app.state.get("appt_limiter")
    if limiter is None:
        limiter = RateLimiter(Limit.parse(os.environ.get("QMS_BOOKING_RATE", RATE_DEFAULT)))
        request.app.state["appt_limiter"] = limiter
    wait = limiter.take(request.client.host if request.client else "?")
    if wait:
        raise too_many(wait, "bookings from this address")


def _closed_words(reason: str | None, lang: str) -> str | None:
    """A closed day's reason as the page says it: the holiday's or blackout's name, or the horizon in words."""
    return WORDS[lang]["beyond_horizon"] if reason == booking.BEYOND_HORIZON else reason


PUBLIC_PAGES = {"no_such_booking": "page_no_booking", "no_bookable_service": "page_no_online",
                "unknown_branch": "page_no_branch"}  # fmt: skip


def html_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Template | Response[Any]:
    """A refusal on a page people open (the public booking pages; a staff form may use it too) as a friendly id/en
    page with the status kept (404, 429 with its Retry-After, 400), not problem+json: "booking not found", "this
    branch does not take bookings online", "too many attempts, try again in N minutes"."""
    status = exc.status_code
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        from cloud.ops.web import http_problem  # the hub's own answer (a 500 logged once)

        return http_problem(request, exc)
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    lang = _lang(request)
    w = WORDS[lang]
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "retry-after"}
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        seconds = int(headers.get("Retry-After") or extra.get("retry_after") or 60)
        message = w["page_rate"].format(n=max(1, -(-seconds // 60)))
    elif status == HTTPStatus.NOT_FOUND:
        message = w[PUBLIC_PAGES.get(str(extra.get("code")), "not_found")]
    else:
        message = w["page_bad_request"]
    return Template(template_name="appointments/problem.html", status_code=status, media_type=MediaType.HTML,
                    headers={"Cache-Control": "no-store", **headers},
                    context={"w": w, "lang": lang, "other": "en" if lang == "id" else "id", "request": request,
                             "message": message, "status_code": status})  # fmt: skip


# the public pages' refusals (raised or from a guard-less route's parameter checks) as pages
PUBLIC_ERRORS: dict[Any, Any] = {HTTPException: html_problem, ProblemDetailsException: html_problem}


# --- public booking -------------------------------------------------------------------------------------------


@get("/book/{tenant:str}/{branch_id:str}", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_page(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    """Choose a service, a day (holidays and blackouts say why they are closed) and a time; then name and e-mail."""
    return _booking_view(request, tenant, branch_id, {}, {})


def _booking_view(request: Request[Any, Any, Any], tenant: str, branch_id: str, form: dict[str, Any],
                  errors: dict[str, str], status: int = 200) -> Template:  # fmt: skip
    now = _now(request)
    with _engine(request).connect() as conn:
        branch = _branch_or_404(conn, tenant, branch_id)
        services = booking.services(conn, tenant, branch_id)
        if not services:
            raise NotFoundException("no bookable service", extra={"code": "no_bookable_service"})
        chosen = form.get("service_id") or request.query_params.get("service") or services[0].service_id
        service = next((s for s in services if s.service_id == chosen), services[0])
        days = _days(conn, branch, service.service_id, now)
        first_open = next((d["day"] for d in days if d["open"]), days[0]["day"])
        day = _day(form.get("day") or request.query_params.get("day"), first_open)
        slots = booking.day_slots(conn, branch, service.service_id, day, now)
    zone = ZoneInfo(branch.zone)
    times = [{"value": s.starts_at.isoformat(), "label": s.starts_at.astimezone(zone).strftime("%H:%M"),
              "left": s.left} for s in slots]  # fmt: skip
    lang = pick(form["lang"]) if form.get("lang") else _lang(request)
    reason = next((d["reason"] for d in days if d["day"] == day), None)
    closed = _closed_words(reason or (booking.BEYOND_HORIZON if booking.beyond_horizon(branch, day, now) else None),
                           lang)  # fmt: skip
    return _page(request, "book.html", status, lang=lang, branch=branch, services=services, service=service, days=days,
                 day=day, times=times, closed=closed, form=form, errors=errors)  # fmt: skip


@post("/book/{tenant:str}/{branch_id:str}", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_submit(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Book the chosen time; errors are shown beside their fields, a full slot says so and offers the others."""
    _limit(request)
    form = _form(data)
    lang = pick(form.get("lang"))
    errors = _contact_errors(form)
    if not form.get("starts_at"):
        errors["starts_at"] = "err_no_slot"
    if errors:
        return _booking_view(request, tenant, branch_id, form, errors, 400)
    try:
        with transaction(_engine(request)) as conn:
            branch = _branch_or_404(conn, tenant, branch_id)
            made = booking.book(conn, branch, form.get("service_id", ""), _at(form["starts_at"]), name=form["name"],
                                email=form.get("email") or None, phone=form.get("phone") or None, lang=lang,
                                actor="public", now=_now(request))  # fmt: skip
            code = booking.qr_text(conn, made, _now(request))
    except (booking.BookingRefused, ValidationException) as exc:
        key = f"err_{exc.code}" if isinstance(exc, booking.BookingRefused) else "err_no_slot"
        return _booking_view(request, tenant, branch_id, form, {"starts_at": key}, 409)
    _changed(request)
    return Redirect(path=f"/book/{tenant}/v/{code}?lang={lang}", status_code=303)


@post("/book/{tenant:str}/{branch_id:str}/find", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_find(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Find my booking: its number and its e-mail or phone lead to the booking's own page (any branch of the
    tenant). Rate limited with the bookings (QMS_BOOKING_RATE); a wrong number and a wrong contact get the same
    answer (404, the booking page with one message), so neither can be probed."""
    _limit(request)
    form = _form(data)
    lang = pick(form.get("lang") or _lang(request))
    number = re.sub(r"[\s-]", "", form.get("booking_id", "")).upper()
    contact = form.get("contact", "")
    now = _now(request)
    with _engine(request).connect() as conn:
        found = None
        if BOOKING_ID.match(number) and contact and not CONTROL.search(contact):
            found = booking.find(conn, tenant, number, contact)
        code = booking.qr_text(conn, found, now) if found is not None else None
    if code is None:
        shown = {"lang": lang, "find_booking_id": number[:16], "find_contact": contact[:254]}
        return _booking_view(request, tenant, branch_id, shown, {"find": "err_find"}, 404)
    return Redirect(path=f"/book/{tenant}/v/{code}?lang={lang}", status_code=303)


@get("/book/{tenant:str}/{branch_id:str}/find", include_in_schema=False)
async def booking_find_page(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]
) -> Redirect:
    """The search's answer page re-opened (its language switch, a reload): the branch's booking page."""
    query = urlencode([(k, v) for k, v in request.query_params.items() if k in {"lang", "service", "day"}])
    path = f"/book/{quote(tenant, safe='')}/{quote(branch_id, safe='')}"
    return Redirect(path=path + (f"?{query}" if query else ""), status_code=303)


def _by_code(conn: sa.Connection, tenant: str, code: str, now: datetime) -> tuple[booking.Booking, booking.Branch]:
    """The booking a signed code names (404 for anything else: no way to probe other bookings)."""
    try:
        checked = verify(code, bytes.fromhex(booking.public_key_hex(conn, tenant, now)))
    except QrInvalid:
        raise NotFoundException("no such booking", extra={"code": "no_such_booking"}) from None
    found = booking.get(conn, tenant, checked.booking_id)
    if found is None:
        raise NotFoundException("no such booking", extra={"code": "no_such_booking"})
    return found, _branch_or_404(conn, tenant, found.branch_id)


def _current_code(conn: sa.Connection, found: booking.Booking, now: datetime) -> str:
    """The booking's check-in code now (a move to another day signs a new one)."""
    return booking.qr_text(conn, found, now)


def _booked_page(request: Request[Any, Any, Any], conn: sa.Connection, tenant: str, code: str,
                 found: booking.Booking, branch: booking.Branch, *, day: date | None = None,
                 error: str | None = None, status: int = 200) -> Template:  # fmt: skip
    """The booking's own page: time, number, QR, add-to-calendar, and (while booked) the other free times of the
    same service to move to, a day at a time (`?day=`). A booking no longer waiting (checked in, cancelled, or a
    no-show once its check-in window has passed) shows that state instead of the QR."""
    now = _now(request)
    state = found.status
    if state == "booked" and now > found.starts_at + timedelta(minutes=branch.checkin_after):
        state = "no_show"
    names = {s.service_id: s.name for s in booking.services(conn, tenant, branch.branch_id)}
    zone = ZoneInfo(branch.zone)
    days: list[dict[str, Any]] = []
    times: list[dict[str, Any]] = []
    chosen: date = found.day
    if found.status == "booked" and found.service_id in names:
        days = _days(conn, branch, found.service_id, now)
        shown = {d["day"]: d["open"] for d in days}
        first_open: date = next((d["day"] for d in days if d["open"]), days[0]["day"])
        own = found.day if shown.get(found.day) else first_open  # the booking's own day while it has times
        chosen = day if day is not None and day in shown else own
        current = _iso_utc(found.starts_at)
        times = [{"value": s.starts_at.isoformat(), "label": s.starts_at.astimezone(zone).strftime("%H:%M"),
                  "left": s.left, "current": _iso_utc(s.starts_at) == current}
                 for s in booking.day_slots(conn, branch, found.service_id, chosen, now)]  # fmt: skip
    when = found.starts_at.astimezone(zone).strftime("%d/%m/%Y %H:%M")
    lang = _lang(request) if "lang" in request.query_params else found.lang
    closed = _closed_words(next((d["reason"] for d in days if d["day"] == chosen), None), lang)
    return _page(request, "booked.html", status, lang=lang, booking=found, branch=branch, when=when, state=state,
                 service=names.get(found.service_id, found.service_id), code=code, qr=messages.qr_svg(code),
                 tenant=tenant, days=days, day=chosen, times=times, closed=closed, error=error,
                 moved=request.query_params.get("moved") == "1")  # fmt: skip


def _iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


@get("/book/{tenant:str}/v/{code:str}", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_view(request: Request[Any, Any, Any], tenant: FromPath[str], code: FromPath[str]) -> Template | Redirect:
    """The booking's own page: its time, number and QR (the code in the address is the secret). A code from before
    the booking moved to another day (the link in an earlier e-mail) leads to the current one."""
    with transaction(_engine(request)) as conn:
        found, branch = _by_code(conn, tenant, code, _now(request))
        current = _current_code(conn, found, _now(request))
        if current != code:
            return Redirect(path=f"/book/{tenant}/v/{current}?lang={_lang(request)}", status_code=303)
        day = _maybe_day(request.query_params.get("day"))
        return _booked_page(request, conn, tenant, code, found, branch, day=day)


@get("/book/{tenant:str}/v/{code:str}/qr.png", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_qr(request: Request[Any, Any, Any], tenant: FromPath[str], code: FromPath[str]) -> Response[bytes]:
    """The check-in QR as PNG (to save, or to send on WhatsApp): always the booking's current code."""
    with transaction(_engine(request)) as conn:
        found, _branch = _by_code(conn, tenant, code, _now(request))
        current = _current_code(conn, found, _now(request))
    return Response(messages.qr_png(current), media_type="image/png", headers={"Cache-Control": "no-store"})


@get("/book/{tenant:str}/v/{code:str}/booking.ics", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_ics(request: Request[Any, Any, Any], tenant: FromPath[str], code: FromPath[str]) -> Response[bytes]:
    """The visit as an iCalendar file (one VEVENT, times in UTC) for the customer's calendar app."""
    with transaction(_engine(request)) as conn:
        found, branch = _by_code(conn, tenant, code, _now(request))
        current = _current_code(conn, found, _now(request))
        address = conn.execute(
            sa.select(branch_profiles.c.address).where(
                branch_profiles.c.tenant_id == tenant, branch_profiles.c.branch_id == branch.branch_id
            )
        ).scalar_one_or_none()
        service = next((s for s in booking.services(conn, tenant, branch.branch_id)
                        if s.service_id == found.service_id), None)  # fmt: skip
    lang = _lang(request) if "lang" in request.query_params else found.lang
    page = f"{str(request.base_url).rstrip('/')}/book/{tenant}/v/{current}"
    body = messages.visit_ical(found, branch, service.name if service else found.service_id,
                               service.slot_minutes if service else 30, address or "", page, lang)  # fmt: skip
    return Response(
        body,
        media_type="text/calendar",  # Litestar adds "; charset=utf-8" to a text/ type itself
        headers={
            "Content-Disposition": f'attachment; filename="booking-{found.booking_id}.ics"',
            "Cache-Control": "no-store",
        },
    )


@post("/book/{tenant:str}/v/{code:str}/cancel", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_cancel(request: Request[Any, Any, Any], tenant: FromPath[str], code: FromPath[str]) -> Template | Redirect:
    """Cancel from the booking's own page (frees the place, tells the branch, and owes the customer a cancellation
    message). A booking already checked in or cancelled says so on its page (409) instead."""
    _limit(request)
    now = _now(request)
    with transaction(_engine(request)) as conn:
        found, branch = _by_code(conn, tenant, code, now)
        try:
            booking.cancel(conn, tenant, found.booking_id, now)
        except booking.BookingRefused as exc:
            return _booked_page(request, conn, tenant, code, found, branch, error=f"err_{exc.code}", status=409)
        current = _current_code(conn, found, now)
    _changed(request)
    return Redirect(path=f"/book/{tenant}/v/{current}?lang={_lang(request)}", status_code=303)


@post("/book/{tenant:str}/v/{code:str}/reschedule", sync_to_thread=True, include_in_schema=False,
      exception_handlers=PUBLIC_ERRORS)  # fmt: skip
def booking_reschedule(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    code: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Move the booking to another free time of the same service (the booking's rules); a move to another day signs
    a new code, and the page moves to it. A refusal (full, closed, past, cancelled, checked in) is said on the page."""
    _limit(request)
    form = _form(data)
    now = _now(request)
    engine = _engine(request)
    try:
        with transaction(engine) as conn:
            found, branch = _by_code(conn, tenant, code, now)
            at = _at(form.get("starts_at", ""))
            moved = booking.reschedule(conn, branch, found.booking_id, at, now)
            current = _current_code(conn, moved, now)
    except (booking.BookingRefused, ValidationException) as exc:
        key = f"err_{exc.code}" if isinstance(exc, booking.BookingRefused) else "err_no_slot"
        with transaction(engine) as conn:
            found, branch = _by_code(conn, tenant, code, now)
            return _booked_page(request, conn, tenant, code, found, branch,
                                day=_maybe_day(form.get("day")), error=key,
                                status=400 if isinstance(exc, ValidationException) else 409)  # fmt: skip
    _changed(request)
    return Redirect(path=f"/book/{tenant}/v/{current}?lang={_lang(request)}&moved=1", status_code=303)


@get("/api/v1/appointments/{tenant:str}/{branch_id:str}/slots", sync_to_thread=True)
def slots_json(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> dict[str, Any]:
    """Free times of a service on a day (public: what the booking page shows). `?service_id=&day=YYYY-MM-DD`
    (absent: today; malformed or impossible: 400 `invalid_fields` naming `day`). `closed` says why a day has no
    times: the holiday's or blackout's name, or `beyond_horizon` (further ahead than bookings are taken)."""
    now = _now(request)
    with _engine(request).connect() as conn:
        branch = _branch_or_404(conn, tenant, branch_id)
        day = _strict_day(request.query_params.get("day"), now.astimezone(ZoneInfo(branch.zone)).date())
        try:
            slots = booking.day_slots(conn, branch, request.query_params.get("service_id", ""), day, now)
        except booking.BookingRefused:
            raise refusal(404, "unknown_service", "no such bookable service at this branch") from None
        reason = booking.closed_reason(conn, branch, day, now)
    return {"day": day.isoformat(), "closed": reason,
            "slots": [{"starts_at": s.starts_at.isoformat(), "left": s.left} for s in slots]}  # fmt: skip


# --- staff ---------------------------------------------------------------------------------------------------------


def _visible_branches(conn: sa.Connection, user: HqPrincipal) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        sa.select(branch_profiles.c.tenant_id, branch_profiles.c.branch_id, branch_profiles.c.name)
        .where(scope_filter(branch_profiles, user), branch_profiles.c.status == "active")
        .order_by(branch_profiles.c.tenant_id, branch_profiles.c.branch_id)
    ).all()
    return [(r.tenant_id, r.branch_id, r.name) for r in rows]


def _status_word(status: str) -> str:
    return "st_cancelled" if status == "cancelled" else status


def _day_view(conn: sa.Connection, branch: booking.Branch, day: date, now: datetime) -> list[dict[str, Any]]:
    zone = ZoneInfo(branch.zone)
    rows = booking.day_bookings(conn, branch.tenant, branch.branch_id, [day.isoformat()])
    sent = outbox.message_log(conn, branch.tenant, [r.booking_id for r in rows])
    return [
        {
            "booking_id": r.booking_id,
            "service_id": r.service_id,
            "time": datetime.fromisoformat(r.starts_at).astimezone(zone).strftime("%H:%M"),
            "starts_at": r.starts_at,
            "name": r.name,
            "contact": " · ".join(x for x in (mask_email(r.email), mask_phone(r.phone)) if x),
            "status": booking.shown_status(r, branch, now),
            "ticket_id": r.ticket_id,
            "messages": sent.get(r.booking_id, []),
        }
        for r in rows
    ]


@get("/appointments", sync_to_thread=True, guards=[requires("appointments.read")], include_in_schema=False)
def staff_page(request: Request[Any, Any, Any]) -> Template:
    """A branch's bookings of a day with their state (booked, checked in, no-show, cancelled) and the staff forms."""
    user = _user(request)
    with _engine(request).connect() as conn:
        visible = _visible_branches(conn, user)
    if not visible:
        return _page(request, "staff.html", visible=[], branch=None, active="appointments")
    tenant = request.query_params.get("tenant") or visible[0][0]
    branch_id = request.query_params.get("branch") or next((b for t, b, _ in visible if t == tenant), "")
    return _staff_view(request, tenant, branch_id, request.query_params.get("day"))


def _staff_view(request: Request[Any, Any, Any], tenant: str, branch_id: str, day_text: str | None, *,
                forms: dict[str, dict[str, str]] | None = None, errors: dict[str, dict[str, str]] | None = None,
                status: int = 200) -> Template:  # fmt: skip
    """The staff page of one branch and day; a refused settings form comes back with its values and errors (`forms`
    and `errors` by form: `service`, `policy`)."""
    user = _user(request)
    now = _now(request)
    require_branch(user, tenant, branch_id)
    with _engine(request).connect() as conn:
        visible = _visible_branches(conn, user)
        branch = _branch_or_404(conn, tenant, branch_id)
        day = _day(day_text, now.astimezone(ZoneInfo(branch.zone)).date())
        bookings = _day_view(conn, branch, day, now)
        services = booking.services(conn, tenant, branch_id)
        all_services = conn.execute(
            sa.select(booking.appt_services)
            .where(booking.appt_services.c.tenant_id == tenant, booking.appt_services.c.branch_id == branch_id)
            .order_by(booking.appt_services.c.service_id)
        ).all()
        configured = booking.configured_services(conn, tenant, branch_id)
        slots = {s.service_id: booking.day_slots(conn, branch, s.service_id, day, now) for s in services}
        numbers = admin.ticket_numbers(conn, tenant, branch_id, [b["ticket_id"] for b in bookings])
        # no public address known: the customers' messages cannot carry a link to their booking's page
        links_unknown = outbox.link_base(conn, tenant, str(request.app.state.get("public_url") or "")) == ""
    zone = ZoneInfo(branch.zone)
    free = {sid: [{"value": s.starts_at.isoformat(), "label": s.starts_at.astimezone(zone).strftime("%H:%M"),
                   "left": s.left} for s in v if s.left] for sid, v in slots.items()}  # fmt: skip
    counts = {k: sum(1 for b in bookings if b["status"] == k) for k in ("booked", "checked_in", "no_show", "cancelled")}
    names = {s.service_id: s.name for s in all_services}
    derived = {s.service_id: calendar.derived_capacity(s.counters, s.slot_minutes, s.mean_service_minutes, s.quota_pct)
               for s in all_services}  # fmt: skip
    forms = forms or {}
    service_form = forms.get("service") or {k: str(v[2]) for k, v in admin.SERVICE_BOUNDS.items() if v[2] is not None}
    policy_form = forms.get("policy") or {"region": branch.region or "", "before": str(branch.checkin_before),
                                          "after": str(branch.checkin_after), "late": branch.late_policy}  # fmt: skip
    fresh = status == HTTP_200_OK  # not a refused form shown again
    saved = request.query_params.get("saved") if fresh else None
    error = request.query_params.get("error") if fresh else None
    return _page(request, "staff.html", status, visible=visible, branch=branch, day=day, bookings=bookings,
                 services=services, all_services=all_services, free=free, counts=counts, active="appointments",
                 can_manage=user.can("appointments.manage"), saved=saved, error=error, status_word=_status_word,
                 names=names, derived=derived, numbers=numbers, configured=configured, service_form=service_form,
                 policy_form=policy_form, errors=errors or {}, links_unknown=links_unknown,
                 local_time=lambda at: datetime.fromisoformat(at).astimezone(zone).strftime("%d/%m %H:%M"))  # fmt: skip


def _back(tenant: str, branch_id: str, day: str, lang: str, **extra: str) -> Redirect:
    query = "&".join(f"{k}={v}" for k, v in {"tenant": tenant, "branch": branch_id, "day": day, "lang": lang,
                                                 **extra}.items())  # fmt: skip
    return Redirect(path=f"/appointments?{query}", status_code=303)


def _form(data: Mapping[str, Any]) -> dict[str, str]:
    """A form's text fields, trimmed (an uploaded file is not one)."""
    return {k: str(v).strip() for k, v in data.items() if isinstance(v, str)}


@post("/appointments/{tenant:str}/{branch_id:str}/book", sync_to_thread=True,
      guards=[requires("appointments.manage")], include_in_schema=False)  # fmt: skip
def staff_book(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Redirect:
    """Book for a customer at the desk or on the phone."""
    require_branch(_user(request), tenant, branch_id)
    form = _form(data)
    lang = pick(form.get("lang"))
    day = form.get("day", "")
    errors = _contact_errors(form)
    if errors:
        return _back(tenant, branch_id, day, _lang(request), error=next(iter(errors.values())))
    try:
        at = _at(form.get("starts_at", ""))
    except ValidationException:  # a time the form never offers: back to the page saying so
        return _back(tenant, branch_id, day, _lang(request), error="err_starts_at")
    try:
        with transaction(_engine(request)) as conn:
            branch = _branch_or_404(conn, tenant, branch_id)
            booking.book(conn, branch, form.get("service_id", ""), at, name=form["name"],
                         email=form.get("email") or None, phone=form.get("phone") or None, lang=lang,
                         actor=_user(request).username or "staff", now=_now(request))  # fmt: skip
    except booking.BookingRefused as exc:
        return _back(tenant, branch_id, day, _lang(request), error=f"err_{exc.code}")
    _changed(request)
    return _back(tenant, branch_id, day, _lang(request), saved="1")


@post("/appointments/{tenant:str}/{branch_id:str}/bookings/{booking_id:str}/{action:str}", sync_to_thread=True,
      guards=[requires("appointments.manage")], include_in_schema=False)  # fmt: skip
def staff_change(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    booking_id: FromPath[str],
    action: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Redirect:
    """Cancel or reschedule a booking; a refusal (or a malformed new time) goes back to the page saying why."""
    require_branch(_user(request), tenant, branch_id)
    form = _form(data)
    day = form.get("day", "")
    at: datetime | None = None
    if action == "reschedule":
        try:
            at = _at(form.get("starts_at", ""))
        except ValidationException:
            return _back(tenant, branch_id, day, _lang(request), error="err_starts_at")
    try:
        with transaction(_engine(request)) as conn:
            found = booking.get(conn, tenant, booking_id)
            if found is None or found.branch_id != branch_id:
                raise NotFoundException("no such booking")
            if action == "cancel":
                booking.cancel(conn, tenant, booking_id, _now(request))
            elif action == "reschedule" and at is not None:
                branch = _branch_or_404(conn, tenant, branch_id)
                booking.reschedule(conn, branch, booking_id, at, _now(request))
            else:
                raise NotFoundException("no such action")
    except booking.BookingRefused as exc:
        return _back(tenant, branch_id, day, _lang(request), error=f"err_{exc.code}")
    _changed(request)
    return _back(tenant, branch_id, day, _lang(request), saved="1")


def _int(form: dict[str, str], key: str, low: int, high: int, default: int | None = None) -> int | None:
    try:
        value = int(form.get(key, ""))
    except ValueError:
        return default
    return value if low <= value <= high else default


@post("/appointments/{tenant:str}/{branch_id:str}/settings", sync_to_thread=True,
      guards=[requires("appointments.manage")], include_in_schema=False)  # fmt: skip
def staff_settings(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    data: dict[str, Any] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """One bookable service (when `service_id` is sent: one of the branch's configuration), or the branch's check-in
    window, late policy and region. A bad field re-renders the page (400) with the errors beside the fields and
    changes nothing (bounds: cloud/appointments/admin.py)."""
    require_branch(_user(request), tenant, branch_id)
    form = _form(data)
    which = "service" if "service_id" in form else "policy"
    with transaction(_engine(request)) as conn:
        _branch_or_404(conn, tenant, branch_id)
        if which == "service":
            values, errors = admin.service_values(form, booking.configured_services(conn, tenant, branch_id))
            if not errors:
                booking.save_service(conn, tenant, branch_id, values.pop("service_id"), **values)
        else:
            values, errors = admin.policy_values(form)
            if not errors:
                booking.save_settings(conn, tenant, branch_id, now=_now(request).isoformat(), **values)
    if errors:
        return _staff_view(request, tenant, branch_id, form.get("day"), forms={which: form}, errors={which: errors},
                           status=400)  # fmt: skip
    _changed(request)
    return _back(tenant, branch_id, form.get("day", ""), _lang(request), saved="1")


@get("/appointments/{tenant:str}/calendar", sync_to_thread=True, guards=[requires("appointments.read")],
     include_in_schema=False)  # fmt: skip
def calendar_page(request: Request[Any, Any, Any], tenant: FromPath[str]) -> Template:
    """The tenant's calendar: the national holidays and joint leave days of a year, its own entries (a branch manager
    sees the tenant's and regions' and its branches' ones, and may change only its branches'), and the bookings
    left on closed days."""
    return _calendar_view(request, tenant)


# the calendar page's messages (`?error=` shows only these; anything else shows nothing)
CALENDAR_ERRORS = ("err_scope", "err_scope_branch", "err_kind", "err_day", "err_entry_name", "err_ics_malformed",
                   "err_ics_no_start", "err_ics_range", "err_ics_too_many", "err_ics_too_big",
                   "err_ics_empty")  # fmt: skip
ICS_MAX_BYTES = 1_000_000


def _calendar_view(request: Request[Any, Any, Any], tenant: str, *, form: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None, status: int = 200) -> Template:  # fmt: skip
    user = _user(request)
    require_tenant(user, tenant)
    now = _now(request)
    year = _int(dict(request.query_params), "year", 2000, 2100, now.year) or now.year
    with _engine(request).connect() as conn:
        every = booking.entries(conn, tenant)
        branches = [(b, n) for b, n in admin.tenant_branches(conn, tenant) if user.sees_branch(tenant, b)]
        regions = admin.known_regions(conn, tenant, every) if admin.tenant_wide(user, tenant) else []
        closed = admin.bookings_on_closed_days(conn, tenant, [b for b, _ in branches], now)
    entries = sorted((e for e in every if admin.may_see(user, tenant, e.scope)), key=lambda e: (e.day, e.scope))
    can_manage = user.can("appointments.manage")
    query_error = request.query_params.get("error")
    fresh = status == HTTP_200_OK  # not a refused form shown again
    imported = _int(dict(request.query_params), "imported", 0, calendar.MAX_IMPORT_DAYS)
    return _page(request, "calendar.html", status, tenant=tenant, year=year, entries=entries, active="appointments",
                 national=sorted(calendar.national(year).items()), can_manage=can_manage,
                 editable=lambda scope: can_manage and admin.may_change(user, tenant, scope),
                 tenant_wide=admin.tenant_wide(user, tenant), branches=branches, branch_names=dict(branches),
                 regions=regions, closed=closed,
                 closed_total=sum(c.bookings for c in closed), form=form or {}, errors=errors or {},
                 error=query_error if fresh and query_error in CALENDAR_ERRORS else None,
                 imported=imported if fresh else None,
                 saved=fresh and request.query_params.get("saved") == "1")  # fmt: skip


def _calendar_scope(fields: dict[str, str]) -> str:
    """The form's scope: `tenant`, `branch:<id>`, `region:<code>`, or `region` with the code in `region`."""
    scope = fields.get("scope") or "tenant"
    return f"region:{fields.get('region', '')}" if scope == "region" else scope


def _entry_fields(fields: dict[str, str], scope: str, errors: dict[str, str]) -> list[calendar.Entry]:
    """The one entry the add/delete form names (errors added by field)."""
    text = fields.get("day", "")
    day = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(text)
    if day is None or not calendar.YEARS[0] <= day.year <= calendar.YEARS[1]:
        errors["day"] = "err_day"
    name = fields.get("name", "")
    if len(name) > admin.ENTRY_NAME_MAX or re.search(r"[\x00-\x1f\x7f]", name):
        errors["name"] = "err_entry_name"
    if errors or day is None:
        return []
    return [calendar.Entry(scope, day, fields.get("kind") or "blackout", name)]


@post("/appointments/{tenant:str}/calendar", guards=[requires("appointments.manage")], include_in_schema=False)
async def calendar_change(request: Request[Any, Any, Any], tenant: FromPath[str]) -> Template | Redirect:
    """Add or delete an entry, or import an iCal file (multipart `ics`) into one scope. The scope must be the
    tenant's (`tenant`, `region:<code>`, `branch:<one of its branches>`) and the caller's: tenant and region entries
    need the whole tenant (403 for a branch manager), another branch is 404. A bad field re-renders the page (400)
    with the reason (a refused .ics says why); an import says how many entries it took."""
    user = _user(request)
    require_tenant(user, tenant)
    form = await request.form()
    fields = _form(form)
    scope = _calendar_scope(fields)
    deleting = bool(fields.get("delete"))

    def tenant_branch_ids() -> list[str]:
        with _engine(request).connect() as conn:
            return [b for b, _ in admin.tenant_branches(conn, tenant)]

    errors: dict[str, str] = {}
    try:
        admin.check_scope(scope, user, tenant, await asyncio.to_thread(tenant_branch_ids))
    except admin.ScopeRefused as exc:
        if exc.status == HTTP_404_NOT_FOUND:
            raise NotFoundException(f"no branch {tenant}/{scope.removeprefix('branch:')}") from None
        if exc.status == HTTP_403_FORBIDDEN:
            raise PermissionDeniedException("tenant and region entries need the whole tenant in scope") from None
        errors["scope"] = exc.code
    kind = fields.get("kind") or "blackout"
    if kind not in calendar.KINDS and not deleting:
        errors["kind"] = "err_kind"
    upload = form.get("ics")
    entries: list[calendar.Entry] = []
    if isinstance(upload, UploadFile):
        raw = await upload.read(ICS_MAX_BYTES + 1)
        if len(raw) > ICS_MAX_BYTES:
            errors["ics"] = "err_ics_too_big"
        elif not errors:
            try:
                entries = calendar.from_ical(raw, scope, kind)
            except calendar.IcalInvalid as exc:
                errors["ics"] = f"err_ics_{exc.code}"
            if not entries and "ics" not in errors:
                errors["ics"] = "err_ics_empty"
    else:
        entries = _entry_fields(fields, scope, errors)
    if errors:
        which = "import" if isinstance(upload, UploadFile) else "entry"
        return await asyncio.to_thread(_calendar_view, request, tenant, form={**fields, "form": which},
                                       errors=errors, status=400)  # fmt: skip

    def write() -> None:
        with transaction(_engine(request)) as conn:
            for entry in entries:
                if deleting:
                    booking.delete_entry(conn, tenant, entry.scope, entry.day.isoformat())
                else:
                    booking.put_entry(conn, tenant, entry)

    await asyncio.to_thread(write)
    _changed(request)
    done = f"imported={len(entries)}" if isinstance(upload, UploadFile) else "saved=1"
    return Redirect(path=f"/appointments/{tenant}/calendar?lang={_lang(request)}&{done}", status_code=303)


@get("/appointments/{tenant:str}/calendar.ics", sync_to_thread=True, guards=[requires("appointments.read")],
     include_in_schema=False)  # fmt: skip
def calendar_export(request: Request[Any, Any, Any], tenant: FromPath[str]) -> Response[bytes]:
    """The tenant's own entries as an iCalendar file."""
    require_tenant(_user(request), tenant)
    with _engine(request).connect() as conn:
        entries = booking.entries(conn, tenant)
    return Response(calendar.to_ical(entries), media_type="text/calendar",
                    headers={"Content-Disposition": f'attachment; filename="{tenant}-closures.ics"'})  # fmt: skip


# --- JSON API --------------------------------------------------------------------------------------------------------


@get("/api/v1/appointments/{tenant:str}/{branch_id:str}/bookings", sync_to_thread=True,
     guards=[requires("appointments.read")])  # fmt: skip
def bookings_json(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> dict[str, Any]:
    """A branch's bookings of a day (`?day=`, branch-local) with their state; contacts masked."""
    require_branch(_user(request), tenant, branch_id)
    now = _now(request)
    with _engine(request).connect() as conn:
        branch = _branch_or_404(conn, tenant, branch_id)
        day = _strict_day(request.query_params.get("day"), now.astimezone(ZoneInfo(branch.zone)).date())
        return {"day": day.isoformat(), "bookings": _day_view(conn, branch, day, now)}


@post("/api/v1/appointments/{tenant:str}/{branch_id:str}/bookings", sync_to_thread=True,
      guards=[requires("appointments.manage")], exception_handlers=JSON_ERRORS)  # fmt: skip
def book_json(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str], data: JSONBody[dict[str, Any]]
) -> Response[dict[str, Any]]:
    """Book: `{service_id, starts_at, name, email?, phone?, lang?}` -> 201 `{booking_id, starts_at, day, qr_text}`;
    a full slot is 409 `slot_full`, a closed day 409 `day_closed`, an unknown service 422 `unknown_service`; bad
    fields are 400 `invalid_fields` listing every one (`fields`, and `errors` with why); a body that is not a JSON
    object is 400 `invalid_body`."""
    require_branch(_user(request), tenant, branch_id)
    form = {k: v.strip() for k, v in data.items() if isinstance(v, str)}
    errors = _contact_errors(form)
    at: datetime | None = None
    try:
        at = _starts_at(data.get("starts_at"))
    except ProblemDetailsException as exc:
        errors["starts_at"] = exc.extra["errors"]["starts_at"] if isinstance(exc.extra, dict) else "invalid"
    if not form.get("service_id"):
        errors["service_id"] = "err_unknown_service"
    if errors or at is None:
        raise invalid(errors)
    try:
        with transaction(_engine(request)) as conn:
            branch = _branch_or_404(conn, tenant, branch_id)
            made = booking.book(conn, branch, form["service_id"], at, name=form["name"],
                                email=form.get("email") or None, phone=form.get("phone") or None,
                                lang=pick(form.get("lang")), actor=_user(request).username or "staff",
                                now=_now(request))  # fmt: skip
            code = booking.qr_text(conn, made, _now(request))
    except booking.BookingRefused as exc:
        return _refused(exc)
    _changed(request)
    body = {"booking_id": made.booking_id, "starts_at": made.starts_at.isoformat(), "day": made.day.isoformat(),
            "qr_text": code}  # fmt: skip
    return Response(body, status_code=201)


def _refused(exc: booking.BookingRefused) -> Response[dict[str, Any]]:
    """A refused booking change as RFC 9457 problem+json with the stable `code` (type `urn:qms:problem:<code>`, the
    status phrase as title): 404 `not_found`, 422 `unknown_service`, else 409 (`slot_full`, `day_closed`, `past`,
    `no_slot`, `cancelled`, `checked_in`)."""
    status = {"not_found": 404, "unknown_service": 422}.get(exc.code, 409)
    body = {"type": f"urn:qms:problem:{exc.code}", "title": HTTPStatus(status).phrase, "status": status,
            "detail": str(exc), "code": exc.code}  # fmt: skip
    return Response(body, status_code=status, media_type="application/problem+json")


def _booking_json(conn: sa.Connection, found: booking.Booking, now: datetime) -> dict[str, Any]:
    return {"booking_id": found.booking_id, "service_id": found.service_id,
            "starts_at": found.starts_at.isoformat(), "day": found.day.isoformat(), "status": found.status,
            "qr_text": booking.qr_text(conn, found, now)}  # fmt: skip


BOOKING_ID = re.compile(r"^[A-Z2-7]{16}$")


Change = Callable[[sa.Connection, booking.Branch], booking.Booking]


def _change_json(request: Request[Any, Any, Any], tenant: str, branch_id: str, booking_id: str,
                 change: Change) -> Response[dict[str, Any]]:  # fmt: skip
    """Run a cancel or reschedule of one booking of the branch; a booking of another branch or tenant is not_found."""
    require_branch(_user(request), tenant, branch_id)
    now = _now(request)
    try:
        with transaction(_engine(request)) as conn:
            branch = _branch_or_404(conn, tenant, branch_id)
            found = booking.get(conn, tenant, booking_id) if BOOKING_ID.match(booking_id) else None
            if found is None or found.branch_id != branch_id:
                return _refused(booking.BookingRefused("not_found", "no such booking at this branch"))
            body = _booking_json(conn, change(conn, branch), now)
    except booking.BookingRefused as exc:
        return _refused(exc)
    _changed(request)
    return Response(body, status_code=200)


@post("/api/v1/appointments/{tenant:str}/{branch_id:str}/bookings/{booking_id:str}/cancel", sync_to_thread=True,
      guards=[requires("appointments.manage")], status_code=200)  # fmt: skip
def cancel_json(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str], booking_id: FromPath[str]
) -> Response[dict[str, Any]]:
    """Cancel a booking (frees its place, tells the branch) -> 200 `{booking_id, service_id, starts_at, day, status,
    qr_text}`; 404 `not_found` (unknown here, or another branch's or tenant's), 409 `cancelled` / `checked_in`."""
    return _change_json(request, tenant, branch_id, booking_id,
                        lambda conn, _branch: booking.cancel(conn, tenant, booking_id, _now(request)))  # fmt: skip


@post("/api/v1/appointments/{tenant:str}/{branch_id:str}/bookings/{booking_id:str}/reschedule", sync_to_thread=True,
      guards=[requires("appointments.manage")], status_code=200, exception_handlers=JSON_ERRORS)  # fmt: skip
def reschedule_json(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    booking_id: FromPath[str],
    data: JSONBody[dict[str, Any]],
) -> Response[dict[str, Any]]:
    """Move a booking to another slot of its service: `{starts_at}` (RFC 3339 with offset) -> 200 as cancel, with
    the new `qr_text` (a new one when the day changed: the old code no longer checks in). 400 for a malformed
    `starts_at` (`errors.starts_at` says why), `invalid_body` for a body that is not a JSON object; 404
    `not_found`; 409 `slot_full`, `day_closed`, `past`, `no_slot`, `cancelled`, `checked_in`."""
    require_branch(_user(request), tenant, branch_id)  # out of scope is a 404 before the body is read
    at = _starts_at(data.get("starts_at"))

    def move(conn: sa.Connection, branch: booking.Branch) -> booking.Booking:
        return booking.reschedule(conn, branch, booking_id, at, _now(request))

    return _change_json(request, tenant, branch_id, booking_id, move)


@post("/api/v1/appointments/{tenant:str}/messages/{message_id:int}/replay", guards=[requires("appointments.manage")],
      status_code=200)  # fmt: skip
async def message_replay(
    request: Request[Any, Any, Any], tenant: FromPath[str], message_id: FromPath[int]
) -> dict[str, Any]:
    """Send a dead booking message again (pending, attempts afresh); 409 `not_dead` for a message of the tenant that
    is not dead (as notify's booking-messages replay says it), 404 when the tenant has no such message."""
    require_tenant(_user(request), tenant)
    if not 0 < message_id < 2**63:
        raise NotFoundException()

    def run() -> str | None:
        """None when replayed, else the message's status (`""`: the tenant has no such message)."""
        with transaction(_engine(request)) as conn:
            if outbox.replay(conn, tenant, message_id, _now(request)):
                return None
            return outbox.message_status(conn, tenant, message_id) or ""

    status = await asyncio.to_thread(run)
    if status == "":
        raise NotFoundException()
    if status is not None:
        raise refusal(409, "not_dead", f"booking message {message_id} is {status}: only a dead message is sent again")
    _changed(request)
    return {"id": message_id, "status": "pending"}


# One Router: Litestar calls `on_registration` for every handler of a path each time another handler is added to that
# path, which wraps a sync_to_thread handler twice when GET and POST share a path registered one by one on the app.
ROUTES: list[Any] = [Router(path="/", route_handlers=[
    booking_page, booking_submit, booking_view, booking_qr, booking_cancel, slots_json, staff_page, staff_book,
    staff_change, staff_settings, calendar_page, calendar_change, calendar_export, bookings_json, book_json,
    cancel_json, reschedule_json, message_replay, booking_ics, booking_reschedule, booking_find,
    booking_find_page,
])]  # fmt: skip
