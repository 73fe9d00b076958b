"""What each HQ role may do: the permission matrix, and the route guard every console/API route declares.

Every hub route (but health, the public status link and sign-in itself) carries `guards=[requires("<permission>")]`;
the caller's tenants/branches scope is then on `request.scope["user"]` (`HqPrincipal`) for the query layer to apply.
Issue 14 (identity) owns this module: the roles, scope by branch and the role-by-route test grow here; the other
areas only name the permission their route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from cloud.identity.roles import MATRIX, PERMISSIONS, ROLES
from cloud.web.console_auth import HqPrincipal, console_guard

__all__ = ["MATRIX", "PERMISSIONS", "ROLES", "HqPrincipal", "allowed", "require_branch", "require_tenant", "requires",
           "scope_filter"]  # fmt: skip

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


def scope_filter(table: sa.TableClause, principal: HqPrincipal) -> sa.ColumnElement[bool]:
    """The WHERE clause limiting `table`'s rows to the principal's scope: its tenants, and for a branch manager its
    (tenant, branch) pairs when the table has a `branch_id`; every area's queries add it (`.where(scope_filter(…))`)."""
    clauses: list[sa.ColumnElement[bool]] = []
    if principal.tenants is not None:
        clauses.append(table.c.tenant_id.in_(sorted(principal.tenants)))
    if principal.branches is not None and "branch_id" in table.c:
        pairs = sorted(principal.branches)
        clauses.append(sa.tuple_(table.c.tenant_id, table.c.branch_id).in_(pairs))
    return sa.and_(sa.true(), *clauses)


def require_tenant(principal: HqPrincipal, tenant: str) -> None:
    """404 (never 403: an id outside one's scope must not even be confirmed to exist) unless `tenant` is in scope."""
    if not principal.sees_tenant(tenant):
        raise NotFoundException(f"no tenant {tenant!r}")


def require_branch(principal: HqPrincipal, tenant: str, branch_id: str) -> None:
    """404 unless the branch is in the principal's scope (same reason as require_tenant)."""
    if not principal.sees_branch(tenant, branch_id):
        raise NotFoundException(f"no branch {tenant}/{branch_id}")
