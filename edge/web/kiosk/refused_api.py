"""`GET /api/v1/kiosk/offline-refused`: offline kiosk tickets the appliance refused, for supervisors and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter
from msgspec import Struct

from edge import offline_refused
from edge.web.deps import require_role
from edge.web.kiosk import Caller, _kiosk_app

ROLES = ("admin", "supervisor")
Wanted = Literal["open", "issued", "dismissed", "all"]
StateParam = Annotated[Wanted, QueryParameter(name="state")]  # `state` is a reserved kwarg name in Litestar


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
    lang: FromQuery[Literal["id", "en"]] = "en",
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
