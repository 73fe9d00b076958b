"""HTTP latency and error metrics by route template, shared by the appliance and the hub (issue 16, E-PLAT-01).

Labels are the method, the route *template* (`/api/v1/tickets/{ticket_id:str}`, never the concrete path, so a
scan of random URLs cannot grow the series) and the status class (`2xx`…`5xx`). Requests that match no route are
counted under the route `unmatched`. Error rate = `qms_http_requests_total{status="5xx"}` over all.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from sync.observability import CorrelationMiddleware

# Kiosk/staff clicks should answer well under 100 ms on a Pi; the tail buckets catch slow exports.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"


class HttpMetrics:
    """The two families of one app, registered on that app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "qms_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "qms_http_requests", "HTTP requests by route template and status class", ["method", "route", "status"],
            registry=registry,
        )  # fmt: skip

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        status_class = f"{status // 100}xx"
        self.latency.labels(method, route, status_class).observe(seconds)
        self.requests.labels(method, route, status_class).inc()

    def middleware(self, app: Any) -> Any:
        """A pure ASGI wrapper timing every HTTP request until its response started (SSE streams: time to open)."""

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            answered = False

            async def send_and_time(message: Any) -> None:
                nonlocal answered
                if message["type"] == "http.response.start":
                    answered = True
                    self.observe(scope["method"], scope.get("path_template") or UNMATCHED, int(message["status"]),
                                 time.perf_counter() - started)  # fmt: skip
                await send(message)

            try:
                await app(scope, receive, send_and_time)
            except BaseException:
                if not answered:  # an exception before any response is a server error
                    self.observe(scope["method"], scope.get("path_template") or UNMATCHED, 500,
                                 time.perf_counter() - started)  # fmt: skip
                raise

        return timed


def instrument(app: Any, metrics: HttpMetrics | None) -> None:
    """Wrap a Litestar app's outermost handler: correlation id first (so every line and answer carries it, 404s
    included), then the timing (with `metrics`)."""
    handler = app.asgi_handler if metrics is None else metrics.middleware(app.asgi_handler)
    app.asgi_handler = CorrelationMiddleware(handler)
