"""What a hub route reads off its request, in one place: the store's engine, the signed-in principal, its name for
the audit log, and the client's address."""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy.engine import Engine

from cloud.web.console_auth import HqPrincipal


def store_engine(request: Request[Any, Any, Any]) -> Engine:
    """The hub store's engine (app state `engine`)."""
    engine: Engine = request.app.state["engine"]
    return engine


def principal(request: Request[Any, Any, Any]) -> HqPrincipal:
    """Who is calling (set by the console's authentication middleware)."""
    user: HqPrincipal = request.scope["user"]
    return user


def actor(request: Request[Any, Any, Any]) -> str:
    """The caller's name as the audit log records it."""
    return principal(request).username or "anonymous"


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client's address, for the audit log."""
    return request.client.host if request.client else None
