"""The status page's "notify me" (US-NOTIF-008): the tenant's VAPID public key, the subscription a browser registers
for its ticket, the service worker that shows the pushes, and the manifest that makes the page installable (iOS only
delivers web push to a home-screen app). Public like the page itself: the signed link is the credential; anything that
does not check out is a plain 404, a malformed body is a 400 problem+json, and a subscription the ticket cannot take
is a 409 problem+json (`ticket_finished`, `too_many_devices`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath
from sqlalchemy.engine import Engine

from cloud.notify import push_store
from cloud.notify.problems import NO_STORE
from cloud.ticket_status import TicketRef, ticket_ref, words
from cloud.web.problems import refusal

ASSETS = Path(__file__).resolve().parents[1] / "web" / "templates" / "notify" / "push"
FINISHED = frozenset({"done", "cancelled", "no_show"})  # nothing left to be told about
MAX_BODY = 8192  # a subscription is ~500 bytes


class Unsubscribe(msgspec.Struct, frozen=True):
    """Which browser stops being told."""

    endpoint: str


def _ticket(request: Request[Any, Any, Any], token: str) -> TicketRef:
    """The link's ticket, or 404 (unknown, forged, not synced yet)."""
    engine: Engine = request.app.state["engine"]
    ref = ticket_ref(engine, request.app.state["keys_dir"], token)
    if ref is None:
        raise NotFoundException()
    return ref


def _decode(body: bytes, kind: type[Any]) -> Any:
    """The JSON body as `kind`, or a 400 that says what is wrong (never echoing the body)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValidationException(f"not a push subscription: {exc}") from exc


@get("/t/{token:str}/push", include_in_schema=False)
async def push_key(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[dict[str, Any]]:
    """The tenant's VAPID public key (`applicationServerKey`), made on first use; 404 when it offers no web push."""
    return await asyncio.to_thread(_key, request, token)


def _key(request: Request[Any, Any, Any], token: str) -> Response[dict[str, Any]]:
    """The link's tenant's public key, and whether its ticket still has something to be told about."""
    ref = _ticket(request, token)
    with request.app.state["engine"].begin() as conn:
        public = push_store.vapid_public_key(conn, ref.tenant)
    if public is None:  # the tenant offers no web push: the page keeps "notify me" hidden
        raise NotFoundException()
    return Response({"publicKey": public, "open": ref.status not in FINISHED}, headers=NO_STORE)


@post("/t/{token:str}/push", include_in_schema=False, request_max_body_size=MAX_BODY)
async def push_subscribe(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[dict[str, Any]]:
    """Record this browser's subscription for the ticket (idempotent: the same endpoint again is an update)."""
    sub = _decode(await request.body(), push_store.Subscription)
    try:
        push_store.validate(sub, push_store.allowed_origins())
    except push_store.InvalidSubscription as exc:
        raise ValidationException(str(exc)) from exc
    return await asyncio.to_thread(_subscribe, request, token, sub)


def _subscribe(request: Request[Any, Any, Any], token: str, sub: push_store.Subscription) -> Response[dict[str, Any]]:
    """Store a validated subscription for the link's ticket unless it is finished or has enough devices."""
    ref = _ticket(request, token)
    if ref.status in FINISHED:
        raise refusal(409, "ticket_finished", f"the ticket is {ref.status}: nothing left to be told about", NO_STORE)
    with request.app.state["engine"].begin() as conn:
        if push_store.push_settings(conn, ref.tenant) is None:
            raise NotFoundException()
        saved = push_store.save(conn, ref.tenant, ref.branch_id, ref.ticket_id, sub, ref.lang)
    if not saved:
        raise refusal(409, "too_many_devices", f"this ticket already notifies {push_store.MAX_PER_TICKET} devices",
                      NO_STORE)  # fmt: skip
    return Response({"subscribed": True}, status_code=201, headers=NO_STORE)


@post("/t/{token:str}/push/stop", include_in_schema=False, request_max_body_size=MAX_BODY)
async def push_unsubscribe(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[None]:
    """Stop telling this browser about the ticket."""
    stop = _decode(await request.body(), Unsubscribe)
    await asyncio.to_thread(_unsubscribe, request, token, stop.endpoint)
    return Response(None, status_code=204, headers=NO_STORE)


def _unsubscribe(request: Request[Any, Any, Any], token: str, endpoint: str) -> None:
    """Drop one browser's subscription for the link's ticket."""
    ref = _ticket(request, token)
    with request.app.state["engine"].begin() as conn:
        push_store.remove(conn, ref.tenant, ref.branch_id, ref.ticket_id, endpoint)


@get("/t/{token:str}/manifest.webmanifest", include_in_schema=False)
async def manifest(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[dict[str, Any]]:
    """The web app manifest: installing the page opens this ticket's status (what iOS needs for push)."""
    lang = (await asyncio.to_thread(_ticket, request, token)).lang
    icons = [{"src": "/t/status-icon.svg", "sizes": "any", "type": "image/svg+xml"}]
    body = {"name": words(lang)["title"], "short_name": words(lang)["title"], "lang": lang,
            "start_url": f"/t/{token}", "scope": "/t/", "display": "standalone", "background_color": "#F3F6FB",
            "theme_color": "#0A5BD3", "icons": icons}  # fmt: skip
    return Response(body, media_type="application/manifest+json", headers=NO_STORE)


def _asset(name: str, media_type: str) -> Response[bytes]:
    """A file of the page's (service worker, script, icon), revalidated so an update reaches phones."""
    return Response((ASSETS / name).read_bytes(), media_type=media_type, headers={"Cache-Control": "no-cache"})


@get("/t/push-sw.js", include_in_schema=False)
async def service_worker() -> Response[bytes]:
    """The service worker (under `/t/`, the path a proxy exposes; scope `/t/`): shows pushes, focuses the page."""
    return _asset("push-sw.js", "text/javascript")


@get("/t/status-notify.js", include_in_schema=False)
async def notify_script() -> Response[bytes]:
    """The page's "notify me" button: permission, service worker, subscription, POST to the hub."""
    return _asset("status-notify.js", "text/javascript")


@get("/t/status-icon.svg", include_in_schema=False)
async def icon() -> Response[bytes]:
    """The page's icon, for the manifest and notifications."""
    return _asset("status-icon.svg", "image/svg+xml")


ROUTES = [push_key, push_subscribe, push_unsubscribe, manifest, service_worker, notify_script, icon]
