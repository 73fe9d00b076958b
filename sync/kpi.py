"""KPI definitions shared by the appliance and the hub, so a branch and HQ never disagree (ARCHITECTURE.md, "The hub").

Pure: no I/O, no clock, no edge/cloud imports. A ticket's timestamps become a `TicketFact`; facts fold into a
mergeable `Aggregate` (counts, sums, fixed histograms); an aggregate becomes a KPI row. The CSV header (version 1),
the row formatter and the query parameters of `/api/v1/kpis` and `/api/v1/reports/tickets.csv` live here too.

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

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from sync.contract import (
    Event,
    TicketCalled,
    TicketCreated,
    TicketDone,
    TicketRecalled,
    TicketReturned,
    TicketServing,
    TicketTransferred,
    event_type,
)

DEFAULT_TIMEZONE: Final = "Asia/Jakarta"

# Lower edges of the fixed histogram buckets in minutes; the last bucket is [120 min, +∞).
BUCKET_EDGES_MIN: Final[tuple[int, ...]] = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120)
BUCKET_EDGES_S: Final[tuple[float, ...]] = tuple(float(m * 60) for m in BUCKET_EDGES_MIN)
BUCKETS: Final = len(BUCKET_EDGES_MIN)

CSV_VERSION: Final = 1
CSV_HEADER: Final[tuple[str, ...]] = (
    "ticket_id",
    "ticket_number",
    "branch_id",
    "service_id",
    "counter_id",
    "priority",
    "channel",
    "status",
    "created_at",
    "called_at",
    "served_at",
    "completed_at",
    "wait_seconds",
    "service_seconds",
    "outcome",
    "transferred",
    "returned",
    "timezone",
)
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
CHANNELS: Final = frozenset({"walk_in", "kiosk", "web", "mobile", "appointment", "front_desk"})
OPEN_STATUSES: Final = frozenset({"waiting", "called", "serving", "held"})
MAX_RANGE_DAYS: Final = 366
MAX_ID_LENGTH: Final = 64
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


@cache
def zone(name: str | None) -> ZoneInfo:
    """The time zone for a branch's tz name; an unknown or empty name falls back to Asia/Jakarta, never raises."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def zone_name(name: str | None) -> str:
    """The tz name actually used for `name` (the fallback's when it is unknown): what the CSV's timezone column says."""
    return zone(name).key


def local_date_hour(instant: datetime, tz: str | None) -> tuple[str, int]:
    """The branch-local business date (ISO) and hour (0-23) of a UTC instant."""
    local = instant.astimezone(zone(tz))
    return local.date().isoformat(), local.hour


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in seconds, or None when either is missing or the result is negative (out-of-order data)."""
    if start is None or end is None:
        return None
    delta = (end - start).total_seconds()
    return delta if delta >= 0 else None


class TicketFact(msgspec.Struct, frozen=True, kw_only=True):
    """One ticket's figures, derived from its timestamps only: what the projection stores and the CSV prints."""

    ticket_id: str
    ticket_number: str = ""
    branch_id: str = ""
    service_id: str = ""
    counter_id: str | None = None
    priority: int = 0
    channel: str = "walk_in"
    status: str = "waiting"
    created_at: datetime | None = None
    called_at: datetime | None = None  # the FIRST call: later recalls/returns/transfers do not move it
    served_at: datetime | None = None
    completed_at: datetime | None = None
    wait_seconds: float | None = None
    service_seconds: float | None = None
    outcome: str = "waiting"
    transferred: bool = False
    returned: bool = False
    timezone: str = DEFAULT_TIMEZONE
    business_date: str | None = None  # branch-local date of creation (or of the first known timestamp)
    hour: int | None = None
    sla_minutes: int | None = None
    sla_met: bool | None = None
    abandoned: bool = False  # cancelled before ever being called
    closed_date: str | None = None  # branch-local date and hour the ticket was completed (throughput)
    closed_hour: int | None = None
    served_by: str | None = None  # who completed it (the desk's "served today"); never exported


def ticket_fact(
    *,
    ticket_id: str,
    status: str,
    created_at: datetime | None,
    called_at: datetime | None = None,
    served_at: datetime | None = None,
    completed_at: datetime | None = None,
    ticket_number: str = "",
    branch_id: str = "",
    service_id: str = "",
    counter_id: str | None = None,
    priority: int = 0,
    channel: str = "walk_in",
    transferred: bool = False,
    returned: bool = False,
    sla_minutes: int | None = None,
    tz: str | None = DEFAULT_TIMEZONE,
    served_by: str | None = None,
) -> TicketFact:
    """Build a ticket's fact from its timestamps; whatever is missing is simply not measured (never an exception)."""
    wait = seconds_between(created_at, called_at)
    service = seconds_between(served_at, completed_at) if status == "done" else None
    anchor = created_at or called_at or served_at or completed_at
    day, hour = local_date_hour(anchor, tz) if anchor else (None, None)
    closed_day, closed_hour = local_date_hour(completed_at, tz) if completed_at and status == "done" else (None, None)
    sla_met = wait <= sla_minutes * 60 if wait is not None and sla_minutes else None
    return TicketFact(
        ticket_id=ticket_id,
        ticket_number=ticket_number,
        branch_id=branch_id,
        service_id=service_id,
        counter_id=counter_id,
        priority=priority,
        channel=channel,
        status=status,
        created_at=created_at,
        called_at=called_at,
        served_at=served_at,
        completed_at=completed_at,
        wait_seconds=wait,
        service_seconds=service,
        outcome=status,
        transferred=transferred,
        returned=returned,
        timezone=zone_name(tz),
        business_date=day,
        hour=hour,
        sla_minutes=sla_minutes,
        sla_met=sla_met,
        abandoned=status == "cancelled" and called_at is None,
        closed_date=closed_day,
        closed_hour=closed_hour,
        served_by=served_by if status == "done" else None,
    )


class FactSource(msgspec.Struct, frozen=True, kw_only=True):
    """What a ticket's events say about it, folded in any order: the input of `ticket_fact` (no contact data)."""

    ticket_id: str
    ticket_number: str = ""
    branch_id: str = ""
    service_id: str = ""
    counter_id: str | None = None
    priority: int = 0
    channel: str = "walk_in"
    status: str = "waiting"
    status_seq: int = 0  # seq of the event that set `status`: an older event replicated late never overrides it
    service_seq: int = 0  # likewise for `service_id` (the service named by the newest event)
    counter_seq: int = 0  # likewise for `counter_id` (the counter of the newest call/serve/done/no-show)
    created_at: datetime | None = None
    called_at: datetime | None = None
    served_at: datetime | None = None
    completed_at: datetime | None = None
    transferred: bool = False
    returned: bool = False
    sla_minutes: int | None = None  # of the service the ticket queued for (where its wait is measured)
    served_by: str | None = None  # the actor of the (latest) completion


_STATUS_OF_EVENT: Final[Mapping[str, str]] = {
    "ticket.created": "waiting",
    "ticket.called": "called",
    "ticket.serving": "serving",
    "ticket.done": "done",
    "ticket.cancelled": "cancelled",
    "ticket.held": "held",
    "ticket.unheld": "waiting",
    "ticket.transferred": "waiting",
    "ticket.no_show": "no_show",
    "ticket.returned": "waiting",
}


def _earliest(a: datetime | None, b: datetime) -> datetime:
    """The earlier of a known and a possibly missing instant."""
    return b if a is None or b < a else a


def _latest(a: datetime | None, b: datetime) -> datetime:
    """The later of a known and a possibly missing instant."""
    return b if a is None or b > a else a


def fold_event(
    source: FactSource | None, event: Event, sla_minutes_of: Callable[[str], int | None]
) -> FactSource | None:
    """A ticket's fact source after one of its events (None for events about no ticket); total over any order.

    The first call stays the first (recalls, returns and transfers never move it); serving and completion keep their
    latest instant; the status follows the event with the highest seq. `sla_minutes_of(service_id)` reads the
    branch configuration in force, so the SLA is the one of the service the ticket queued for.
    """
    if event.ticket_id is None:
        return None
    kind = event_type(event)
    if kind not in _STATUS_OF_EVENT and kind != "ticket.recalled":
        return source
    src = source or FactSource(ticket_id=event.ticket_id, branch_id=event.branch_id)
    changes: dict[str, object] = {}
    at = event.occurred_at
    match event:
        case TicketCreated():
            changes.update(
                ticket_number=event.ticket_number,
                priority=event.priority,
                channel=event.channel,
                created_at=at,
                sla_minutes=sla_minutes_of(event.service_id),
            )
        case TicketCalled() | TicketRecalled():
            changes.update(called_at=_earliest(src.called_at, at))
        case TicketServing():
            changes.update(served_at=_latest(src.served_at, at))
        case TicketDone():
            if src.completed_at is None or at >= src.completed_at:
                changes.update(completed_at=at, served_by=event.actor)
        case TicketTransferred():
            changes["transferred"] = True
        case TicketReturned():
            changes["returned"] = True
        case _:
            pass
    counter_id = getattr(event, "counter_id", None)
    if counter_id and event.seq >= src.counter_seq:
        changes.update(counter_id=counter_id, counter_seq=event.seq)
    if event.seq >= src.service_seq:  # every ticket event names the ticket's service at that moment
        changes.update(service_id=getattr(event, "service_id", src.service_id), service_seq=event.seq)
    if kind in _STATUS_OF_EVENT and event.seq >= src.status_seq:
        changes.update(status=_STATUS_OF_EVENT[kind], status_seq=event.seq)
    return msgspec.structs.replace(src, **changes)


def fact_of(source: FactSource, tz: str | None) -> TicketFact:
    """The fact of a folded source in the branch's time zone."""
    return ticket_fact(
        ticket_id=source.ticket_id,
        status=source.status,
        created_at=source.created_at,
        called_at=source.called_at,
        served_at=source.served_at,
        completed_at=source.completed_at,
        ticket_number=source.ticket_number,
        branch_id=source.branch_id,
        service_id=source.service_id,
        counter_id=source.counter_id,
        priority=source.priority,
        channel=source.channel,
        transferred=source.transferred,
        returned=source.returned,
        sla_minutes=source.sla_minutes,
        tz=tz,
        served_by=source.served_by,
    )


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


# --- CSV ---------------------------------------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """Defuse spreadsheet formula injection: a cell starting with = + - @ (or tab/CR) gets a leading apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def rfc3339_local(instant: datetime | None, tz: str | None) -> str:
    """An instant as RFC 3339 with the branch zone's offset (seconds precision), empty when missing."""
    if instant is None:
        return ""
    return instant.astimezone(zone(tz)).isoformat(timespec="seconds")


def _seconds_cell(value: float | None) -> str:
    """A duration cell: seconds with millisecond precision, empty when not measured."""
    return "" if value is None else f"{value:.3f}"


def csv_cells(fact: TicketFact) -> list[str]:
    """The cells of a fact's CSV row in `CSV_HEADER` order, neutralised (no contact data ever)."""
    tz = fact.timezone
    cells = [
        fact.ticket_id,
        fact.ticket_number,
        fact.branch_id,
        fact.service_id,
        fact.counter_id or "",
        str(fact.priority),
        fact.channel,
        fact.status,
        rfc3339_local(fact.created_at, tz),
        rfc3339_local(fact.called_at, tz),
        rfc3339_local(fact.served_at, tz),
        rfc3339_local(fact.completed_at, tz),
        _seconds_cell(fact.wait_seconds),
        _seconds_cell(fact.service_seconds),
        fact.outcome,
        "true" if fact.transferred else "false",
        "true" if fact.returned else "false",
        tz,
    ]
    return [neutralise(c) for c in cells]


def csv_line(cells: Sequence[str], sep: str = ",") -> str:
    """One RFC 4180 record (CRLF-terminated); cells holding the separator, a quote or a line break are quoted."""
    line = sep.join(cells)
    if line.count(sep) == len(cells) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line + "\r\n"  # the usual record: nothing to quote (checked on the joined line, at C speed)
    out = []
    for cell in cells:
        if sep in cell or '"' in cell or "\n" in cell or "\r" in cell:
            out.append('"' + cell.replace('"', '""') + '"')
        else:
            out.append(cell)
    return sep.join(out) + "\r\n"


def csv_header_line(sep: str = ",") -> str:
    """The version-1 header record."""
    return csv_line(CSV_HEADER, sep)


def csv_row(fact: TicketFact, sep: str = ",") -> str:
    """A fact as one CSV record."""
    return csv_line(csv_cells(fact), sep)


# --- query parameters ----------------------------------------------------------------------------------------------


class KpiQueryError(ValueError):
    """A query parameter that cannot be used; `field` names it so the API can say which (problem+json 400)."""

    code = "invalid_query"

    def __init__(self, field: str, message: str) -> None:
        """Keep the parameter name beside the message."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class KpiQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Validated filters shared by `/kpis` and the CSV export: local dates inclusive, optional dimensions."""

    date_from: date
    date_to: date
    service_id: str | None = None
    priority: int | None = None
    channel: str | None = None
    counter_id: str | None = None
    group_by: tuple[GroupBy, ...] = ()
    sep: str = ","

    def days(self) -> list[str]:
        """The local dates covered, ISO, in order."""
        n = (self.date_to - self.date_from).days
        return [(self.date_from + timedelta(days=i)).isoformat() for i in range(n + 1)]

    def matches(self, fact: TicketFact) -> bool:
        """Whether a fact passes the filters (its creation's local date in range and every given dimension)."""
        day = fact.business_date
        if day is None or not (self.date_from.isoformat() <= day <= self.date_to.isoformat()):
            return False
        if self.service_id is not None and fact.service_id != self.service_id:
            return False
        if self.priority is not None and fact.priority != self.priority:
            return False
        if self.channel is not None and fact.channel != self.channel:
            return False
        return self.counter_id is None or fact.counter_id == self.counter_id


def _date_param(params: Mapping[str, str], name: str, default: date) -> date:
    """A YYYY-MM-DD parameter or its default."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise KpiQueryError(name, f"expected a date YYYY-MM-DD, got {raw[:40]!r}") from None


def _id_param(params: Mapping[str, str], name: str) -> str | None:
    """An identifier parameter: short, printable, no separators; empty means absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_ID_LENGTH or not raw.isprintable() or any(c in raw for c in ",;\"'<>"):
        raise KpiQueryError(name, "not a valid identifier")
    return raw


def parse_query(params: Mapping[str, str], today: date, extra: Iterable[str] = ()) -> KpiQuery:
    """Validate the query parameters of the KPI API and the CSV export; raise `KpiQueryError` naming the bad one.

    `today` is the branch-local date (the default range); `extra` names parameters the caller reads itself (the hub's
    `tenant`, `branch_id`), so any other unknown parameter is refused rather than silently ignored.
    """
    known = {"from", "to", "service_id", "priority", "channel", "counter_id", "group_by", "sep", *extra}
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise KpiQueryError(unknown[0], f"unknown parameter (known: {', '.join(sorted(known))})")
    date_to = _date_param(params, "to", today)
    date_from = _date_param(params, "from", date_to if "to" in params else today)
    if date_from > date_to:
        raise KpiQueryError("from", "must not be after 'to'")
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise KpiQueryError("to", f"range longer than {MAX_RANGE_DAYS} days")
    priority: int | None = None
    raw_priority = params.get("priority")
    if raw_priority not in (None, ""):
        if not (raw_priority.isdigit() and len(raw_priority) == 1):
            raise KpiQueryError("priority", "expected an integer 0..9")
        priority = int(raw_priority)
    channel = params.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise KpiQueryError("channel", f"expected one of {', '.join(sorted(CHANNELS))}")
    groups: list[GroupBy] = []
    for piece in (params.get("group_by") or "").split(","):
        part = piece.strip()
        if not part:
            continue
        if part not in GROUP_BY:
            raise KpiQueryError("group_by", f"expected one or more of {'|'.join(GROUP_BY)}, comma-separated")
        if part in groups:
            raise KpiQueryError("group_by", f"{part!r} given twice")
        groups.append(part)
    sep = params.get("sep") or ","
    if sep not in (",", ";"):
        raise KpiQueryError("sep", "expected ',' or ';'")
    return KpiQuery(
        date_from=date_from,
        date_to=date_to,
        service_id=_id_param(params, "service_id"),
        priority=priority,
        channel=channel,
        counter_id=_id_param(params, "counter_id"),
        group_by=tuple(groups),
        sep=sep,
    )
