"""What the branch report page shows, from facts: KPI tables, wait histogram, weekday x hour heat map, SLA trend.

Pure (facts in, plain dicts out) so the page, its charts and its no-JavaScript tables come from one computation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date
from typing import Any

from sync.kpi import BUCKET_EDGES_MIN, Aggregate, TicketFact, aggregate, kpi_row, kpi_rows

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HEAT_LEVELS = 5  # css classes heat-0 .. heat-5


def bucket_labels() -> list[str]:
    """`0-1`, `1-2`, ... `120+` (minutes), the wait histogram's bars."""
    edges = BUCKET_EDGES_MIN
    return [f"{lo}-{hi}" for lo, hi in itertools.pairwise(edges)] + [f"{edges[-1]}+"]


def _level(value: int, top: int) -> int:
    """A heat class 0..HEAT_LEVELS for a count relative to the busiest cell."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, round(HEAT_LEVELS * value / top))


def heat_map(facts: Sequence[TicketFact]) -> dict[str, Any]:
    """Arrivals and tickets served per weekday x hour (branch-local), only the hours with any activity."""
    arrivals: dict[tuple[int, int], int] = {}
    served: dict[tuple[int, int], int] = {}
    for fact in facts:
        if fact.business_date is not None and fact.hour is not None:
            key = (date.fromisoformat(fact.business_date).weekday(), fact.hour)
            arrivals[key] = arrivals.get(key, 0) + 1
        if fact.closed_date is not None and fact.closed_hour is not None:
            key = (date.fromisoformat(fact.closed_date).weekday(), fact.closed_hour)
            served[key] = served.get(key, 0) + 1
    hours = sorted({h for _, h in arrivals.keys() | served.keys()})
    top = max([*arrivals.values(), 0])
    rows = []
    for wd, name in enumerate(WEEKDAYS):
        cells = []
        for h in hours:
            a, s = arrivals.get((wd, h), 0), served.get((wd, h), 0)
            cells.append({"hour": h, "arrivals": a, "served": s, "level": _level(a, top)})
        rows.append({"weekday": name, "cells": cells, "total": sum(c["arrivals"] for c in cells)})
    return {"hours": hours, "rows": rows, "max": top}


def sla_trend(facts: Sequence[TicketFact]) -> list[dict[str, Any]]:
    """Per branch-local day: SLA met %, tickets measured, average and p90 wait."""
    rows, _ = kpi_rows(facts, ("day",))
    return [
        {
            "day": r["day"],
            "sla_met_pct": r["sla_met_pct"],
            "tickets": r["tickets"],
            "wait_avg_s": r["wait_avg_s"],
            "wait_p90_s": r["wait_p90_s"],
        }
        for r in rows
    ]


def report(facts: Sequence[TicketFact]) -> dict[str, Any]:
    """Everything the report page shows for one selection of facts."""
    total: Aggregate = aggregate(facts)
    by_day, _ = kpi_rows(facts, ("day",))
    by_service, _ = kpi_rows(facts, ("service",))
    by_counter, _ = kpi_rows(facts, ("counter",))
    return {
        "totals": kpi_row(total),
        "abandoned": total.abandoned,
        "by_day": by_day,
        "by_service": by_service,
        "by_counter": by_counter,
        "wait_histogram": {"labels": bucket_labels(), "counts": list(total.wait.hist)},
        "heat": heat_map(facts),
        "sla_trend": sla_trend(facts),
    }
