"""The HQ roles and what each may do: the permission matrix in code (US-ADMIN-004).

Kept apart from the route guard (cloud/identity/permissions.py) so the principal itself can answer `can(…)` for
templates (the layout's navigation) without an import cycle."""

from __future__ import annotations

PERMISSIONS = (
    "branches.read", "branches.manage", "config.manage", "config.approve", "users.manage", "tokens.manage",
    "audit.read", "fleet.read", "fleet.manage", "floor.read", "floor.intervene",
    "notify.read", "notify.manage", "analytics.read", "analytics.export", "reports.manage",
    "appointments.read", "appointments.manage", "releases.manage", "ops.read",
)  # fmt: skip
_READ = frozenset(p for p in PERMISSIONS if p.endswith(".read"))
# Running the hub itself (software releases, operations) is the platform operator's business, not a tenant's.
_PLATFORM_ONLY = frozenset({"releases.manage", "ops.read"})
# A branch manager runs its branches (their configuration, devices, floor, appointments, notifications, reports)
# but not the tenant's accounts, tokens, approvals, branch list or tenant-wide reports.
_BRANCH_MANAGER = frozenset({
    "branches.read", "config.manage", "fleet.read", "fleet.manage", "floor.read", "floor.intervene",
    "notify.read", "analytics.read", "analytics.export", "appointments.read", "appointments.manage", "audit.read",
})  # fmt: skip

# role -> permissions; scope (which tenants, which branches) is the account's, not the role's.
MATRIX: dict[str, frozenset[str]] = {
    "platform_admin": frozenset(PERMISSIONS),  # every tenant
    "tenant_admin": frozenset(PERMISSIONS) - _PLATFORM_ONLY,  # its tenant(s)
    "branch_manager": _BRANCH_MANAGER,  # a set of branches of one tenant (regional manager: several)
    "auditor": _READ - _PLATFORM_ONLY,  # read-only, audit included
}
ROLES: tuple[str, ...] = tuple(MATRIX)
# The roles before issue 14; migration 0006_identity maps stored accounts, and the CLI still accepts them.
LEGACY_ROLES = {"hq_viewer": "auditor", "hq_admin": "tenant_admin"}  # hq_admin with '*' becomes platform_admin


def role_allows(role: str, permission: str) -> bool:
    """Whether `role` grants `permission` (an unknown role grants nothing)."""
    return permission in MATRIX.get(role, frozenset())
