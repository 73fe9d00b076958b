"""Analytics (issue 13): ticket facts, hourly rollups with fixed histograms, branch settings (zone, SLA), scheduled
reports, BI tokens, anomaly alerts. Facts and rollups of branches already at the hub are filled by
`qms-cloud branch resync` (rebuild from the log); new events keep them current."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_analytics"
down_revision = "0004_notify"
branch_labels = None
depends_on = None

BUCKETS = 14  # fixed histogram buckets, as when this revision was written (sync.kpi.BUCKET_EDGES_MINUTES)
TABLES = ("analytics_alerts", "analytics_bi_tokens", "analytics_schedules", "analytics_tenant_settings",
          "analytics_counters", "analytics_branch_settings",
          "analytics_branch_days", "analytics_daily", "analytics_rollups", "analytics_facts")  # fmt: skip


def _key() -> list[sa.Column[str]]:
    return [
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
    ]


def upgrade() -> None:
    """Create the analytics tables."""
    op.create_table(
        "analytics_facts",
        *_key(),
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("counter_id", sa.String(64)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40)),
        sa.Column("called_at", sa.String(40)),
        sa.Column("served_at", sa.String(40)),
        sa.Column("completed_at", sa.String(40)),
        sa.Column("wait_seconds", sa.Float),
        sa.Column("service_seconds", sa.Float),
        sa.Column("sla_minutes", sa.Integer),
        sa.Column("sla_met", sa.Boolean),
        sa.Column("abandoned", sa.Boolean, nullable=False),
        sa.Column("transferred", sa.Boolean, nullable=False),
        sa.Column("returned", sa.Boolean, nullable=False),
        sa.Column("local_date", sa.String(10), nullable=False),
        sa.Column("local_hour", sa.SmallInteger, nullable=False),
        sa.Column("closed_date", sa.String(10)),
        sa.Column("closed_hour", sa.SmallInteger),
        sa.Column("seen_at", sa.String(40), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("csv_comma", sa.Text, nullable=False),
        sa.Column("csv_semicolon", sa.Text, nullable=False),
    )
    op.create_index("analytics_facts_day", "analytics_facts", ["tenant_id", "local_date", "branch_id", "ticket_id"])
    op.create_table(
        "analytics_rollups",
        *_key(),
        sa.Column("local_date", sa.String(10), primary_key=True),
        sa.Column("local_hour", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("priority", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("counter_id", sa.String(64), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in ("tickets", "done", "no_shows", "cancelled", "abandoned", "active", "waited")
        ),
        sa.Column("wait_sum", sa.Float, nullable=False),
        sa.Column("served", sa.BigInteger, nullable=False),
        sa.Column("service_sum", sa.Float, nullable=False),
        sa.Column("sla_measured", sa.BigInteger, nullable=False),
        sa.Column("sla_met", sa.BigInteger, nullable=False),
        *(sa.Column(f"wait_h{i:02d}", sa.BigInteger, nullable=False) for i in range(BUCKETS)),
        *(sa.Column(f"service_h{i:02d}", sa.BigInteger, nullable=False) for i in range(BUCKETS)),
    )
    op.create_index("analytics_rollups_day", "analytics_rollups", ["tenant_id", "local_date"])
    op.create_table(
        "analytics_daily",
        *_key(),
        sa.Column("local_date", sa.String(10), primary_key=True),
        sa.Column("service_id", sa.String(64), primary_key=True),
        *(
            sa.Column(n, sa.BigInteger, nullable=False)
            for n in ("tickets", "done", "no_shows", "cancelled", "abandoned", "waited")
        ),
        sa.Column("wait_sum", sa.Float, nullable=False),
        sa.Column("served", sa.BigInteger, nullable=False),
        sa.Column("service_sum", sa.Float, nullable=False),
        sa.Column("sla_measured", sa.BigInteger, nullable=False),
        sa.Column("sla_met", sa.BigInteger, nullable=False),
        *(sa.Column(f"wait_h{i:02d}", sa.BigInteger, nullable=False) for i in range(BUCKETS)),
        *(sa.Column(f"service_h{i:02d}", sa.BigInteger, nullable=False) for i in range(BUCKETS)),
        *(sa.Column(f"a{h:02d}", sa.BigInteger, nullable=False) for h in range(24)),
    )
    op.create_index("analytics_daily_day", "analytics_daily", ["tenant_id", "local_date"])
    op.create_table(
        "analytics_branch_days",
        *_key(),
        sa.Column("local_date", sa.String(10), primary_key=True),
        *(sa.Column(f"a{h:02d}", sa.BigInteger, nullable=False) for h in range(24)),
    )
    op.create_index("analytics_branch_days_day", "analytics_branch_days", ["local_date", "tenant_id"])
    op.create_table(
        "analytics_branch_settings",
        *_key(),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("sla_minutes", sa.Text, nullable=False),
    )
    op.create_table(
        "analytics_counters",
        *_key(),
        sa.Column("counter_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "analytics_tenant_settings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("show_contacts", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "analytics_schedules",
        sa.Column("schedule_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64)),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("next_run_at", sa.String(40), nullable=False),
        sa.Column("last_run_at", sa.String(40)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("analytics_schedules_due", "analytics_schedules", ["active", "next_run_at"])
    op.create_table(
        "analytics_bi_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("datasets", sa.Text, nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("last_used_at", sa.String(40)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "analytics_alerts",
        *_key(),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.String(40)),
        sa.Column("cleared_at", sa.String(40)),
        sa.Column("p90_seconds", sa.Float),
        sa.Column("baseline_seconds", sa.Float),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    for table in TABLES:
        op.drop_table(table)
