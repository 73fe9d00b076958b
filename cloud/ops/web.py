"""The ops area's routes (`/metrics`, shipped appliance backups) and its wiring into the hub's app; `cloud.web.app`
mounts `ROUTES` and calls `install(app, engine)` once the app exists (correlation ids, HTTP metrics, scrapes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post, put
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.exceptions.responses import create_exception_response
from litestar.params import JSONBody
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.ops import backup_store, backups, ca, pii
from cloud.ops.metrics import hub_registry, scrape_allowed
from sync.http_metrics import HttpMetrics, instrument

log = logging.getLogger(__name__)


@get("/metrics", include_in_schema=False, sync_to_thread=True)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format; a bearer token (QMS_METRICS_TOKEN) or, without one, local callers only."""
    if not scrape_allowed(request.headers.get("authorization"), request.client.host if request.client else None):
        raise NotAuthorizedException("metrics need `Authorization: Bearer <QMS_METRICS_TOKEN>` or a local caller")
    registry: CollectorRegistry = request.app.state["ops_registry"]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


@put("/api/v1/backups/{tenant:str}/{branch_id:str}/{name:str}", request_max_body_size=None, status_code=201)
async def upload_backup(request: Request[Any, Any, Any], tenant: str, branch_id: str, name: str) -> Response[Any]:
    """An appliance ships one sealed backup (signed with its branch NKey: cloud/ops/backup_store.py); 201 when stored,
    200 when the same file was already there."""
    try:
        store = backup_store.require_store()
        engine: Engine = request.app.state["engine"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        size, digest = await asyncio.to_thread(backup_store.check_signature, engine, tenant, branch_id, name, headers)
        stored, created = await backup_store.receive(store, tenant, branch_id, name, size, digest, request.stream())
    except backup_store.UploadRefused as exc:
        problem = {"type": "urn:qms:problem:backup_refused", "title": "backup refused", "status": exc.status,
                   "detail": str(exc), "code": "backup_refused"}  # fmt: skip
        return Response(problem, status_code=exc.status, media_type="application/problem+json")
    log.info("backup %s of %s/%s stored (%d bytes)", stored.name, tenant, branch_id, stored.size)
    body = {"name": stored.name, "size": stored.size, "sha256": stored.sha256, "received_at": stored.received_at}
    return Response(body, status_code=201 if created else 200)


class RenewRequest(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/v1/tls/renew` body: the JSON request (tenant, branch_id, csr, addresses, timestamp) and its NKey
    signature (base64)."""

    request: str
    signature: str


@post("/api/v1/tls/renew", status_code=200)
async def renew_certificate(request: Request[Any, Any, Any], data: JSONBody[RenewRequest]) -> Response[Any]:
    """An enrolled appliance's certificate renewal (cloud/ops/ca.py): {tls_cert, tls_ca}, or a problem."""
    engine: Engine = request.app.state["engine"]
    try:
        issued = await asyncio.to_thread(ca.renew_certificate, engine, data.request[:16000], data.signature[:200])
    except ca.RenewalRefused as exc:
        problem = {"type": "urn:qms:problem:renewal_refused", "title": "renewal refused", "status": exc.status,
                   "detail": str(exc), "code": "renewal_refused"}  # fmt: skip
        return Response(problem, status_code=exc.status, media_type="application/problem+json")
    return Response(issued, status_code=200, headers={"Cache-Control": "no-store"})


ROUTES: list[Any] = [metrics, upload_backup, renew_certificate]
SWEEP_SECONDS = 3600.0


def _forget_parked_keys(engine: Engine) -> int:
    with engine.begin() as conn:
        return pii.forget_parked_keys(conn, datetime.now(UTC))


async def _sweep_expired_backups(interval: float, engine: Engine | None) -> None:
    """Delete expired shipped backups (an appliance that stopped shipping leaves none behind) and expired hub dumps
    (QMS_HUB_BACKUP_DIR, when `qms-cloud db backup` stopped running), and erase contact keys parked past their
    retention, every `interval`."""
    while True:
        if engine is not None:
            try:
                if cleared := await asyncio.to_thread(_forget_parked_keys, engine):
                    log.info("erased %d parked contact key(s) past their retention", cleared)
            except SQLAlchemyError as exc:
                log.warning("parked contact keys not erased: %s", exc)
        store = backup_store.store_dir()
        dumps = os.environ.get(backups.BACKUP_DIR_ENV, "")
        try:
            if store is not None and (gone := await asyncio.to_thread(backup_store.sweep, store)):
                log.info("deleted %d expired shipped backup(s)", len(gone))
            if dumps and (gone := await asyncio.to_thread(backups.prune, Path(dumps))):
                log.info("deleted %d expired hub dump(s)", len(gone))
        except OSError as exc:
            log.warning("expired backups not deleted: %s", exc)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """The ops area's background work while the app runs: the hourly sweep of expired backups and parked keys."""
    engine = app.state.get("engine")
    task = asyncio.create_task(_sweep_expired_backups(SWEEP_SECONDS, engine), name="qms-backup-sweep")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def install(app: Litestar, engine: Engine) -> None:
    """The scrape registry (hub, areas, HTTP) in `app.state`, and the outermost wrapper: X-Request-ID in and out,
    latency by route template."""
    registry = hub_registry(engine, lambda: app.state.get("consumer"))
    app.state["ops_registry"] = registry
    app.asgi_handler = _refuse_nul(app.asgi_handler)
    instrument(app, HttpMetrics(registry))


PROBLEM = "application/problem+json"
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests",
         500: "internal_error", 503: "unavailable"}  # fmt: skip
UNMATCHED = "unmatched"


def _problem(status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response[Any]:
    """An RFC 9457 answer: type, title (the status phrase), status, detail and a stable `code`."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    code = extra.pop("code", None) or CODES.get(status, "error")
    body = {"type": f"urn:qms:problem:{code}", "title": title, "status": status, "detail": detail, "code": code,
            **extra}  # fmt: skip
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    return Response(body, status_code=status, media_type=PROBLEM, headers=kept or None)


def http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """The app-level handler of every HTTP refusal no area answers itself (guards' 401/403, an unknown address's 404,
    405, a body that does not decode): problem+json. A redirect raised by a guard (303 to /signin) stays one."""
    if exc.status_code < HTTPStatus.BAD_REQUEST:
        return create_exception_response(request, exc)
    if exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR and exc.status_code != HTTPStatus.SERVICE_UNAVAILABLE:
        return server_error(request, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc.extra, Mapping):
        extra = {k: v for k, v in exc.extra.items() if k not in {"type", "title", "status", "detail", "code"}}
    elif exc.extra:
        extra = {"errors": exc.extra}  # a body that did not decode: which key, and why
    return _problem(exc.status_code, str(exc.detail), exc.headers, **extra)


def server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An unhandled exception: one error line (JSON through the hub's formatter, with the correlation id, method,
    route template and traceback; never the concrete path or query) and a 500 problem+json without internals."""
    route = request.scope.get("path_template") or UNMATCHED
    log.error("unhandled %s in %s %s", type(exc).__name__, request.method, route, exc_info=exc)
    return _problem(500, "the hub failed to answer this request; its log has the details under this request's"
                         " X-Request-ID")  # fmt: skip


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: http_problem, Exception: server_error}


NUL_PROBLEM = msgspec.json.encode({"status": 400, "title": "Bad request", "code": "bad_request",
                                   "detail": "a NUL character (%00) in the address"})  # fmt: skip


def _refuse_nul(handler: Any) -> Any:
    """400 problem+json for a path or query string with a NUL: no id, name or filter holds one, and PostgreSQL
    refuses it in a query (every route that passed it on answered 500)."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/problem+json"),
                                    (b"content-length", str(len(NUL_PROBLEM)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": NUL_PROBLEM})
            return
        await handler(scope, receive, send)

    return guarded
