"""Rate limits at the hub (E-PLAT-02): per credential ("token") and per tenant, after the caller is known.

An app-level `before_request` hook: Litestar runs it after the route's guards (`requires(...)` put the caller in
`scope["user"]`) and before the handler, so a refused call costs no query. The token key is a digest of the
credential the caller sent (Authorization header, else the session cookie), never the credential itself; a caller
scoped to tenants also spends from each tenant's budget (a platform admin, tenants None, spends only its own).
Public routes (health, status links, sign-in) have no caller here and are not limited by this hook.

A refusal is `429` problem+json (RFC 9457) with `Retry-After`. Limits: QMS_HUB_RATE_PER_TOKEN (default 600/minute)
and QMS_HUB_RATE_PER_TENANT (default 3000/minute), `N/second|minute|hour` or `0` (off). Buckets live in the process:
with several hub replicas behind a balancer each replica enforces its own budget.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.plugins.problem_details import ProblemDetailsException

from sync.rate_limit import Limit, RateLimiter

TOKEN_ENV, TENANT_ENV = "QMS_HUB_RATE_PER_TOKEN", "QMS_HUB_RATE_PER_TENANT"


def too_many(wait: int, what: str) -> ProblemDetailsException:
    """The 429 problem with `Retry-After`."""
    return ProblemDetailsException(
        status_code=429,
        title="too many requests",
        type_="urn:qms:problem:too_many_requests",
        detail=f"too many requests for this {what}; try again in {wait} s",
        headers={"Retry-After": str(wait)},
        extra={"code": "too_many_requests", "retry_after": wait},
    )


@dataclass
class HubRateLimits:
    """A limiter per credential and one per tenant."""

    per_token: RateLimiter
    per_tenant: RateLimiter

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> HubRateLimits:
        """The limits from QMS_HUB_RATE_* (a malformed value fails at start-up, naming the variable)."""
        env = os.environ if env is None else env
        limits = []
        for name, default in ((TOKEN_ENV, "600/minute"), (TENANT_ENV, "3000/minute")):
            try:
                limits.append(Limit.parse(env.get(name, default)))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(RateLimiter(limits[0], clock), RateLimiter(limits[1], clock))

    async def before_request(self, request: Request[Any, Any, Any]) -> None:
        """Spend one request of the caller's credential and of each of its tenants; 429 when one is spent."""
        user = request.scope.get("user")
        if user is None:
            return
        # The open console (no account yet) has a caller without a name: all of it shares one budget.
        credential = request.headers.get("authorization") or request.headers.get("cookie") or user.username or "open"
        digest = hashlib.sha256(credential.encode()).hexdigest()[:32]
        if wait := self.per_token.take(f"token:{digest}"):
            raise too_many(wait, "credential")
        for tenant in sorted(user.tenants or ()):
            if wait := self.per_tenant.take(f"tenant:{tenant}"):
                raise too_many(wait, "tenant")
