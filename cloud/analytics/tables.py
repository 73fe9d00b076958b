"""The analytics area's tables, on the hub's one `metadata` (created by migration `0005_analytics`).

* `analytics_facts` — one row per ticket, kept current in the consumer's transaction (`cloud.analytics.facts`).
* `analytics_rollups` — additive aggregates per (tenant, branch, local date, local hour, service, priority, channel,
  counter) with fixed wait/service histograms (`sync.kpi` buckets), so KPIs over many branches and days are sums of a
  few thousand rows, never a scan of tickets; percentiles across days/branches come from the merged histograms.
* `analytics_daily` — the same per (tenant, branch, local date, service), with active-hour counts: long ranges.
* `analytics_branch_days` — per (tenant, branch, local date), tickets created or done per local hour: hours open.
* `analytics_branch_settings` — the branch's time zone and SLA per service, from its newest `config.applied`.
* `analytics_counters` — each counter's newest presence (the live dashboard's "counters open").
* `analytics_tenant_settings` — whether drill-downs show (masked) contacts at all; who gets anomaly alert e-mails.
* `analytics_schedules` — scheduled reports (cron in the branch's zone), claimed by `next_run_at`.
* `analytics_bi_tokens` — BI API tokens (SHA-256 of the secret only), per tenant with dataset scopes and expiry.
* `analytics_alerts` — anomaly alert state per (tenant, branch, service): open/cleared, cool-down.
"""

from __future__ import annotations

import sqlalchemy as sa

from cloud.store import metadata
from sync import kpi

HISTOGRAM_BUCKETS = kpi.BUCKETS  # [0,1), [1,2), … [120, ∞) minutes (migration 0005 made 14 columns each)
WAIT_BUCKETS = tuple(f"wait_h{i:02d}" for i in range(HISTOGRAM_BUCKETS))
SERVICE_BUCKETS = tuple(f"service_h{i:02d}" for i in range(HISTOGRAM_BUCKETS))


def _key() -> list[sa.Column[str]]:
    return [
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("branch_id", sa.String(64), primary_key=True),
    ]


facts = sa.Table(
    "analytics_facts",
    metadata,
    *_key(),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("ticket_number", sa.String(16), nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),  # the service it is in now (after transfers)
    sa.Column("counter_id", sa.String(64)),  # the counter of its newest call
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(40)),  # UTC, RFC 3339; None when its ticket.created is not at the hub
    sa.Column("called_at", sa.String(40)),  # first call
    sa.Column("served_at", sa.String(40)),  # its latest start of serving (as the appliance engine keeps it)
    sa.Column("completed_at", sa.String(40)),  # ticket.done
    sa.Column("wait_seconds", sa.Float),
    sa.Column("service_seconds", sa.Float),
    sa.Column("sla_minutes", sa.Integer),
    sa.Column("sla_met", sa.Boolean),  # wait ≤ sla_minutes; None where not measured
    sa.Column("abandoned", sa.Boolean, nullable=False),  # cancelled before ever being called
    sa.Column("transferred", sa.Boolean, nullable=False),
    sa.Column("returned", sa.Boolean, nullable=False),
    sa.Column("local_date", sa.String(10), nullable=False),  # branch-local date/hour of its creation
    sa.Column("local_hour", sa.SmallInteger, nullable=False),
    sa.Column("closed_date", sa.String(10)),  # branch-local date/hour it was done (hours open)
    sa.Column("closed_hour", sa.SmallInteger),
    sa.Column("seen_at", sa.String(40), nullable=False),  # its first event at the hub (date fallback)
    sa.Column("timezone", sa.String(64), nullable=False),
    # The ticket's export record (`sync.kpi.csv_row`, CRLF-terminated) in each separator, rendered when the fact is
    # written: the export streams stored text (as the appliance's ticket_fact_csv) instead of rendering each row on
    # every export (rendering was ~3,000 rows/s; the budget is 100,000).
    sa.Column("csv_comma", sa.Text, nullable=False),
    sa.Column("csv_semicolon", sa.Text, nullable=False),
)
sa.Index("analytics_facts_day", facts.c.tenant_id, facts.c.local_date, facts.c.branch_id, facts.c.ticket_id)

rollups = sa.Table(
    "analytics_rollups",
    metadata,
    *_key(),
    sa.Column("local_date", sa.String(10), primary_key=True),
    sa.Column("local_hour", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("service_id", sa.String(64), primary_key=True),
    sa.Column("priority", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("counter_id", sa.String(64), primary_key=True),  # '' before a call
    sa.Column("tickets", sa.BigInteger, nullable=False),
    sa.Column("done", sa.BigInteger, nullable=False),
    sa.Column("no_shows", sa.BigInteger, nullable=False),
    sa.Column("cancelled", sa.BigInteger, nullable=False),
    sa.Column("abandoned", sa.BigInteger, nullable=False),
    sa.Column("active", sa.BigInteger, nullable=False),  # tickets created + done in this hour (hours open)
    sa.Column("waited", sa.BigInteger, nullable=False),  # tickets with a measured wait
    sa.Column("wait_sum", sa.Float, nullable=False),
    sa.Column("served", sa.BigInteger, nullable=False),  # tickets with a measured service time
    sa.Column("service_sum", sa.Float, nullable=False),
    sa.Column("sla_measured", sa.BigInteger, nullable=False),
    sa.Column("sla_met", sa.BigInteger, nullable=False),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in WAIT_BUCKETS),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in SERVICE_BUCKETS),
)
sa.Index("analytics_rollups_day", rollups.c.tenant_id, rollups.c.local_date)

# The same measures per branch, local date and service (no hour, priority, channel or counter): what tenant-wide
# queries over weeks read (30 days x 500 branches x a few services = tens of thousands of rows). Hours open stay exact
# through one count per local hour (a00..a23: tickets created or done in that hour).
ACTIVE_HOURS = tuple(f"a{h:02d}" for h in range(24))
daily = sa.Table(
    "analytics_daily",
    metadata,
    *_key(),
    sa.Column("local_date", sa.String(10), primary_key=True),
    sa.Column("service_id", sa.String(64), primary_key=True),
    *(
        sa.Column(name, sa.BigInteger, nullable=False)
        for name in ("tickets", "done", "no_shows", "cancelled", "abandoned", "waited")
    ),
    sa.Column("wait_sum", sa.Float, nullable=False),
    sa.Column("served", sa.BigInteger, nullable=False),
    sa.Column("service_sum", sa.Float, nullable=False),
    sa.Column("sla_measured", sa.BigInteger, nullable=False),
    sa.Column("sla_met", sa.BigInteger, nullable=False),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in WAIT_BUCKETS),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in SERVICE_BUCKETS),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in ACTIVE_HOURS),
)
sa.Index("analytics_daily_day", daily.c.tenant_id, daily.c.local_date)

# Per branch and local date, the tickets created or done in each local hour, all services together: a branch-day's
# hours open are the a<hour> columns above 0 of ONE row, so tenant-wide hours open need no GROUP BY over the daily
# rows (that aggregate of 24 columns per branch-day was most of a 30-day x 500-branch KPI query). The index is led by
# the date, not the primary key's tenant_id (see migration 0003b: never a candidate for the upserts' key lookups).
branch_days = sa.Table(
    "analytics_branch_days",
    metadata,
    *_key(),
    sa.Column("local_date", sa.String(10), primary_key=True),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in ACTIVE_HOURS),
)
sa.Index("analytics_branch_days_day", branch_days.c.local_date, branch_days.c.tenant_id)

branch_settings = sa.Table(
    "analytics_branch_settings",
    metadata,
    *_key(),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("sla_minutes", sa.Text, nullable=False),  # JSON {service_id: minutes}
)

counters = sa.Table(  # the live dashboard's counters: their newest counter.presence
    "analytics_counters",
    metadata,
    *_key(),
    sa.Column("counter_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # available | busy | break | closed
    sa.Column("updated_at", sa.String(40), nullable=False),
)

tenant_settings = sa.Table(
    "analytics_tenant_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("show_contacts", sa.Boolean, nullable=False),  # False: drill-downs hide contacts entirely (PII off)
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("alert_recipients", sa.Text),  # JSON list of the anomaly alert e-mail addresses (0011); None = none
)

schedules = sa.Table(
    "analytics_schedules",
    metadata,
    sa.Column("schedule_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("branch_id", sa.String(64)),  # None: every branch of the tenant
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("cron", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("recipients", sa.Text, nullable=False),  # JSON list of addresses
    sa.Column("days", sa.Integer, nullable=False),  # how many local days the report covers, ending yesterday
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.String(40), nullable=False),  # UTC, RFC 3339
    sa.Column("last_run_at", sa.String(40)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
sa.Index("analytics_schedules_due", schedules.c.active, schedules.c.next_run_at)

bi_tokens = sa.Table(
    "analytics_bi_tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("datasets", sa.Text, nullable=False),  # JSON list: tickets, kpis
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("last_used_at", sa.String(40)),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

alerts = sa.Table(
    "analytics_alerts",
    metadata,
    *_key(),
    sa.Column("service_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # open | cleared
    sa.Column("opened_at", sa.String(40)),
    sa.Column("cleared_at", sa.String(40)),
    sa.Column("p90_seconds", sa.Float),
    sa.Column("baseline_seconds", sa.Float),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

__all__ = [
    "alerts",
    "bi_tokens",
    "branch_days",
    "branch_settings",
    "counters",
    "daily",
    "facts",
    "metadata",
    "rollups",
    "schedules",
    "tenant_settings",
]
