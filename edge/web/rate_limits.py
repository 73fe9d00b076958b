"""Per-address rate limits on the appliance's public doors (E-PLAT-02): kiosk ticket issue, status links, sign-in,
staff SSO start.

One app-level `before_request` hook: it runs after routing, so it knows the route template, and before the handler,
so a refused request costs nothing (no argon2 hash, no writer transaction). The caller is its client address as
`client_address` decides (X-Forwarded-For only from QMS_TRUSTED_PROXIES). A refusal is `429 too_many_requests`
problem+json with `Retry-After`. Limits: QMS_RATE_KIOSK_TICKETS, QMS_RATE_STATUS_LINKS, QMS_RATE_LOGIN,
QMS_RATE_SSO_START (`N/minute`, `N/second`, `N/hour`, `0` = off). The failed-login back-off (`LoginThrottle`) stays
on top of these.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from edge.web.deps import client_address
from edge.web.problems import ApiError
from sync.rate_limit import Limit, RateLimiter

# (method, route template) -> (door, its environment variable, its default)
DOORS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("POST", "/kiosk/api/tickets"): ("kiosk_tickets", "QMS_RATE_KIOSK_TICKETS", "120/minute"),
    ("GET", "/t/{token}"): ("status_links", "QMS_RATE_STATUS_LINKS", "300/minute"),
    ("POST", "/api/v1/auth/token"): ("login", "QMS_RATE_LOGIN", "60/minute"),
    # each start asks the hub for a sign-in (server to server) and keeps a pending one in memory
    ("GET", "/staff/sso/start"): ("sso_start", "QMS_RATE_SSO_START", "30/minute"),
}


@dataclass
class PublicRateLimits:
    """One limiter per door, keyed by client address."""

    limits: Mapping[str, Limit]
    clock: Callable[[], float] = time.monotonic
    limiters: dict[str, RateLimiter] = field(init=False)

    def __post_init__(self) -> None:
        self.limiters = {door: RateLimiter(limit, self.clock) for door, limit in self.limits.items()}

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> PublicRateLimits:
        """The limits from QMS_RATE_* (a malformed value fails at start-up, naming the variable)."""
        env = os.environ if env is None else env
        limits = {}
        for door, name, default in DOORS.values():
            try:
                limits[door] = Limit.parse(env.get(name, default))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(limits, clock)

    async def before_request(self, request: Request[Any, Any, Any]) -> None:
        """Refuse with 429 when this address spent its budget at this door; other routes pass untouched."""
        door = DOORS.get((request.method, request.scope.get("path_template", "")))
        limiter = self.limiters.get(door[0]) if door else None
        if limiter is None:
            return
        wait = limiter.take(client_address(request) or "unknown")
        if wait:
            raise ApiError(
                429,
                "too_many_requests",
                f"too many requests from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )
