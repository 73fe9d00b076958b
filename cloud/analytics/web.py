"""The analytics area's routes; `cloud.web.app` mounts `ROUTES` and enters `lifespan(app)` when defined."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
