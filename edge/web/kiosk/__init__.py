"""The kiosk: `/kiosk` (touch page), `/kiosk/api/*` (issue, print, lease, offline sync) and `/t/<token>` (status)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.response import File
from litestar.static_files import create_static_files_router

from edge import offline_refused
from edge.auth import Principal
from edge.devices.printer.layout import TicketPrint
from edge.devices.registry import record_presence
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.engine.numbering import format_number
from edge.service import QueueService, RequestIdReused
from edge.wait_words import wait_text
from edge.web.deps import provide_principal, require_role
from edge.web.favicon import favicon
from edge.web.kiosk import links
from edge.web.kiosk.catalog import WORDS, catalog, local_time, service_name, words
from edge.web.kiosk.printing import ISSUED_AT_SLOT, PrintDesk, offline_job
from edge.web.kiosk.schemas import KioskTicket, LeaseRequest, OfflineBatch, OfflineTicket
from edge.web.problems import ApiError
from sync import links as status_links
from sync.contract_config import BranchConfig, Service

log = logging.getLogger("qms.kiosk")
WEB = Path(__file__).resolve().parent.parent
KIOSK_ROLES = ("device", "admin", "supervisor")
STAFF_ROLES = ("admin", "supervisor", "agent")
Caller = NamedDependency[Principal]


class KioskApp:
    """The kiosk's wiring: the writer, the status-link keys (the first signs), the print desk and the page templates."""

    def __init__(self, service: QueueService, link_keys: tuple[bytes, ...]) -> None:
        self.service = service
        self.link_keys = link_keys
        self.desk = PrintDesk()
        self.pages = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]))

    def config(self) -> BranchConfig:
        """The live configuration (503 before the branch is configured)."""
        config = self.service.view.state.config
        if config is None:
            raise ApiError(503, "not_configured", "the branch has no configuration yet")
        return config

    def status_url(self, request: Request[Any, Any, Any], ref: str) -> str:
        """The public status link of a ticket (the branch's public address when it has one)."""
        config = self.config()
        base = config.kiosk.public_base_url or str(request.base_url).rstrip("/")
        return f"{base.rstrip('/')}/t/{status_links.sign(self.link_keys[0], config.branch_id, ref)}"

    def verify(self, token: str) -> status_links.StatusRef | None:
        """What a token points at, if one of this appliance's keys signed it for this branch."""
        branch_id = self.service.view.state.branch_id
        for key in self.link_keys:
            ref = status_links.verify(key, token)
            if ref is not None:
                return ref if ref.branch_id == branch_id else None
        return None

    def logo_path(self) -> str | None:
        """The branch's logo image file (`kiosk.logo_image` in `<data-dir>/board-media/`), when it is there."""
        name = self.config().kiosk.logo_image
        path = self.service.data_dir / "board-media" / name if name else None
        return str(path) if path is not None and path.is_file() else None

    def html(self, template: str, status: int = 200, **context: Any) -> Response[str]:
        """A rendered page that no one may frame or cache."""
        body = self.pages.get_template(template).render(**context)
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
        return Response(body, status_code=status, media_type="text/html", headers=headers)  # Litestar adds the charset

    async def submit(self, command: c.Command) -> dict[str, Any]:
        """Run a command through the single writer and return its committed response."""
        outcome = await asyncio.wrap_future(self.service.submit(command))
        return outcome.response

    def ticket_print(self, request: Request[Any, Any, Any], view: dict[str, Any], lang: str, ref: str,
                     *, offline: bool = False) -> TicketPrint:  # fmt: skip
        """What the printer gets for a committed ticket."""
        config = self.config()
        service = config.service(view["service_id"])
        kiosk = config.kiosk
        created = _moment(view["created_at"])
        return TicketPrint(
            branch_name=config.name,
            ticket_number=view["ticket_number"],
            service_name=service_name(service, lang) if service else view["service_id"],
            issued_at=local_time(created, config.timezone),
            status_url=self.status_url(request, ref),
            lang=lang,
            position=view.get("position"),
            eta_seconds=view.get("eta_seconds"),
            logo_text=kiosk.logo_text,
            logo_image=self.logo_path(),
            phone=view.get("phone") if kiosk.phone_display == "masked" else None,
            customer_ref=view.get("customer_ref"),
            footer=kiosk.footer.get(lang),
            offline=offline,
        )

    def offline_print(self, number: str, service: Service, status_url: str, lang: str) -> TicketPrint:
        """A leased number's ticket as the kiosk prints it offline: no position, ETA or phone; time filled in later."""
        config = self.config()
        return TicketPrint(branch_name=config.name, ticket_number=number, service_name=service_name(service, lang),
                           issued_at=ISSUED_AT_SLOT, status_url=status_url, lang=lang,
                           logo_text=config.kiosk.logo_text, logo_image=self.logo_path(),
                           footer=config.kiosk.footer.get(lang),
                           offline=True)  # fmt: skip


def _moment(iso: str) -> datetime:
    """A view's RFC 3339 timestamp as a datetime."""
    return datetime.fromisoformat(iso)


def _check_inputs(app: KioskApp, data: KioskTicket | OfflineTicket) -> None:
    """The branch decides whether phone and reference are asked for, optional or required."""
    kiosk = app.config().kiosk
    for field, mode in (("phone", kiosk.phone_input), ("customer_ref", kiosk.customer_ref_input)):
        value = getattr(data, field)
        if mode == "off" and value is not None:
            raise ApiError(422, f"{field}_not_enabled", f"this branch does not take a {field} at the kiosk")
        if mode == "required" and not value:
            raise ApiError(422, f"{field}_required", f"this branch requires a {field} at the kiosk")


def spoken(config: BranchConfig) -> set[str]:
    """The languages a kiosk ticket may carry: the appliance's own (its kiosk words) and the branch's configured."""
    return set(WORDS) | set(config.languages)


def check_lang(config: BranchConfig, lang: str) -> None:
    """A 422 problem naming `lang` unless the appliance or the branch speaks it (the status page and the printed
    ticket are rendered in it; `<html lang="zz">` with Indonesian words helped no one). 422, not 400: the code is
    well-formed, the branch's configuration refuses it (as `phone_not_enabled`); the OpenAPI document says so."""
    if lang not in spoken(config):
        known = ", ".join(sorted(spoken(config)))
        raise ApiError(422, "lang_not_spoken", f"lang {lang!r} is not a language of this branch ({known})",
                       errors=[{"key": "lang", "message": f"expected one of: {known}", "source": "body"}])  # fmt: skip


def _kiosk_app(request: Request[Any, Any, Any]) -> KioskApp:
    kiosk: KioskApp = request.app.state["kiosk"]
    return kiosk


def _public_ticket(view: dict[str, Any], hide_phone: bool) -> dict[str, Any]:
    """The ticket as the kiosk shows it (phone masked or hidden per policy)."""
    shown = dict(view)
    shown["phone"] = None if hide_phone else (view.get("phone") or None)
    return shown


@get("/kiosk", include_in_schema=False, sync_to_thread=False)
def kiosk_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The touch page: every screen rendered once; the script moves between them and keeps working offline."""
    app = _kiosk_app(request)
    state = app.service.view.state
    if state.config is None:
        return app.html("kiosk/unconfigured.html", 503)
    document = catalog(state, app.service.clock())
    embedded = msgspec.json.encode(document).decode().replace("</", "<\\/")  # cannot close the <script> early
    return app.html("kiosk/kiosk.html", doc=document, doc_json=embedded, words=words(document["languages"][0]),
                    has_logo=app.logo_path() is not None)  # fmt: skip


@get("/kiosk/logo", include_in_schema=False, sync_to_thread=True)
def kiosk_logo(request: Request[Any, Any, Any]) -> File:
    """The branch's logo image for the kiosk's header (public branding, cached for an hour)."""
    path = _kiosk_app(request).logo_path()
    if path is None:
        raise ApiError(404, "not_found", "this branch has no logo image")
    return File(path, content_disposition_type="inline", headers={"Cache-Control": "public, max-age=3600"})


PRESENCE_EVERY = timedelta(seconds=15)  # a polling kiosk's last-seen is written at most this often
_last_marked: dict[str, datetime] = {}


def _seen(app: KioskApp, device_id: str) -> None:
    """A paired kiosk polled: it is online, last seen now (its heartbeat to the appliance; the appliance's heartbeat
    carries it to HQ's device fleet). Written through the single writer without waiting, at most every 15 s."""
    now = datetime.now(UTC)
    if now - _last_marked.get(device_id, datetime.min.replace(tzinfo=UTC)) < PRESENCE_EVERY:
        return
    _last_marked[device_id] = now
    app.service.submit_store(lambda conn: record_presence(conn, device_id, True, now))


@get("/kiosk/api/catalog", sync_to_thread=False, summary="Kiosk document (services, words, settings)")
def kiosk_catalog(request: Request[Any, Any, Any], principal: Caller) -> Response[dict[str, Any]]:
    """The versioned kiosk document; `ETag` is its version, so polling kiosks can compare cheaply."""
    require_role(principal, *KIOSK_ROLES)
    app = _kiosk_app(request)
    app.config()
    if principal.role == "device":
        _seen(app, principal.username)
    document = catalog(app.service.view.state, app.service.clock())
    return Response(document, headers={"ETag": f'"{document["version"]}"', "Cache-Control": "no-store"})


@post("/kiosk/api/tickets", status_code=201, summary="Issue a ticket at a kiosk and print it")
async def kiosk_issue(
    request: Request[Any, Any, Any], data: JSONBody[KioskTicket], principal: Caller
) -> Response[dict[str, Any]]:
    """Enqueue (committed first), then print off the writer; a printer failure only changes `print`; a retry with
    the same request_id gets the same ticket (`Idempotent-Replayed: true`) and prints nothing again."""
    require_role(principal, *KIOSK_ROLES)
    app = _kiosk_app(request)
    check_lang(app.config(), data.lang)
    _check_inputs(app, data)
    command = c.Enqueue(actor=principal.username, request_id=data.request_id, service_id=data.service_id,
                        channel="kiosk", phone=data.phone, customer_ref=data.customer_ref, lang=data.lang,
                        notify_opt_in=data.notify_opt_in if data.phone else None)  # fmt: skip
    outcome = await asyncio.wrap_future(app.service.submit(command))
    view = outcome.response
    ref = f"t:{view['ticket_id']}"
    config = app.config()
    address = app.desk.address_for(config.kiosk, principal.username)
    if outcome.replayed and address is not None:  # a retry of a request that committed: never a second paper
        printed = {"ok": False, "error": "not_reprinted", "detail": "issued by an earlier attempt; not printed twice"}
    else:  # (a screen-only kiosk gets `no_printer` either way: it has nothing to say about paper)
        printed = await app.desk.print_ticket(address, principal.username,
                                              app.ticket_print(request, view, data.lang, ref))  # fmt: skip
    url = app.status_url(request, ref)
    created = _moment(view["created_at"])
    body = {
        "ticket": _public_ticket(view, config.kiosk.phone_display == "hidden"),
        "issued_local": local_time(created, config.timezone),
        "eta_text": wait_text(view.get("eta_seconds"), data.lang, view.get("position")),
        "status_url": url,
        "qr_svg": links.qr_svg(url),
        "print": printed,
    }
    return Response(body, status_code=201, headers={"Idempotent-Replayed": "true"} if outcome.replayed else {})


@post("/kiosk/api/leases", status_code=201, summary="Reserve numbers for offline issuing")
async def kiosk_lease(
    request: Request[Any, Any, Any], data: JSONBody[LeaseRequest], principal: Caller
) -> dict[str, Any]:
    """A block of today's numbers with their temporary ids, status links and QR codes, ready for offline use.

    With a printer for this kiosk and `kiosk.offline_print_url` set, each number also carries its ESC/POS print jobs
    (`print_jobs`, base64 per branch language) whose issue time is the `print_time_slot` placeholder the kiosk
    overwrites.
    """
    require_role(principal, *KIOSK_ROLES)
    app = _kiosk_app(request)
    size = app.config().kiosk.offline_lease_size
    if size == 0:
        raise ApiError(409, "offline_disabled", "this branch does not lease numbers to kiosks")
    lease = await app.submit(c.LeaseNumbers(actor=principal.username, device_id=principal.username,
                                            service_id=data.service_id, count=size))  # fmt: skip
    config = app.config()
    service = config.service(lease["service_id"])
    assert service is not None
    numbers: list[dict[str, Any]] = []
    for seq_no in range(lease["first_seq"], lease["last_seq"] + 1):
        temp_id = f"off-{lease['lease_id']}-{seq_no}"
        url = app.status_url(request, f"o:{temp_id}")
        number = format_number(service, seq_no)
        numbers.append({"seq_no": seq_no, "temp_id": temp_id, "ticket_number": number, "status_url": url,
                        "qr_svg": links.qr_svg(url)})  # fmt: skip
    body = {key: lease[key] for key in ("lease_id", "service_id", "business_date", "first_seq", "last_seq")}
    address = app.desk.address_for(config.kiosk, principal.username) if config.kiosk.offline_print_url else None
    if address is not None:
        # One job per language (the customer's choice is only known offline): ~1.5 ms each, off the event loop.
        wanted = [(n, lang) for n in numbers for lang in config.languages]
        tickets = [app.offline_print(n["ticket_number"], service, n["status_url"], lang) for n, lang in wanted]
        jobs = await asyncio.to_thread(lambda: [offline_job(address, t) for t in tickets])
        for (entry, lang), job in zip(wanted, jobs, strict=True):
            if job is not None:
                entry.setdefault("print_jobs", {})[lang] = job
        body["print_time_slot"] = ISSUED_AT_SLOT
    return body | {"numbers": numbers}


@post("/kiosk/api/offline", status_code=200, summary="Reconcile tickets issued offline")
async def kiosk_offline(
    request: Request[Any, Any, Any], data: JSONBody[OfflineBatch], principal: Caller
) -> dict[str, Any]:
    """Each ticket exactly once (its temporary id is the request_id); one result per ticket."""
    require_role(principal, *KIOSK_ROLES)
    app = _kiosk_app(request)
    results = [await _reconcile(app, item, principal.username) for item in data.tickets]
    return {"results": results}


async def _reconcile(app: KioskApp, item: OfflineTicket, device_id: str) -> dict[str, Any]:
    """One offline ticket into the queue; a refusal is recorded for staff before the kiosk is told to drop it."""
    if item.temp_id != f"off-{item.lease_id}-{item.seq_no}":
        return await _refused(app, item, device_id, "temp_id_mismatch", "the temporary id does not name its number")
    if item.lang not in spoken(app.config()):  # the customer still has a ticket: in the branch's first language
        item = msgspec.structs.replace(item, lang=app.config().languages[0])
    try:
        view = await app.submit(c.EnqueueLeased(
            actor=device_id, request_id=item.temp_id, lease_id=item.lease_id, seq_no=item.seq_no,
            issued_at=item.issued_at, device_id=device_id, phone=item.phone, customer_ref=item.customer_ref,
            lang=item.lang, notify_opt_in=item.notify_opt_in if item.phone else None,
        ))  # fmt: skip
    except RequestIdReused as exc:  # reconciled before with other details (e.g. a language since dropped): it exists
        earlier = _reconciled_before(app, item.temp_id)
        if earlier is None:
            return await _refused(app, item, device_id, exc.code, exc.detail)
        view = earlier
    except DomainError as exc:
        return await _refused(app, item, device_id, exc.code, exc.detail)
    return {"temp_id": item.temp_id, "ok": True, "ticket_id": view["ticket_id"], "ticket_number": view["ticket_number"]}


def _reconciled_before(app: KioskApp, temp_id: str) -> dict[str, Any] | None:
    """The ticket an earlier reconciliation of this temporary id created, if it did."""
    row = app.service.read(
        lambda conn: conn.execute("SELECT response FROM requests WHERE request_id = ?", (temp_id,)).fetchone()
    )
    view: dict[str, Any] | None = msgspec.json.decode(row[0]) if row else None
    return view if view and view.get("ticket_id") else None


async def _refused(app: KioskApp, item: OfflineTicket, device_id: str, code: str, detail: str) -> dict[str, Any]:
    """Record the refusal durably (staff help the person holding the paper), then tell the kiosk it may drop it.

    If the record cannot be written the kiosk keeps the ticket and sends it again (`retry`): a refused ticket is
    never dropped before the appliance holds it."""
    service = app.service
    state = service.view.state

    def look_up(conn: sqlite3.Connection) -> offline_refused.Described:
        if offline_refused.known(conn, item.temp_id):  # a resend: only its attempt is counted
            return offline_refused.Described()
        return offline_refused.describe(conn, item.lease_id, item.seq_no, state.config, state.leases)

    def keep(conn: sqlite3.Connection) -> bool:
        return offline_refused.record(conn, item, about, device_id=device_id, code=code, detail=detail,
                                      now=service.clock())  # fmt: skip

    try:
        about = await asyncio.to_thread(service.read, look_up)  # off the writer: it may read the event log
        new = await asyncio.wrap_future(service.submit_store(keep))
    except Exception:  # storage trouble: keep the ticket on the kiosk
        log.exception("offline ticket %s refused (%s) but not recorded; the kiosk keeps it", item.temp_id, code)
        return {"temp_id": item.temp_id, "ok": False, "code": code, "retry": True, "recorded": False}
    if new:
        log.warning("offline ticket %s refused (%s): %s; kept for staff", item.temp_id, code, detail)
    return {"temp_id": item.temp_id, "ok": False, "code": code, "retry": False, "recorded": True}


@get("/kiosk/api/printers", sync_to_thread=False, summary="Kiosk printer status (staff)")
def kiosk_printers(request: Request[Any, Any, Any], principal: Caller) -> dict[str, Any]:
    """Each kiosk printer's last outcome (ok, offline, timeout, paper_out, error) and counts."""
    require_role(principal, *STAFF_ROLES)
    return {"printers": _kiosk_app(request).desk.snapshot()}


def _status(app: KioskApp, token: str) -> tuple[dict[str, Any] | None, str | None]:
    """(ticket view or None, its number when known) for a status token; 404 unless signed here for this branch."""
    ref = app.verify(token)
    if ref is None:
        raise ApiError(404, "not_found", "unknown ticket link")
    ident = ref.ident
    view = app.service.view
    if ref.kind == "t":
        return view.ticket(ident), None
    row = app.service.read(
        lambda conn: conn.execute("SELECT response FROM requests WHERE request_id = ?", (ident,)).fetchone()
    )
    if row is not None:
        ticket_id = msgspec.json.decode(row[0]).get("ticket_id")
        if ticket_id and (ticket := view.ticket(ticket_id)) is not None:
            return ticket, None
    return None, _offline_number(app, ident)


def _offline_number(app: KioskApp, temp_id: str) -> str | None:
    """The number of a not yet synced offline ticket (`off-<lease_id>-<seq>`), from its lease."""
    lease_id, _, seq = temp_id.removeprefix("off-").rpartition("-")
    lease = app.service.view.state.leases.get(lease_id)
    service = app.config().service(lease.service_id) if lease else None
    return format_number(service, int(seq)) if service and seq.isdigit() else None


@get("/t/{token:str}", include_in_schema=False, sync_to_thread=False)
def status_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """The customer's live status page (public; the link itself is the secret)."""
    app = _kiosk_app(request)
    ticket, pending_number = _status(app, token)
    config = app.config()
    lang = (ticket or {}).get("lang") or config.languages[0]
    if lang not in spoken(config):  # a ticket issued elsewhere (staff API) in a language nobody here speaks
        lang = config.languages[0]
    service = config.service(ticket["service_id"]) if ticket else None
    counter = config.counter(ticket["counter_id"]) if ticket and ticket.get("counter_id") else None
    eta = wait_text(ticket.get("eta_seconds"), lang, ticket.get("position")) if ticket else None
    return app.html("kiosk/status.html", ticket=ticket, words=words(lang), branch=config.name, lang=lang,
                    pending_number=pending_number,
                    service=service_name(service, lang) if service else None, counter=counter.name if counter else None,
                    eta=eta)  # fmt: skip


def kiosk_router(service: QueueService, link_keys: tuple[bytes, ...]) -> tuple[Router, KioskApp]:
    """The kiosk's routes and its wiring (put it in `app.state["kiosk"]`); `link_keys` from `links.link_keys`."""
    from edge.web.kiosk.checkin import kiosk_checkin  # appointments' check-in (it imports this module's helpers)
    from edge.web.kiosk.refused_api import (  # likewise
        offline_refused_dismiss,
        offline_refused_issue,
        offline_refused_list,
    )

    app = KioskApp(service, link_keys)
    auth = {"principal": Provide(provide_principal)}
    api = Router(path="/", route_handlers=[kiosk_catalog, kiosk_issue, kiosk_lease, kiosk_offline, kiosk_printers,
                                           kiosk_checkin, offline_refused_list, offline_refused_issue,
                                           offline_refused_dismiss], dependencies=auth)  # fmt: skip
    static = create_static_files_router(path="/kiosk/static", directories=[WEB / "static" / "kiosk"],
                                        include_in_schema=False, name="kiosk_static")  # fmt: skip
    return Router(path="/", route_handlers=[kiosk_page, kiosk_logo, status_page, favicon, api, static]), app
