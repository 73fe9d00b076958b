"""Times on console pages: stored in UTC, shown in the zone of what they belong to — a branch's own zone, else its
tenant's (the zone most of the tenant's branches keep), else Asia/Jakarta — to the minute and named ("13:33 WIB").

Templates use the `hub_time` filter: `{{ at|hub_time }}`, `{{ at|hub_time(tenant=t) }}`,
`{{ at|hub_time(tenant=t, branch=b) }}` or `{{ at|hub_time("Asia/Jayapura") }}`. The zones come from the branch
profiles, read at most every 30 seconds (a profile's zone rarely changes)."""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from jinja2.runtime import Context
from litestar.plugins.jinja import JinjaTemplateEngine
from sqlalchemy.engine import Engine

from cloud.admin.audit import DEFAULT_ZONE
from cloud.admin.audit import zones as branch_zones

REFRESH_SECONDS = 30.0


def hub_time(value: str | datetime | None, zone: str = DEFAULT_ZONE) -> str:
    """A stored UTC time in `zone`, to the minute, with the zone's abbreviation ("2026-12-05 13:33 WIB"); "—" for
    none."""
    if not value:
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


class Zones:
    """Each branch's zone and each tenant's usual zone, from the branch profiles."""

    def __init__(self, branches: dict[tuple[str, str], str]) -> None:
        self.branches = branches
        counts: dict[str, Counter[str]] = {}
        for (tenant, _), zone in branches.items():
            counts.setdefault(tenant, Counter())[zone] += 1
        # the commonest zone; a tie goes to the first in name order, so the answer does not depend on row order
        self.tenants = {t: min(c, key=lambda z: (-c[z], z)) for t, c in counts.items()}

    def of(self, tenant: str | None, branch: str | None = None) -> str:
        """The zone a time of this tenant (and branch) is shown in."""
        if tenant and branch and (tenant, branch) in self.branches:
            return self.branches[(tenant, branch)]
        return self.tenants.get(tenant or "", DEFAULT_ZONE)


_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Engine, tuple[float, Zones]] = weakref.WeakKeyDictionary()  # per store


def zones(engine: Engine) -> Zones:
    """The zones, read again when older than REFRESH_SECONDS."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(engine)
        if cached is not None and now - cached[0] < REFRESH_SECONDS:
            return cached[1]
    with engine.connect() as conn:
        found = Zones({key: zone for key, zone in branch_zones(conn).items() if zone})
    with _lock:
        _cache[engine] = (now, found)
    return found


@pass_context
def _filter(
    ctx: Context, value: str | datetime | None, zone: str | None = None, tenant: str | None = None,
    branch: str | None = None,
) -> str:  # fmt: skip
    if zone is None and tenant:
        request: Any = ctx.get("request")
        engine = request.app.state.get("engine") if request is not None else None
        zone = zones(engine).of(tenant, branch) if engine is not None else None
    return hub_time(value, zone or DEFAULT_ZONE)


def install(engine: JinjaTemplateEngine) -> None:
    """Register the `hub_time` filter (the app's template engine callback)."""
    engine.engine.filters["hub_time"] = _filter
