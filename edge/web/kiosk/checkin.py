"""`POST /kiosk/api/checkin`: a booked visitor's QR (typed by a USB scanner or read by the kiosk's camera) becomes a
ticket, checked offline against the bookings the hub last pushed (edge/appointments).

The ticket's request id is `checkin-<booking id>`, so one booking makes at most one ticket even when two kiosks scan
it at once: the second gets the first's ticket back as a replay, and is told the code was already used."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from msgspec import Meta, Struct

from edge.appointments import checkin, store
from edge.auth import Principal
from edge.engine import commands as c
from edge.wait_words import wait_text
from edge.web.deps import require_role
from edge.web.kiosk import links
from edge.web.kiosk.catalog import local_time, zone
from edge.web.problems import PROBLEM_MEDIA_TYPE, ApiError, Problem
from edge.web.schemas import Lang

# Whatever a scanner read: any QR (a web address, a payment code) is a well-formed request that is not one of ours,
# refused as `422 checkin_invalid` like a forged code. 7089 characters is the most a QR symbol holds (version 40-L, all
# digits; 4296 in its alphanumeric mode); only longer text, which no scanner reads from a QR, is a `400`.
QR_MAX_CHARS = 7089
QrText = Annotated[str, Meta(min_length=1, max_length=QR_MAX_CHARS, description="the QR's text as read (any text)")]


class CheckinRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /kiosk/api/checkin`: the code as scanned."""

    code: QrText
    lang: Lang = "id"


def _used(state: Any) -> frozenset[str]:
    """Bookings that already have a ticket in the branch's state (today's tickets)."""
    refs = (checkin.booking_of(t.customer_ref) for t in state.tickets.values())
    return frozenset(r for r in refs if r)


REFUSED = ResponseSpec(
    data_container=Problem, media_type=PROBLEM_MEDIA_TYPE,
    description="No ticket for this code (`checkin_invalid`: not one of our check-in codes, e.g. any other QR, or a "
    "forged one; `checkin_no_bookings`, `checkin_wrong_branch`, `checkin_wrong_day`, `checkin_unknown`, "
    "`checkin_cancelled`, `checkin_too_early` with `opens_at`, `checkin_too_late`, `checkin_used`)",
)  # fmt: skip


@post("/kiosk/api/checkin", status_code=201, summary="Check in a booked visit from its QR and issue its ticket",
      responses={422: REFUSED})  # fmt: skip
async def kiosk_checkin(
    request: Request[Any, Any, Any], data: JSONBody[CheckinRequest], principal: NamedDependency[Principal]
) -> Response[dict[str, Any]]:
    """A valid code inside its window → the appointment's ticket (channel `appointment`, its time and priority); a
    late one → a walk-in ticket or a refusal by the branch's policy; any other text (another QR, a forged or tampered
    code) → 422 with a `checkin_*` code. A body that is not JSON or has no `code` is 400."""
    from edge.web.kiosk import KIOSK_ROLES, _kiosk_app, _public_ticket, _seen, check_lang  # the package imports this

    require_role(principal, *KIOSK_ROLES)
    app = _kiosk_app(request)
    config = app.config()
    check_lang(config, data.lang)
    if principal.role == "device":
        _seen(app, principal.username)
    now = app.service.clock()
    state = app.service.view.state
    branch_id = state.branch_id or config.branch_id
    decision = checkin.decide(
        data.code,
        store.load(app.service.data_dir),
        branch_id=branch_id,
        today=now.astimezone(zone(config.timezone)).date(),
        now=now,
        used=_used(state),
    )
    if isinstance(decision, checkin.Refuse):
        opens = local_time(decision.opens_at, config.timezone) if decision.opens_at else None
        raise ApiError(422, f"checkin_{decision.code}", "this code cannot be checked in", opens_at=opens)
    visit = decision.visit
    command = c.Enqueue(
        actor=principal.username,
        request_id=f"checkin-{visit.booking_id}",
        service_id=visit.service_id,
        channel="kiosk" if decision.late else "appointment",
        priority=visit.priority or None if not decision.late and _takes_priority(config, visit.service_id) else None,
        customer_ref=checkin.customer_ref(visit.booking_id),
        lang=data.lang,
        appointment_at=None if decision.late else visit.starts_at,
    )
    outcome = await asyncio.wrap_future(app.service.submit(command))
    if outcome.replayed:
        raise ApiError(422, "checkin_used", "this code cannot be checked in")
    view = outcome.response
    ref = f"t:{view['ticket_id']}"
    address = app.desk.address_for(config.kiosk, principal.username)
    printed = await app.desk.print_ticket(address, principal.username,
                                          app.ticket_print(request, view, data.lang, ref))  # fmt: skip
    url = app.status_url(request, ref)
    body = {
        "ticket": _public_ticket(view, config.kiosk.phone_display == "hidden"),
        "service_id": visit.service_id,
        "late": decision.late,
        "appointment_local": local_time(visit.starts_at, config.timezone),
        "issued_local": local_time(now, config.timezone),
        "eta_text": wait_text(view.get("eta_seconds"), data.lang, view.get("position")),
        "status_url": url,
        "qr_svg": links.qr_svg(url),
        "print": printed,
    }
    return Response(body, status_code=201)


def _takes_priority(config: Any, service_id: str) -> bool:
    """Whether the service takes priority tickets (else the booking's priority is dropped: blending still applies)."""
    return any(s.id == service_id and s.priority_enabled for s in config.services)
