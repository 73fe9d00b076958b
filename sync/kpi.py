"""KPI definitions shared by the appliance and the hub, so a branch and HQ never disagree (ARCHITECTURE.md, "The hub").

Pure: no I/O, no clock, no edge/cloud imports. A ticket's timestamps become a `TicketFact` (`sync.kpi_facts`, with
the fold of its events); facts fold into a mergeable `Aggregate` (counts, sums, fixed histograms) that becomes a KPI
row (`sync.kpi_stats`); the CSV header (version 1) and record formatter (`sync.kpi_csv`) and the query parameters of
`/api/v1/kpis` and `/api/v1/reports/tickets.csv` (`sync.kpi_query`) complete it. This module is the one name both
sides import: everything public is re-exported here.

Definitions:
- wait = first `called_at` - `created_at`; service = `completed_at` - `served_at` (done tickets only, so no-shows
  never count as service). A negative difference (clocks or events out of order) is "not measured", never an error.
- sla_met = wait ≤ the service's `sla_minutes`; measured only where the wait is.
- no_show_rate = no-shows / (done + no-shows); sla_met_pct = met / measured * 100.
- throughput_per_hour = done / hours open, where an hour is "open" when a ticket was created or completed in it
  (branch-local, per branch): the appliance has no opening-hours calendar, activity is what it knows.
- Percentiles are `percentile_cont` (linear interpolation between closest ranks): exact when the raw values are at
  hand (one branch-day on the hub, anything on the appliance), interpolated inside the fixed histogram buckets
  (0,1,2,3,5,7,10,15,20,30,45,60,90,120,+∞ minutes) once aggregates were merged.
"""

from __future__ import annotations

from sync.kpi_csv import (
    CSV_HEADER,
    CSV_VERSION,
    csv_cells,
    csv_header_line,
    csv_line,
    csv_row,
    neutralise,
    rfc3339_local,
)
from sync.kpi_facts import (
    DEFAULT_TIMEZONE,
    OPEN_STATUSES,
    FactSource,
    TicketFact,
    fact_of,
    fold_event,
    local_date_hour,
    seconds_between,
    ticket_fact,
    zone,
    zone_name,
)
from sync.kpi_query import (
    CHANNELS,
    MAX_ID_LENGTH,
    MAX_RANGE_DAYS,
    KpiQuery,
    KpiQueryError,
    parse_query,
)
from sync.kpi_stats import (
    BUCKET_EDGES_MIN,
    BUCKET_EDGES_S,
    BUCKETS,
    GROUP_BY,
    GROUP_KEY,
    KPI_FIELDS,
    Aggregate,
    Distribution,
    GroupBy,
    aggregate,
    bucket_of,
    exact_percentile,
    group_values,
    hist_percentile,
    hour_key,
    kpi_row,
    kpi_rows,
    merge,
    merge_distributions,
)

__all__ = [
    "BUCKETS",
    "BUCKET_EDGES_MIN",
    "BUCKET_EDGES_S",
    "CHANNELS",
    "CSV_HEADER",
    "CSV_VERSION",
    "DEFAULT_TIMEZONE",
    "GROUP_BY",
    "GROUP_KEY",
    "KPI_FIELDS",
    "MAX_ID_LENGTH",
    "MAX_RANGE_DAYS",
    "OPEN_STATUSES",
    "Aggregate",
    "Distribution",
    "FactSource",
    "GroupBy",
    "KpiQuery",
    "KpiQueryError",
    "TicketFact",
    "aggregate",
    "bucket_of",
    "csv_cells",
    "csv_header_line",
    "csv_line",
    "csv_row",
    "exact_percentile",
    "fact_of",
    "fold_event",
    "group_values",
    "hist_percentile",
    "hour_key",
    "kpi_row",
    "kpi_rows",
    "local_date_hour",
    "merge",
    "merge_distributions",
    "neutralise",
    "parse_query",
    "rfc3339_local",
    "seconds_between",
    "ticket_fact",
    "zone",
    "zone_name",
]
