"""Key every branch-scoped row by `(tenant_id, branch_id)` (branch ids are unique only inside a tenant) and rename
the `tenant` columns to `tenant_id`.

Each keyed table is rebuilt (a primary key cannot be altered in place on SQLite): a new table with the new key, the
rows copied with their tenant, the old table dropped and the new one renamed. A row's tenant is its branch row's;
where a branch has no branch row, its credentials' or its configuration versions' tenant. Branches that have
credentials (`qms-cloud branch add`) but never sent an event get a branch row, so `branch list` shows them.
"""

# ruff: noqa: S608 - the SQL is built from this file's own table and column names, never from input

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_tenant_keys"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64  # sync.contract.GENESIS_HASH, frozen here as this revision saw it


def _tenant_of(table: str) -> str:
    """SQL for the tenant of a row of `table` (old schema), by its branch id."""
    return (
        f"COALESCE((SELECT b.tenant FROM branches b WHERE b.branch_id = {table}.branch_id),"
        f" (SELECT MIN(c.tenant) FROM branch_credentials c WHERE c.branch_id = {table}.branch_id),"
        f" (SELECT MIN(v.tenant) FROM config_versions v WHERE v.branch_id = {table}.branch_id), 'default')"
    )


def _columns() -> dict[str, list[sa.Column[Any]]]:
    """The rebuilt tables' columns (tenant_id first in every key)."""

    def tenant() -> sa.Column[Any]:
        return sa.Column("tenant_id", sa.String(64), primary_key=True)

    def branch() -> sa.Column[Any]:
        return sa.Column("branch_id", sa.String(64), primary_key=True)

    return {
        "branches": [
            tenant(), branch(),
            sa.Column("next_seq", sa.BigInteger, nullable=False),
            sa.Column("last_hash", sa.String(64), nullable=False),
            sa.Column("events", sa.BigInteger, nullable=False),
            sa.Column("duplicates", sa.BigInteger, nullable=False),
            sa.Column("last_event_at", sa.String(40)),
            sa.Column("last_received_at", sa.String(40)),
            sa.Column("config_version", sa.Integer),
            sa.Column("config_rejected_version", sa.Integer),
            sa.Column("config_rejected_reason", sa.Text),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("problem", sa.Text),
            sa.Column("updated_at", sa.String(40), nullable=False),
        ],
        "events": [
            tenant(), branch(),
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("event_id", sa.String(64), nullable=False),
            sa.Column("type", sa.String(40), nullable=False),
            sa.Column("occurred_at", sa.String(40), nullable=False),
            sa.Column("ticket_id", sa.String(64)),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("received_at", sa.String(40), nullable=False),
        ],
        "parked_events": [
            tenant(), branch(),
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("received_at", sa.String(40), nullable=False),
        ],
        "tickets": [
            tenant(), branch(),
            sa.Column("ticket_id", sa.String(64), primary_key=True),
            sa.Column("service_id", sa.String(64), nullable=False),
            sa.Column("ticket_number", sa.String(16), nullable=False),
            sa.Column("business_date", sa.String(10), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("updated_at", sa.String(40), nullable=False),
        ],
        "ticket_links": [
            tenant(), branch(),
            sa.Column("ticket_id", sa.String(64), primary_key=True),
            sa.Column("queue_order", sa.BigInteger, nullable=False),
            sa.Column("request_id", sa.String(128)),
            sa.Column("lang", sa.String(8)),
            sa.Column("counter_id", sa.String(64)),
        ],
        "number_leases": [
            tenant(), branch(),
            sa.Column("lease_id", sa.String(64), primary_key=True),
            sa.Column("service_id", sa.String(64), nullable=False),
            sa.Column("first_seq", sa.Integer, nullable=False),
            sa.Column("last_seq", sa.Integer, nullable=False),
        ],
    }  # fmt: skip


def upgrade() -> None:
    """Rebuild the keyed tables with their tenants, then rename the remaining `tenant` columns."""
    tables = _columns()
    for name, columns in tables.items():
        op.create_table(f"{name}_v2", *columns)
        names = [c.name for c in columns if c.name != "tenant_id"]
        listed = ", ".join(names)
        tenant = f"{name}.tenant" if name == "branches" else _tenant_of(name)
        op.execute(f"INSERT INTO {name}_v2 (tenant_id, {listed}) SELECT {tenant}, {listed} FROM {name}")
    # Registered but never heard from: a branch row from its credentials ("never connected" in `branch list`).
    op.execute(
        "INSERT INTO branches_v2 (tenant_id, branch_id, next_seq, last_hash, events, duplicates, status, updated_at)"
        f" SELECT c.tenant, c.branch_id, 1, '{GENESIS_HASH}', 0, 0, 'ok', c.created_at FROM branch_credentials c"
        " WHERE NOT EXISTS (SELECT 1 FROM branches_v2 b WHERE b.tenant_id = c.tenant AND b.branch_id = c.branch_id)"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in tables:
        op.drop_table(name)  # its indexes go with it
        op.rename_table(f"{name}_v2", name)
        if postgres:  # the primary key's index keeps the name it was created with
            op.execute(f"ALTER INDEX {name}_v2_pkey RENAME TO {name}_pkey")
    op.create_index("events_type", "events", ["type"])
    op.create_index("tickets_status", "tickets", ["tenant_id", "branch_id", "status", "service_id"])
    op.create_index("ticket_links_request", "ticket_links", ["tenant_id", "branch_id", "request_id"])
    for name in ("config_versions", "branch_credentials"):
        op.execute(f"ALTER TABLE {name} RENAME COLUMN tenant TO tenant_id")
