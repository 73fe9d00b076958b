"""KPI arithmetic: fixed-bucket histograms, mergeable aggregates, percentiles, the KPI row (see `sync.kpi`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Literal

import msgspec

from sync.kpi_facts import TicketFact

# Lower edges of the fixed histogram buckets in minutes; the last bucket is [120 min, +∞).
BUCKET_EDGES_MIN: Final[tuple[int, ...]] = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120)
BUCKET_EDGES_S: Final[tuple[float, ...]] = tuple(float(m * 60) for m in BUCKET_EDGES_MIN)
BUCKETS: Final = len(BUCKET_EDGES_MIN)
KPI_FIELDS: Final[tuple[str, ...]] = (
    "tickets",
    "done",
    "no_shows",
    "cancelled",
    "no_show_rate",
    "wait_avg_s",
    "wait_p50_s",
    "wait_p90_s",
    "service_avg_s",
    "service_p50_s",
    "sla_met_pct",
    "throughput_per_hour",
)
GroupBy = Literal["day", "hour", "service", "counter", "branch"]
GROUP_BY: Final[tuple[GroupBy, ...]] = ("day", "hour", "service", "counter", "branch")
# The key each grouping adds to a KPI row.
GROUP_KEY: Final[Mapping[str, str]] = {
    "day": "day",
    "hour": "hour",
    "service": "service_id",
    "counter": "counter_id",
    "branch": "branch_id",
}


def bucket_of(seconds: float) -> int:
    """Index of the fixed histogram bucket holding a duration in seconds (negative durations go to the first)."""
    for index in range(BUCKETS - 1, -1, -1):
        if seconds >= BUCKET_EDGES_S[index]:
            return index
    return 0


def _empty_hist() -> list[int]:
    """A zeroed histogram with one count per bucket."""
    return [0] * BUCKETS


class Distribution(msgspec.Struct, kw_only=True):
    """A mergeable distribution of durations: count, sum, min, max, histogram; raw values while unmerged."""

    n: int = 0
    total_s: float = 0.0
    min_s: float | None = None
    max_s: float | None = None
    hist: list[int] = msgspec.field(default_factory=_empty_hist)
    raw: list[float] | None = msgspec.field(default_factory=list)  # None once merged: percentiles from hist

    def add(self, seconds: float) -> None:
        """Count one duration."""
        self.n += 1
        self.total_s += seconds
        self.min_s = seconds if self.min_s is None else min(self.min_s, seconds)
        self.max_s = seconds if self.max_s is None else max(self.max_s, seconds)
        self.hist[bucket_of(seconds)] += 1
        if self.raw is not None:
            self.raw.append(seconds)

    def mean(self) -> float | None:
        """The average, or None when empty."""
        return self.total_s / self.n if self.n else None

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0..1): exact from raw values when kept, else interpolated within the histogram."""
        if not self.n:
            return None
        if self.raw is not None and len(self.raw) == self.n:
            return exact_percentile(sorted(self.raw), q)
        return hist_percentile(self.hist, q, self.min_s, self.max_s)


def merge_distributions(a: Distribution, b: Distribution) -> Distribution:
    """Combine two distributions; the result keeps no raw values (its percentiles come from the histogram)."""
    return Distribution(
        n=a.n + b.n,
        total_s=a.total_s + b.total_s,
        min_s=_opt(min, a.min_s, b.min_s),
        max_s=_opt(max, a.max_s, b.max_s),
        hist=[x + y for x, y in zip(a.hist, b.hist, strict=True)],
        raw=None,
    )


def _opt(pick: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    """min/max over two optional values, ignoring a missing one."""
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def exact_percentile(values: Sequence[float], q: float) -> float | None:
    """`percentile_cont` over sorted values: linear interpolation between the two closest ranks."""
    if not values:
        return None
    rank = q * (len(values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _hist_value(hist: Sequence[int], k: int, lo_bound: float | None, hi_bound: float | None) -> float:
    """Estimate the k-th smallest value (0-based) by spreading each bucket's counts evenly across its width."""
    before = 0
    for index, count in enumerate(hist):
        if k < before + count:
            lo = BUCKET_EDGES_S[index]
            if index + 1 < BUCKETS:
                hi = BUCKET_EDGES_S[index + 1]
            else:
                hi = hi_bound if hi_bound is not None and hi_bound > lo else lo
            estimate = lo + (hi - lo) * ((k - before + 0.5) / count)
            if lo_bound is not None:
                estimate = max(estimate, lo_bound)
            if hi_bound is not None:
                estimate = min(estimate, hi_bound)
            return estimate
        before += count
    return hi_bound if hi_bound is not None else BUCKET_EDGES_S[-1]


def hist_percentile(
    hist: Sequence[int], q: float, min_s: float | None = None, max_s: float | None = None
) -> float | None:
    """`percentile_cont` estimated from a histogram (inside the buckets of the two closest ranks), within min/max."""
    n = sum(hist)
    if not n:
        return None
    rank = q * (n - 1)
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    v_low = _hist_value(hist, low, min_s, max_s)
    v_high = _hist_value(hist, high, min_s, max_s) if high != low else v_low
    return v_low + (v_high - v_low) * (rank - low)


def hour_key(branch_id: str, day: str, hour: int) -> str:
    """The identity of one branch-local hour, for counting hours open across merged aggregates."""
    return f"{branch_id}|{day}|{hour:02d}"


class Aggregate(msgspec.Struct, kw_only=True):
    """Mergeable KPI state for any set of tickets: counts, wait/service distributions, SLA counts, hours open."""

    tickets: int = 0
    done: int = 0
    no_shows: int = 0
    cancelled: int = 0
    abandoned: int = 0
    wait: Distribution = msgspec.field(default_factory=Distribution)
    service: Distribution = msgspec.field(default_factory=Distribution)
    sla_measured: int = 0
    sla_met: int = 0
    hours: set[str] = msgspec.field(default_factory=set)

    def add(self, fact: TicketFact) -> None:
        """Count one ticket's fact (in place: folding a day's facts must not allocate per ticket)."""
        self.tickets += 1
        if fact.status == "done":
            self.done += 1
        elif fact.status == "no_show":
            self.no_shows += 1
        elif fact.status == "cancelled":
            self.cancelled += 1
            self.abandoned += fact.abandoned
        if fact.wait_seconds is not None:
            self.wait.add(fact.wait_seconds)
        if fact.service_seconds is not None:
            self.service.add(fact.service_seconds)
        if fact.sla_met is not None:
            self.sla_measured += 1
            self.sla_met += fact.sla_met
        if fact.business_date is not None and fact.hour is not None:
            self.hours.add(hour_key(fact.branch_id, fact.business_date, fact.hour))
        if fact.closed_date is not None and fact.closed_hour is not None:
            self.hours.add(hour_key(fact.branch_id, fact.closed_date, fact.closed_hour))


def merge(a: Aggregate, b: Aggregate) -> Aggregate:
    """Combine two aggregates (associative and commutative); percentiles of the result come from histograms."""
    return Aggregate(
        tickets=a.tickets + b.tickets,
        done=a.done + b.done,
        no_shows=a.no_shows + b.no_shows,
        cancelled=a.cancelled + b.cancelled,
        abandoned=a.abandoned + b.abandoned,
        wait=merge_distributions(a.wait, b.wait),
        service=merge_distributions(a.service, b.service),
        sla_measured=a.sla_measured + b.sla_measured,
        sla_met=a.sla_met + b.sla_met,
        hours=a.hours | b.hours,
    )


def aggregate(facts: Iterable[TicketFact]) -> Aggregate:
    """Fold facts into one aggregate that keeps raw values (exact percentiles)."""
    agg = Aggregate()
    for fact in facts:
        agg.add(fact)
    return agg


def _round(value: float | None, digits: int) -> float | None:
    """Round for the API (stable, comparable figures) keeping None."""
    return None if value is None else round(value, digits)


def kpi_row(agg: Aggregate) -> dict[str, int | float | None]:
    """The KPI fields of the API for one aggregate; null wherever there is nothing to measure."""
    judged = agg.done + agg.no_shows
    return {
        "tickets": agg.tickets,
        "done": agg.done,
        "no_shows": agg.no_shows,
        "cancelled": agg.cancelled,
        "no_show_rate": _round(agg.no_shows / judged, 4) if judged else None,
        "wait_avg_s": _round(agg.wait.mean(), 1),
        "wait_p50_s": _round(agg.wait.percentile(0.5), 1),
        "wait_p90_s": _round(agg.wait.percentile(0.9), 1),
        "service_avg_s": _round(agg.service.mean(), 1),
        "service_p50_s": _round(agg.service.percentile(0.5), 1),
        "sla_met_pct": _round(100.0 * agg.sla_met / agg.sla_measured, 1) if agg.sla_measured else None,
        "throughput_per_hour": _round(agg.done / len(agg.hours), 2) if agg.hours else None,
    }


def group_values(fact: TicketFact, group_by: Sequence[str]) -> tuple[str | int | None, ...]:
    """The values of a fact for the requested groupings, in order (day and hour are branch-local, of creation)."""
    values: list[str | int | None] = []
    for group in group_by:
        if group == "day":
            values.append(fact.business_date)
        elif group == "hour":
            values.append(fact.hour)
        elif group == "service":
            values.append(fact.service_id)
        elif group == "counter":
            values.append(fact.counter_id)
        else:
            values.append(fact.branch_id)
    return tuple(values)


def kpi_rows(
    facts: Iterable[TicketFact], group_by: Sequence[str]
) -> tuple[list[dict[str, int | float | str | None]], dict[str, int | float | None]]:
    """The `/kpis` answer body parts: one row per group (sorted by its keys, None last) and the totals."""
    groups: dict[tuple[str | int | None, ...], Aggregate] = {}
    total = Aggregate()
    for fact in facts:
        total.add(fact)
        if group_by:
            key = group_values(fact, group_by)
            agg = groups.get(key)
            if agg is None:
                agg = groups[key] = Aggregate()
            agg.add(fact)
    rows: list[dict[str, int | float | str | None]] = []
    for key in sorted(groups, key=lambda k: tuple((v is None, "" if v is None else v) for v in k)):
        row: dict[str, int | float | str | None] = {GROUP_KEY[g]: v for g, v in zip(group_by, key, strict=True)}
        row.update(kpi_row(groups[key]))
        rows.append(row)
    return rows, kpi_row(total)
