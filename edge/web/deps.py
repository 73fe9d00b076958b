"""Request-scoped dependencies: the app's services and the authenticated principal, with role checks."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from litestar import Request

from edge.audit import AuditEntry
from edge.auth import LoginThrottle, Principal, TokenIssuer
from edge.devices.runtime import DeviceRuntime
from edge.service import QueueService
from edge.web.problems import ApiError
from edge.web.stream import Broadcaster


class TrustedProxies:
    """Reverse proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges (`QMS_TRUSTED_PROXIES`)."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        # A bad entry is a configuration mistake worth failing on at start-up (ValueError).
        self.networks = tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())

    @classmethod
    def from_env(cls) -> TrustedProxies:
        """Comma-separated `QMS_TRUSTED_PROXIES` (default: none, so forwarding headers are ignored)."""
        return cls(os.environ.get("QMS_TRUSTED_PROXIES", "").split(","))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address).strip())
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


@dataclass
class Appliance:
    """What the web layer needs, built once by the app factory."""

    service: QueueService
    issuer: TokenIssuer
    throttle: LoginThrottle
    broadcaster: Broadcaster | None = None
    devices: DeviceRuntime | None = None
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The caller's address for throttling and the audit trail.

    `X-Forwarded-For` is believed only when the peer is a configured proxy (`QMS_TRUSTED_PROXIES`), and then only
    up to the first hop that is not itself a trusted proxy: anyone else could write any address into it.
    """
    peer = request.client.host if request.client else None
    proxies: TrustedProxies = request.app.state["appliance"].trusted_proxies
    if peer is None or not proxies or peer not in proxies:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: fall back to the proxy itself
    return hops[0] if hops else peer


def appliance(request: Request[Any, Any, Any]) -> Appliance:
    """The appliance wiring of this app."""
    app: Appliance = request.app.state["appliance"]
    return app


def audit_entry(
    request: Request[Any, Any, Any], actor: str, role: str | None, action: str, target: str | None = None, **detail: Any
) -> AuditEntry:
    """An audit row for this request: who, from which address (proxy-aware) and user agent; empty details dropped."""
    clean = {k: v for k, v in detail.items() if v not in (None, "")}
    return AuditEntry(
        actor=actor,
        role=role,
        action=action,
        target=target,
        detail=clean,
        ip=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )


async def provide_appliance(request: Request[Any, Any, Any]) -> Appliance:
    """Dependency: the appliance."""
    return appliance(request)


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the verified caller (Bearer token); 401 without a valid one, 403 for another branch."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    app = appliance(request)
    try:
        principal = app.issuer.verify(token.strip())
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the token has expired", headers={"WWW-Authenticate": "Bearer"}) from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "the token is not valid", headers={"WWW-Authenticate": "Bearer"}) from None
    branch = app.service.view.state.branch_id
    if principal.branch_id != branch:
        raise ApiError(403, "wrong_branch", f"the token is for branch {principal.branch_id!r}, not {branch!r}")
    if app.devices is not None:
        # Tokens are signed and expire, and the accounts and the device registry (cached between writes) decide on
        # every request: a revoked device, a disabled user or a changed password retires a token at once.
        refusal = app.devices.access.token_refusal(principal)
        if refusal is not None:
            raise ApiError(401, refusal, f"the token of {principal.username!r} is no longer valid: {refusal}")
    return principal


def require_role(principal: Principal, *roles: str) -> None:
    """403 unless the principal has one of the roles."""
    if principal.role not in roles:
        raise ApiError(403, "forbidden", f"role {principal.role!r} may not do this; needs {' or '.join(roles)}")


def require_counter(principal: Principal, counter_id: str | None) -> None:
    """Agents and devices must name a counter assigned to them."""
    if principal.privileged:
        return
    if counter_id is None:
        raise ApiError(422, "counter_required", "counter_id is required for this action")
    if not principal.may_use_counter(counter_id):
        raise ApiError(403, "counter_not_assigned", f"counter {counter_id!r} is not assigned to {principal.username}")
