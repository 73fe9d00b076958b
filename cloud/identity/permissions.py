"""What each HQ role may do: the permission matrix, and the route guard every console/API route declares.

Every hub route (but health, the public status link and sign-in itself) carries `guards=[requires("<permission>")]`;
the caller's tenants/branches scope is then on `request.scope["user"]` (`HqPrincipal`) for the query layer to apply.
Issue 14 (identity) owns this module: the roles, scope by branch and the role-by-route test grow here; the other
areas only name the permission their route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from cloud.identity.roles import MATRIX, PERMISSIONS, ROLES
from cloud.web.console_auth import HqPrincipal, console_guard

__all__ = ["MATRIX", "PERMISSIONS", "ROLES", "HqPrincipal", "allowed", "requires"]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def allowed(principal: HqPrincipal, permission: str) -> bool:
    """Whether the principal's role (and its API token's scopes) grant `permission`."""
    return principal.can(permission)


def requires(permission: str) -> Guard:
    """A guard: the caller is signed in (401 otherwise) and its role grants `permission` (403 otherwise)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        await console_guard(connection, handler)
        if not allowed(connection.scope["user"], permission):
            raise PermissionDeniedException(f"this needs the {permission} permission")

    guard.permission = permission  # type: ignore[attr-defined]  # read by the role-by-route test
    return guard
