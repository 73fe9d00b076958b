"""`GET /api/v1/replication`: the cloud link's state and replication lag (events and seconds)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from edge.replication import Replication


@get("/replication", summary="Cloud replication state and lag", sync_to_thread=False)
def replication_status(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """No auth, like `/health`: counts and times only, for monitoring and field technicians."""
    replication: Replication = request.app.state["replication"]
    return replication.status()
