"""The admin area's tables, on the hub's one `metadata` (created by migration `0007_admin`).

Every branch-scoped row is keyed by (tenant_id, branch_id); the audit log is one hash chain over the whole hub (its
`seq` orders it, each row's `hash` covers the previous row's hash and its own content)."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata

# Append-only, hash-chained log of every console action (cloud/admin/audit.py); never updated nor deleted.
hub_audit = sa.Table(
    "hub_audit",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),  # UTC, RFC 3339
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("branch_id", sa.String(64)),
    sa.Column("target", sa.String(200)),
    sa.Column("source_ip", sa.String(64)),
    sa.Column("before", sa.Text),  # JSON
    sa.Column("after", sa.Text),  # JSON
    sa.Column("correlation_id", sa.String(128)),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("hub_audit_scope", hub_audit.c.tenant_id, hub_audit.c.branch_id, hub_audit.c.at)

# A branch's master data as HQ manages it (US-ADMIN-001); `branches` (cloud/store.py) stays the replication record.
branch_profiles = sa.Table(
    "branch_profiles",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("hours", sa.Text, nullable=False),  # JSON {weekday: [[open, close]]}
    sa.Column("areas", sa.Text, nullable=False),  # JSON [{id, name}]
    sa.Column("status", sa.String(16), nullable=False),  # active | retired
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# One-time enrolment codes an appliance's first boot redeems for its credentials (POST /api/v1/enrol).
enrolment_codes = sa.Table(
    "enrolment_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),  # SHA-256 of the code: the code itself is never stored
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("used_at", sa.String(40)),
)

# Per-tenant console settings: whether configuration changes need a second person's approval (US-ADMIN-006).
tenant_settings = sa.Table(
    "tenant_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("approvals", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# Change requests (maker-checker): a configuration or staff-account change against the version it was edited from.
change_requests = sa.Table(
    "change_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64), nullable=False),
    sa.Column("base_version", sa.Integer, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | deciding | approved | rejected | expired
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", sa.String(40)),
    sa.Column("distributed_version", sa.Integer),
    # config: `doc` is a BranchConfig against `base_version`; staff: one account's change (its new password only as a
    # hash) against that account's version (cloud/admin/staff.py). Added by 0013_staff_requests.
    sa.Column("kind", sa.String(16), nullable=False, server_default="config"),
)
sa.Index("change_requests_scope", change_requests.c.tenant_id, change_requests.c.branch_id, change_requests.c.status)

# Every device of every branch as its newest heartbeat reported it (cloud/admin/fleet.py, US-ADMIN-009/010).
fleet_devices = sa.Table(
    "fleet_devices",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("online", sa.Boolean, nullable=False),  # as the branch reported it
    sa.Column("last_seen", sa.String(40)),  # the branch's record of the device (UTC)
    sa.Column("config_version", sa.Integer, nullable=False),
    sa.Column("applied_version", sa.Integer, nullable=False),
    sa.Column("reported_at", sa.String(40), nullable=False),  # when the hub received the beat that carried it
)

# Branch staff accounts managed at HQ (cloud/admin/staff.py): only the argon2id hash is kept and distributed.
staff_accounts = sa.Table(
    "staff_accounts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # admin | supervisor | agent (the appliance's roles)
    sa.Column("counters", sa.Text, nullable=False),  # JSON list of counter ids
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # the branch's staff document version of its last change
    sa.Column("updated_at", sa.String(40), nullable=False),
)

TABLES = (hub_audit, branch_profiles, enrolment_codes, tenant_settings, change_requests, fleet_devices, staff_accounts)

__all__ = [
    "TABLES",
    "branch_profiles",
    "change_requests",
    "enrolment_codes",
    "fleet_devices",
    "hub_audit",
    "metadata",
    "staff_accounts",
    "tenant_settings",
]
