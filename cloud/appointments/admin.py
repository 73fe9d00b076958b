"""The staff side's rules (US-ADMIN-008): the bookable-service and check-in policy forms' bounds, which calendar scopes
exist and who may change them, and the bookings left on days closed after they were made.

A form is checked whole before anything is stored: each bad field gets a word key (`err_…`, cloud/appointments/words)
and nothing changes. Calendar scopes: `tenant` and `region:<code>` reach every branch of the tenant (or of a region),
so only a caller with the whole tenant in scope (tenant_admin, platform_admin: `branches` None) changes them; a branch
manager changes `branch:<id>` of its own branches, and any other branch answers 404 as everywhere in the hub."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.admin.tables import branch_profiles
from cloud.appointments import booking, calendar
from cloud.appointments.tables import appt_bookings, appt_settings
from cloud.store import probe_rows, tickets
from cloud.web.console_auth import HqPrincipal

REGION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SCOPE = re.compile(r"^(tenant|region:[A-Za-z0-9_-]{1,32}|branch:[A-Za-z0-9_-]{1,64})$")
SERVICE_NAME_MAX = 120
ENTRY_NAME_MAX = 200
# field -> (low, high, default shown on an empty form); `capacity` empty = derived from the others
SERVICE_BOUNDS = {"slot_minutes": (5, 240, 30), "capacity": (1, 500, None), "counters": (1, 100, 1),
                  "mean_service_minutes": (1, 240, 10), "quota_pct": (0, 100, 50), "priority": (0, 9, 0)}  # fmt: skip
POLICY_BOUNDS = {"before": (0, 240), "after": (0, 240)}
LATE = ("walk_in", "refuse")


def _number(text: str, low: int, high: int) -> int | None:
    """A whole number within [low, high], else None."""
    if not re.fullmatch(r"-?[0-9]{1,6}", text.strip()):
        return None
    value = int(text)
    return value if low <= value <= high else None


def service_values(
    form: Mapping[str, str], configured: Mapping[str, str] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The bookable service's values from the form, and the errors by field (`configured`: the services of the
    branch's configuration, id -> name; None while the hub knows no configuration of the branch)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    service_id = form.get("service_id", "").strip()
    if not service_id or configured is None or service_id not in configured:
        errors["service_id"] = "err_service_id"
    values["service_id"] = service_id
    name = form.get("name", "").strip()
    if not 1 <= len(name) <= SERVICE_NAME_MAX:
        errors["name"] = "err_service_name"
    values["name"] = name
    for field, (low, high, _default) in SERVICE_BOUNDS.items():
        text = form.get(field, "").strip()
        if field in {"capacity", "priority"} and not text:  # derived capacity; no priority
            values[field] = None if field == "capacity" else 0
            continue
        number = _number(text, low, high)
        if number is None:
            errors[field] = f"err_{field}"
        values[field] = number
    values["mean_service_minutes"] = float(values["mean_service_minutes"] or 0)
    values["active"] = form.get("active", "on") == "on"
    return values, errors


def policy_values(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The check-in policy's values from the form (before/after 0-240 minutes, late walk_in|refuse, region a token
    of up to 32 letters, digits, - or _, or empty), and the errors by field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for field, (low, high) in POLICY_BOUNDS.items():
        values[field] = _number(form.get(field, ""), low, high)
        if values[field] is None:
            errors[field] = "err_window"
    values["late"] = form.get("late", "")
    if values["late"] not in LATE:
        errors["late"] = "err_late"
    region = form.get("region", "").strip()
    if region and not REGION.match(region):
        errors["region"] = "err_region"
    values["region"] = region or None
    return values, errors


class ScopeRefused(Exception):
    """A calendar scope the caller may not use: `status` 400 (malformed or not the tenant's), 403 (needs the whole
    tenant) or 404 (a branch outside the caller's scope); `code` is the word key shown beside the field."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def tenant_wide(principal: HqPrincipal, tenant: str) -> bool:
    """Whether the caller has every branch of `tenant` in scope (not a branch manager)."""
    return principal.sees_tenant(tenant) and principal.branches is None


def may_change(principal: HqPrincipal, tenant: str, scope: str) -> bool:
    """Whether the caller may add or delete entries of `scope` (the page shows only those as editable)."""
    if scope.startswith("branch:"):
        return principal.sees_branch(tenant, scope.removeprefix("branch:"))
    return tenant_wide(principal, tenant)


def may_see(principal: HqPrincipal, tenant: str, scope: str) -> bool:
    """Whether the entry is shown: tenant and region entries to everyone of the tenant, a branch's to its viewers."""
    return not scope.startswith("branch:") or principal.sees_branch(tenant, scope.removeprefix("branch:"))


def check_scope(scope: str, principal: HqPrincipal, tenant: str, tenant_branches: Iterable[str]) -> None:
    """Raise ScopeRefused unless the caller may change entries of `scope` at `tenant` (whose branch ids are given)."""
    if not SCOPE.match(scope):
        raise ScopeRefused(400, "err_scope")
    if scope.startswith("branch:"):
        branch_id = scope.removeprefix("branch:")
        if not principal.sees_branch(tenant, branch_id):
            raise ScopeRefused(404, "err_scope")  # never confirm another branch exists
        if branch_id not in set(tenant_branches):
            raise ScopeRefused(400, "err_scope_branch")
    elif not tenant_wide(principal, tenant):
        raise ScopeRefused(403, "err_scope_wide")


def tenant_branches(conn: Connection, tenant: str) -> list[tuple[str, str]]:
    """The tenant's branches at HQ (id, name), by id."""
    rows = conn.execute(
        sa.select(branch_profiles.c.branch_id, branch_profiles.c.name)
        .where(branch_profiles.c.tenant_id == tenant)
        .order_by(branch_profiles.c.branch_id)
    ).all()
    return [(r.branch_id, r.name) for r in rows]


def known_regions(conn: Connection, tenant: str, entries: Iterable[calendar.Entry]) -> list[str]:
    """The regions the tenant's branches name in their settings or its entries use (the scope picker's choices)."""
    named = conn.execute(
        sa.select(appt_settings.c.region).where(
            appt_settings.c.tenant_id == tenant, appt_settings.c.region.is_not(None)
        )
    ).scalars()
    used = {e.scope.removeprefix("region:") for e in entries if e.scope.startswith("region:")}
    return sorted({r for r in named if r} | used)


@dataclass(frozen=True)
class ClosedDay:
    """Active bookings of one branch on a day that is now closed (staff move or cancel them by hand)."""

    branch_id: str
    branch_name: str
    day: date
    bookings: int
    reason: str


def bookings_on_closed_days(conn: Connection, tenant: str, branch_ids: Iterable[str], now: datetime) -> list[ClosedDay]:
    """Booked (not cancelled or checked in) visits from today on, at the given branches, whose day is closed now."""
    wanted = sorted(set(branch_ids))
    if not wanted:
        return []
    rows = conn.execute(
        sa.select(appt_bookings.c.branch_id, appt_bookings.c.day, sa.func.count().label("n"))
        .where(appt_bookings.c.tenant_id == tenant, appt_bookings.c.branch_id.in_(wanted),
               appt_bookings.c.status == "booked")
        .group_by(appt_bookings.c.branch_id, appt_bookings.c.day)
        .order_by(appt_bookings.c.day, appt_bookings.c.branch_id)
    ).all()  # fmt: skip
    entries = booking.entries(conn, tenant)
    loaded: dict[str, booking.Branch | None] = {}
    found = []
    for row in rows:
        if row.branch_id not in loaded:
            loaded[row.branch_id] = booking.load_branch(conn, tenant, row.branch_id)
        branch = loaded[row.branch_id]
        day = date.fromisoformat(row.day)
        if branch is None or day < now.astimezone(ZoneInfo(branch.zone)).date():
            continue
        reason = calendar.closed_reason(day, entries, branch_id=branch.branch_id, region=branch.region)
        if reason:
            found.append(ClosedDay(branch.branch_id, branch.name, day, int(row.n), reason))
    return found


def ticket_numbers(conn: Connection, tenant: str, branch_id: str, ticket_ids: Iterable[str | None]) -> dict[str, str]:
    """The ticket numbers (A012) of checked-in visits' tickets, of those the hub has received."""
    wanted = sorted({t for t in ticket_ids if t})
    rows = probe_rows(conn, tickets, tenant, branch_id, "ticket_id", wanted, ("ticket_id", "ticket_number"))
    return {r.ticket_id: r.ticket_number for r in rows}
