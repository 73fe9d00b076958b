"""A per-address rate limit on the hub's SSO starts (E-PLAT-02): `/sso/start` (a console sign-in), `/sso/staff/go`
(a staff member's browser on its way to the IdP) and `/sso/staff/begin` (an appliance asking for a staff sign-in).

Each start writes a pending flow (state, nonce, PKCE verifier) or a ticket to the store before anyone is signed in,
so the caller is its client address, each route its own budget. The limiter and the refusal are the hub's
(`sync.rate_limit`; 429 problem+json with `Retry-After`, cloud/ops/rate_limits.py). Limits: QMS_HUB_RATE_SSO_START
(browsers, default 60/minute per address) and QMS_HUB_RATE_SSO_BEGIN (appliances, default 600/minute per address:
many branches may leave through one NAT address); `0` = off. Per replica, in memory.

Spent at the top of each handler: a route's own `before_request` would replace the app-wide per-credential hook.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Request

from cloud.ops.rate_limits import too_many
from cloud.web.request_state import client_ip
from sync.rate_limit import Limit, RateLimiter

# route template -> (its environment variable, its default)
ROUTES = {
    "/sso/start": ("QMS_HUB_RATE_SSO_START", "60/minute"),
    "/sso/staff/go": ("QMS_HUB_RATE_SSO_START", "60/minute"),
    "/sso/staff/begin": ("QMS_HUB_RATE_SSO_BEGIN", "600/minute"),
}


def _limiter(request: Request[Any, Any, Any], route: str) -> RateLimiter:
    limiters: dict[str, RateLimiter] = request.app.state.setdefault("sso_limiters", {})
    if route not in limiters:  # read once per app and route, like the hub's other limits
        name, default = ROUTES[route]
        try:
            limiters[route] = RateLimiter(Limit.parse(os.environ.get(name, default)))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return limiters[route]


def per_address(request: Request[Any, Any, Any]) -> None:
    """Spend one start of this address's budget; 429 with Retry-After when spent."""
    route = request.scope.get("path_template", "")
    if route in ROUTES and (wait := _limiter(request, route).take(client_ip(request) or "unknown")):
        raise too_many(wait, "address")
