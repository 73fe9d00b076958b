"""The ops area's routes (`/metrics`) and its wiring into the hub's app; `cloud.web.app` mounts `ROUTES` and calls
`install(app, engine)` once the app exists (correlation ids, HTTP metrics, the scrape registry)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.engine import Engine

from cloud.ops.metrics import hub_registry, scrape_allowed
from sync.http_metrics import HttpMetrics, instrument


@get("/metrics", include_in_schema=False, sync_to_thread=True)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format; a bearer token (QMS_METRICS_TOKEN) or, without one, local callers only."""
    if not scrape_allowed(request.headers.get("authorization"), request.client.host if request.client else None):
        raise NotAuthorizedException("metrics need `Authorization: Bearer <QMS_METRICS_TOKEN>` or a local caller")
    registry: CollectorRegistry = request.app.state["ops_registry"]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


ROUTES: list[Any] = [metrics]


def install(app: Litestar, engine: Engine) -> None:
    """The scrape registry (hub, areas, HTTP) in `app.state`, and the outermost wrapper: X-Request-ID in and out,
    latency by route template."""
    registry = hub_registry(engine, lambda: app.state.get("consumer"))
    app.state["ops_registry"] = registry
    instrument(app, HttpMetrics(registry))
