"""Secondary indexes that do not start with the primary key's leading columns.

`tickets_status (tenant_id, branch_id, status, service_id)` and `ticket_links_request (tenant_id, branch_id,
request_id)` shared the primary key's prefix. On a table PostgreSQL has not analysed yet (a new hub, a hub catching up
on a backlog before autovacuum's first pass) the planner picked them for the consumer's per-ticket updates
(`WHERE tenant_id = … AND branch_id = … AND ticket_id = …`) and filtered every row of the branch: the apply rate fell
with the table's size (10,000 → 700 events/s over 100,000 events). Led by `status` and `request_id` they serve the
same queries (equality on every column) and are never a candidate for a primary-key lookup.
"""

from __future__ import annotations

from alembic import op

revision = "0003b_index_order"
down_revision = "0003_liveness_config_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Recreate the two indexes led by their own column."""
    op.drop_index("tickets_status", table_name="tickets")
    op.create_index("tickets_status", "tickets", ["status", "tenant_id", "branch_id", "service_id"])
    op.drop_index("ticket_links_request", table_name="ticket_links")
    op.create_index("ticket_links_request", "ticket_links", ["request_id", "tenant_id", "branch_id"])


def downgrade() -> None:
    """Back to the primary key's prefix first."""
    op.drop_index("ticket_links_request", table_name="ticket_links")
    op.create_index("ticket_links_request", "ticket_links", ["tenant_id", "branch_id", "request_id"])
    op.drop_index("tickets_status", table_name="tickets")
    op.create_index("tickets_status", "tickets", ["tenant_id", "branch_id", "status", "service_id"])
