"""The cloud hub's web app: the console page, its JSON twin, health, the public ticket status page (`/t/<token>`);
the event consumers run in its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.template.config import TemplateConfig
from sqlalchemy.engine import Engine

import cloud.admin.web
import cloud.analytics.web
import cloud.appointments.web
import cloud.identity.web
import cloud.notify.web
import cloud.ops.web
import cloud.releases.web
import cloud.web.console
import cloud.web.times
from cloud.consumer import FETCH_TIMEOUT_SECONDS, EventConsumer
from cloud.hq_users import has_accounts
from cloud.liveness import LivenessListener
from cloud.ops.rate_limits import HubRateLimits
from cloud.store import create_store_engine, store_problem
from cloud.ticket_status import status_of, words
from cloud.web.console_auth import ConsoleAuth
from cloud.web.request_state import store_engine as _engine

log = logging.getLogger("qms.cloud.web")
TEMPLATES = Path(__file__).with_name("templates")  # one folder per area beside the hub's own pages
# Each area's routes, and its background work (`lifespan(app)`, when the module has one) running with the app.
AREAS = (cloud.notify.web, cloud.analytics.web, cloud.identity.web, cloud.admin.web, cloud.ops.web, cloud.releases.web,
         cloud.appointments.web, cloud.web.console)  # fmt: skip


@dataclass(frozen=True)
class CloudSettings:
    """Where the hub stores data, which NATS it consumes, how many consumers it runs, where branch seeds are."""

    db_url: str
    nats_servers: tuple[str, ...] = ()
    workers: int = 1
    replicas: int = 1
    # HTTP Basic (user `hq`) on the console and its API while `hq_users` has no account; both absent = open
    console_password: str = ""
    nats_options: dict[str, Any] = field(default_factory=dict)
    keys_dir: Path = Path("nats-keys")  # branch NKey seeds (`qms-cloud branch add`): the status links' keys
    fetch_timeout: float = FETCH_TIMEOUT_SECONDS  # one idle pull's wait (QMS_CLOUD_FETCH_TIMEOUT)
    # Per credential and per tenant (QMS_HUB_RATE_PER_TOKEN, QMS_HUB_RATE_PER_TENANT): 429 problem+json.
    rate_limits: HubRateLimits = field(default_factory=HubRateLimits.from_env)
    # The hub's own public address (QMS_PUBLIC_URL, `https://hq.example`): absolute links in booking messages of a
    # tenant whose notification policy names none
    public_url: str = ""


STATUS_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@get("/t/{token:str}", sync_to_thread=True, include_in_schema=False)
def ticket_status(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    """A ticket's public status page (no login: the signed link is the secret); anything invalid is a plain 404."""
    page = status_of(_engine(request), request.app.state["keys_dir"], token)
    if page is None:
        return Template(template_name="status.html", context={"missing": True, "lang": "id", "words": words("id")},
                        status_code=404, headers=STATUS_HEADERS)  # fmt: skip
    return Template(template_name="status.html", context={"missing": False, **page}, headers=STATUS_HEADERS)


@get("/api/v1/health", sync_to_thread=True)
def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """`ok` (200) or `degraded` (503, so a load balancer takes the replica out) with the reasons: the store is
    unreachable, NATS is disconnected, the consumer is failing; plus the consumers' counters."""
    consumer: EventConsumer | None = request.app.state.get("consumer")
    reasons = [f"store unreachable: {problem}"] if (problem := store_problem(_engine(request))) else []
    reasons += consumer.problems() if consumer else []
    stats = consumer.stats if consumer else None
    body = {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "consuming": consumer is not None,
        "nats_connected": stats.nats_connected if stats else None,
        "applied": stats.applied if stats else 0,
        "duplicates": stats.duplicates if stats else 0,
        "failures": stats.failures if stats else 0,
        "reconnects": max(0, stats.connects - 1) + stats.disconnects if stats else 0,
        "last_error": stats.last_error if stats else None,
    }
    return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE if reasons else HTTP_200_OK,
                    headers={"Cache-Control": "no-store"})  # fmt: skip


def _warn_about_console_access(engine: Engine, console_password: str) -> None:
    """Say at start when the console is open to anyone who reaches it, or when the shared password is ignored."""
    if has_accounts(engine):
        if console_password:
            log.warning("console: --console-password is ignored: HQ accounts exist (qms-cloud users list)")
    elif not console_password:
        log.warning("console: OPEN to anyone who reaches it (no HQ account, no --console-password): bind to"
                    " localhost only, or add an account with `qms-cloud users add`")  # fmt: skip


def create_app(settings: CloudSettings) -> Litestar:
    """Build the hub's app; with NATS servers configured, the durable consumers start and stop with it."""
    engine = create_store_engine(settings.db_url)
    _warn_about_console_access(engine, settings.console_password)
    state: dict[str, Any] = {"engine": engine, "consumer": None, "keys_dir": settings.keys_dir,
                             "console_auth": ConsoleAuth(engine, settings.console_password),
                             "nats_servers": settings.nats_servers, "nats_options": settings.nats_options,
                             "public_url": settings.public_url.rstrip("/")}  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        consumer = None
        if settings.nats_servers:
            consumer = EventConsumer(
                engine,
                list(settings.nats_servers),
                workers=settings.workers,
                connect_options=settings.nats_options,
                replicas=settings.replicas,
                fetch_timeout=settings.fetch_timeout,
            )
            await consumer.start()
            app.state["consumer"] = consumer
            liveness = LivenessListener(engine, list(settings.nats_servers), settings.nats_options)
            await liveness.start()  # branches' heartbeats (qms.hb.>): online / offline since … in the console
        async with AsyncExitStack() as areas:
            for area in AREAS:  # each area's background work (dispatcher, schedules, …) runs with the app
                if (area_lifespan := getattr(area, "lifespan", None)) is not None:
                    await areas.enter_async_context(area_lifespan(app))
            try:
                yield
            finally:
                await areas.aclose()
                if consumer is not None:
                    await liveness.stop()
                    await consumer.stop()
                await asyncio.to_thread(engine.dispose)

    app = Litestar(
        route_handlers=[health, ticket_status, *(r for area in AREAS for r in area.ROUTES)],
        state=state,  # type: ignore[arg-type]
        lifespan=[lifespan],
        template_config=TemplateConfig(
            directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=cloud.web.times.install
        ),
        logging_config=None,
        before_request=settings.rate_limits.before_request,  # runs after the route's guards: the caller is known
        plugins=[ProblemDetailsPlugin()],  # refusals raised as ProblemDetailsException are RFC 9457 problem+json
        # every other refusal too (guards, unknown addresses, 405), and an unhandled exception: logged once, 500
        exception_handlers=cloud.ops.web.EXCEPTION_HANDLERS,
    )
    cloud.ops.web.install(app, engine)  # /metrics registry, X-Request-ID, HTTP latency by route template
    return app
