"""The app factory: wires the single writer, auth, the event stream and the API into one Litestar app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from litestar import Litestar, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsPlugin
from prometheus_client import CONTENT_TYPE_LATEST

from edge.analytics.api import ROUTES as REPORT_ROUTES
from edge.analytics.follower import FactFollower
from edge.auth import LoginThrottle, TokenIssuer, load_secret
from edge.devices.audio.announcer import AnnouncerCollector
from edge.devices.audio.outputs import CallbackOutput
from edge.devices.runtime import DeviceRuntime
from edge.engine.errors import DomainError
from edge.metrics import registry_for, render
from edge.replication import CloudLink, Replication
from edge.service import QueueService
from edge.web.api import APP_DEPENDENCIES, ROUTE_HANDLERS
from edge.web.board.pages import board_router
from edge.web.board.runtime import BoardRuntime
from edge.web.deps import Appliance, TrustedProxies
from edge.web.kiosk import kiosk_router
from edge.web.kiosk.links import link_keys
from edge.web.kiosk.printing import PrinterCollector
from edge.web.problems import (
    StrictBodyRequest,
    StrictStructSchemaPlugin,
    document_problems,
    on_domain_error,
    on_http_error,
    on_unexpected,
)
from edge.web.rate_limits import PublicRateLimits
from edge.web.replication_api import replication_status
from edge.web.staff import presence as staff_presence
from edge.web.staff import staff_router, template_config
from edge.web.stream import Broadcaster
from sync.http_metrics import HttpMetrics, instrument

API_MAX_BODY_BYTES = 64 * 1024  # commands are small; the config route allows more
# Litestar appends "; charset=utf-8" to every text/* type: without it here the header would name it twice.
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
log = logging.getLogger("qms.app")


@dataclass(frozen=True)
class Settings:
    """Where the appliance keeps its data and what it serves."""

    data_dir: Path
    cors_origins: tuple[str, ...] = ()
    mdns: bool = False  # advertise `_qms._tcp.local.` (qms-edge serve: on unless QMS_MDNS=0)
    http_port: int = 8080  # the port the mDNS advertisement names
    cloud: CloudLink | None = None  # the cloud link (relay + config watch); None = standalone branch
    # Reverse proxies whose X-Forwarded-For is believed (QMS_TRUSTED_PROXIES); none by default.
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies.from_env)
    # Per-address limits on the public doors (QMS_RATE_KIOSK_TICKETS, QMS_RATE_STATUS_LINKS, QMS_RATE_LOGIN).
    rate_limits: PublicRateLimits = field(default_factory=PublicRateLimits.from_env)


def create_app(settings: Settings, service: QueueService | None = None) -> Litestar:
    """Build the appliance's web app; the writer starts and stops with the app."""
    service = service or QueueService(settings.data_dir)
    app_wiring = Appliance(
        service=service,
        issuer=TokenIssuer(load_secret(settings.data_dir)),
        throttle=LoginThrottle(),
        trusted_proxies=settings.trusted_proxies,
    )

    devices = DeviceRuntime(service, settings.data_dir, mdns=settings.mdns, http_port=settings.http_port)
    app_wiring.devices = devices

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncGenerator[None, None]:
        app_wiring.broadcaster = broadcaster = Broadcaster(asyncio.get_running_loop())
        service.subscribe_commits(broadcaster.on_commit)
        board.start(asyncio.get_running_loop())  # boards and announcements follow commits too
        fact_follower.start()  # the report facts follow the log (edge/analytics)
        service.start()
        devices.start()  # MQTT bridge (when configured) and mDNS
        if devices.bridge is not None:  # networked speakers hear the announcer's calls, paced like its other outputs
            board.add_output(CallbackOutput("mqtt", devices.bridge.announce))
        await replication.start()
        if replication.alerts_watch is not None:  # HQ's anomaly alerts re-render the supervisor's floor
            replication.alerts_watch.listeners.append(lambda _doc: broadcaster.notice("hq_alerts"))
        sweeper = await staff_presence.start_sweeper(service)  # counters nobody is signed in to close
        branch = service.view.state.branch_id or "(none yet: waiting for the hub's configuration)"
        log.info("appliance ready: branch %s at seq %s", branch, service.view.seq)
        try:
            yield
        finally:
            sweeper.cancel()
            await replication.stop()
            await asyncio.to_thread(devices.stop)
            await asyncio.to_thread(board.stop)
            await asyncio.to_thread(service.stop)

    replication = Replication(service, settings.cloud)
    fact_follower = FactFollower(service)
    board = BoardRuntime(service, settings.data_dir, app_wiring.issuer.secret)
    seed_file = settings.cloud.nkey_seed_file if settings.cloud else None
    kiosk, kiosk_app = kiosk_router(service, link_keys(load_secret(settings.data_dir), seed_file))
    # boards and kiosk printers in the heartbeat's device list (HQ's device fleet)
    replication.extra_devices = lambda: [*board.hub.fleet(), *kiosk_app.desk.fleet()]

    @get("/", include_in_schema=False, sync_to_thread=False)
    def api_index() -> dict[str, str]:
        """What `/api/v1` itself answers (the demo banner prints it): where the API's description and doors are."""
        return {
            "name": "QMS edge appliance API",
            "docs": "/schema",
            "openapi": "/schema/openapi.json",
            "health": "/api/v1/health",
            "sign_in": "/api/v1/auth/token",
            "events": "/api/v1/events",
        }

    api = Router(
        path="/api/v1",
        route_handlers=[api_index, *ROUTE_HANDLERS, replication_status, *REPORT_ROUTES],
        dependencies=APP_DEPENDENCIES,
    )
    registry = registry_for(service, lambda: len(app_wiring.broadcaster.subscribers) if app_wiring.broadcaster else 0,
                            settings.data_dir)  # fmt: skip
    registry.register(PrinterCollector(kiosk_app.desk))
    registry.register(AnnouncerCollector(board.announcer))

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False, sync_to_thread=False)
    def metrics() -> Response[bytes]:
        """Aggregate figures only (no tickets, no personal data), for the branch's monitoring on the LAN."""
        return Response(render(registry), media_type=METRICS_MEDIA_TYPE)

    app = Litestar(
        route_handlers=[api, metrics, staff_router(), kiosk, board_router()],
        template_config=template_config(),
        state={
            "appliance": app_wiring,
            "replication": replication,
            "kiosk": kiosk_app,
            "board": board,
            "facts": fact_follower,
        },  # type: ignore[arg-type]
        lifespan=[lifespan],
        before_request=settings.rate_limits.before_request,
        plugins=[ProblemDetailsPlugin(), StrictStructSchemaPlugin()],
        request_class=StrictBodyRequest,  # malformed JSON bodies are refused in one place, for every route
        exception_handlers={
            DomainError: on_domain_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        openapi_config=OpenAPIConfig(title="QMS edge appliance API", version="1.0.0", path="/schema"),
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        request_max_body_size=API_MAX_BODY_BYTES,
        logging_config=None,  # the process configures logging (qms-edge serve --log-level)
    )
    document_problems(app)  # the OpenAPI document lists the problem+json answers every route can give
    instrument(app, HttpMetrics(registry))  # X-Request-ID in and out, latency by route template
    return app
