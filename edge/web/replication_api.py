"""`GET /api/v1/replication`: the cloud link's state and replication lag (events and seconds)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency, Provide

from edge.auth import Principal
from edge.replication import Replication
from edge.web.deps import provide_principal, require_role


@get(
    "/replication",
    summary="Cloud replication state and lag (supervisor, admin)",
    sync_to_thread=False,
    dependencies={"principal": Provide(provide_principal)},
)
def replication_status(request: Request[Any, Any, Any], principal: NamedDependency[Principal]) -> dict[str, Any]:
    """Supervisors and admins only: the link's last error can name hosts and credentials' subjects. Field
    technicians read the same figures from the database with `qms-edge status`."""
    require_role(principal, "admin", "supervisor")
    replication: Replication = request.app.state["replication"]
    return replication.status()
