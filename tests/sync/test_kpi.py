"""The shared KPI definitions: facts from timestamps, mergeable aggregates, percentiles, CSV contract, query parsing."""

from __future__ import annotations

import contextlib
import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.contract import (
    Event,
    TicketCalled,
    TicketCancelled,
    TicketCreated,
    TicketDone,
    TicketNoShow,
    TicketRecalled,
    TicketReturned,
    TicketServing,
    TicketTransferred,
)
from sync.kpi import (
    BUCKET_EDGES_S,
    BUCKETS,
    CSV_HEADER,
    KPI_FIELDS,
    Aggregate,
    KpiQueryError,
    aggregate,
    bucket_of,
    csv_cells,
    csv_header_line,
    csv_row,
    exact_percentile,
    fact_of,
    fold_event,
    kpi_row,
    kpi_rows,
    merge,
    neutralise,
    parse_query,
    ticket_fact,
)

GOLDEN = Path(__file__).parent / "golden" / "tickets_csv_header_v1.txt"
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)  # 08:00 in Jakarta
STATUSES = ("waiting", "called", "serving", "held", "done", "cancelled", "no_show")

maybe_instant = st.none() | st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)
durations = st.floats(min_value=0, max_value=6 * 3600, allow_nan=False)


@st.composite
def facts(draw: st.DrawFn) -> object:
    """A ticket fact from arbitrary (possibly missing or out-of-order) timestamps."""
    return ticket_fact(
        ticket_id=draw(st.uuids()).hex,
        status=draw(st.sampled_from(STATUSES)),
        created_at=draw(maybe_instant),
        called_at=draw(maybe_instant),
        served_at=draw(maybe_instant),
        completed_at=draw(maybe_instant),
        branch_id=draw(st.sampled_from(("b1", "b2"))),
        service_id=draw(st.sampled_from(("s1", "s2", "=cmd"))),
        counter_id=draw(st.none() | st.sampled_from(("c1", "c2"))),
        priority=draw(st.integers(0, 9)),
        sla_minutes=draw(st.none() | st.integers(1, 120)),
        tz=draw(st.sampled_from(("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura", "Not/AZone", None))),
    )


def aggregates() -> st.SearchStrategy[Aggregate]:
    """An aggregate of a few arbitrary facts."""
    return st.lists(facts(), max_size=8).map(aggregate)  # type: ignore[arg-type]


def comparable(agg: Aggregate) -> tuple[object, ...]:
    """An aggregate's content with float sums rounded (float addition is associative only up to rounding)."""
    return (
        agg.tickets,
        agg.done,
        agg.no_shows,
        agg.cancelled,
        agg.abandoned,
        agg.wait.n,
        round(agg.wait.total_s, 3),
        agg.wait.min_s,
        agg.wait.max_s,
        agg.wait.hist,
        agg.service.n,
        round(agg.service.total_s, 3),
        agg.service.hist,
        agg.sla_measured,
        agg.sla_met,
        agg.hours,
    )


def test_csv_header_matches_the_golden_file() -> None:
    """The version-1 header is fixed: any change is a new version, never an edit."""
    assert csv_header_line() == GOLDEN.read_text(encoding="utf-8").rstrip("\n") + "\r\n"
    assert ",".join(CSV_HEADER) == GOLDEN.read_text(encoding="utf-8").strip()


def test_fact_from_timestamps() -> None:
    """Wait, service, SLA and the branch-local date/hour follow the shared definitions."""
    fact = ticket_fact(
        ticket_id="t1",
        status="done",
        created_at=T0,
        called_at=T0 + timedelta(minutes=12),
        served_at=T0 + timedelta(minutes=13),
        completed_at=T0 + timedelta(minutes=20),
        sla_minutes=10,
        tz="Asia/Jakarta",
    )
    assert fact.wait_seconds == 720
    assert fact.service_seconds == 420
    assert fact.sla_met is False
    assert (fact.business_date, fact.hour) == ("2026-12-04", 8)
    assert (fact.closed_date, fact.closed_hour) == ("2026-12-04", 8)
    assert fact.outcome == "done"


def test_missing_and_out_of_order_timestamps_are_not_measured() -> None:
    """Called but never started, or called 'before' creation: counted, not measured."""
    called_only = ticket_fact(ticket_id="t", status="no_show", created_at=T0, called_at=T0 + timedelta(minutes=3))
    assert called_only.wait_seconds == 180
    assert called_only.service_seconds is None
    skewed = ticket_fact(ticket_id="t", status="done", created_at=T0, called_at=T0 - timedelta(seconds=5))
    assert skewed.wait_seconds is None
    assert skewed.sla_met is None
    nothing = ticket_fact(ticket_id="t", status="waiting", created_at=None)
    assert nothing.business_date is None
    row = kpi_row(aggregate([called_only, skewed, nothing]))
    assert row["tickets"] == 3
    assert row["no_show_rate"] == 0.5
    assert row["service_avg_s"] is None


def test_empty_row_is_all_null_but_counts() -> None:
    """Nothing to measure is null, never a division by zero."""
    row = kpi_row(Aggregate())
    assert tuple(row) == KPI_FIELDS
    assert row["tickets"] == 0
    assert all(row[k] is None for k in KPI_FIELDS if k not in {"tickets", "done", "no_shows", "cancelled"})


def test_abandoned_is_cancelled_before_a_call() -> None:
    """Cancelled while waiting counts as abandoned; cancelled after a call does not."""
    waiting = ticket_fact(ticket_id="a", status="cancelled", created_at=T0)
    after_call = ticket_fact(ticket_id="b", status="cancelled", created_at=T0, called_at=T0 + timedelta(minutes=1))
    agg = aggregate([waiting, after_call])
    assert (agg.cancelled, agg.abandoned) == (2, 1)


def test_throughput_counts_hours_with_activity() -> None:
    """Done per open hour: two done in one hour and one in the next → 1.5/h."""
    done = [
        ticket_fact(
            ticket_id=str(i),
            status="done",
            created_at=T0 + timedelta(minutes=m),
            called_at=T0 + timedelta(minutes=m + 1),
            served_at=T0 + timedelta(minutes=m + 1),
            completed_at=T0 + timedelta(minutes=m + 2),
        )
        for i, m in enumerate((0, 10, 70))
    ]
    assert kpi_row(aggregate(done))["throughput_per_hour"] == 1.5


def test_exact_percentile_is_percentile_cont() -> None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    assert exact_percentile([10.0, 20.0], 0.5) == 15.0
    assert exact_percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == pytest.approx(9.1)
    assert exact_percentile([], 0.5) is None


def test_bucket_edges() -> None:
    """Each edge starts its bucket; the last bucket is open-ended."""
    assert BUCKETS == 14
    assert bucket_of(0) == 0
    assert bucket_of(59.9) == 0
    assert bucket_of(60) == 1
    assert bucket_of(7199) == 12
    assert bucket_of(10**6) == 13


def test_grouped_rows_carry_their_keys() -> None:
    """group_by adds its key to each row, rows sorted, totals over everything."""
    fs = [
        ticket_fact(ticket_id="1", status="done", created_at=T0, service_id="b"),
        ticket_fact(ticket_id="2", status="waiting", created_at=T0, service_id="a"),
    ]
    rows, totals = kpi_rows(fs, ("day", "service"))
    assert [(r["day"], r["service_id"]) for r in rows] == [("2026-12-04", "a"), ("2026-12-04", "b")]
    assert totals["tickets"] == 2


@settings(max_examples=150, deadline=None)
@given(aggregates(), aggregates(), aggregates())
def test_merge_is_associative_and_commutative(a: Aggregate, b: Aggregate, c: Aggregate) -> None:
    """Rollups can be combined in any order and grouping (hours, services, branches)."""
    assert comparable(merge(a, b)) == comparable(merge(b, a))
    assert comparable(merge(merge(a, b), c)) == comparable(merge(a, merge(b, c)))
    assert kpi_row(merge(merge(a, b), c)) == kpi_row(merge(a, merge(b, c)))


@settings(max_examples=200, deadline=None)
@given(st.lists(durations, min_size=1, max_size=60), st.sampled_from((0.0, 0.1, 0.5, 0.9, 0.99, 1.0)))
def test_histogram_percentile_within_one_bucket_of_exact(values: list[float], q: float) -> None:
    """Merged percentiles land inside the buckets of the two closest ranks of the exact answer."""
    one = aggregate([])
    for v in values:
        one.wait.add(v)
    merged = merge(one, Aggregate())
    assert merged.wait.raw is None
    estimate = merged.wait.percentile(q)
    ordered = sorted(values)
    exact = exact_percentile(ordered, q)
    assert estimate is not None
    assert exact is not None
    rank = q * (len(ordered) - 1)
    low = bucket_of(ordered[int(rank)])
    high = bucket_of(ordered[min(int(rank) + 1, len(ordered) - 1)])
    lo_edge = BUCKET_EDGES_S[low]
    hi_edge = BUCKET_EDGES_S[high + 1] if high + 1 < BUCKETS else max(ordered)
    assert lo_edge - 1e-9 <= estimate <= hi_edge + 1e-9
    assert min(ordered) - 1e-9 <= estimate <= max(ordered) + 1e-9


@settings(max_examples=300, deadline=None)
@given(st.lists(facts(), max_size=10))
def test_missing_timestamps_never_crash(fs: list[object]) -> None:
    """Any combination of missing or shuffled timestamps yields a fact, a row and a CSV record."""
    rows, totals = kpi_rows(fs, ("day", "hour", "service", "counter", "branch"))  # type: ignore[arg-type]
    assert totals["tickets"] == len(fs)
    assert sum(r["tickets"] for r in rows) == len(fs)  # type: ignore[misc]
    for fact in fs:
        record = csv_row(fact)  # type: ignore[arg-type]
        assert len(next(csv.reader([record]))) == len(CSV_HEADER)


@given(st.text(max_size=30), st.sampled_from((",", ";")))
def test_csv_cells_neutralised_and_round_trip(text: str, sep: str) -> None:
    """A hostile cell never starts a formula and survives RFC 4180 quoting with either separator."""
    fact = ticket_fact(ticket_id=text, status="waiting", created_at=T0, service_id="@SUM(A1)", counter_id="-1")
    record = csv_row(fact, sep)
    cells = next(csv.reader([record.removesuffix("\r\n")], delimiter=sep))
    assert len(cells) == len(CSV_HEADER)
    assert cells[0] == neutralise(text)
    assert cells[3] == "'@SUM(A1)"
    assert cells[4] == "'-1"
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_csv_times_in_branch_zone() -> None:
    """Times are RFC 3339 with the branch zone's offset; durations in seconds."""
    fact = ticket_fact(
        ticket_id="t", status="serving", created_at=T0, called_at=T0 + timedelta(seconds=90.5), tz="Asia/Makassar"
    )
    cells = dict(zip(CSV_HEADER, csv_cells(fact), strict=True))
    assert cells["created_at"] == "2026-12-04T09:00:00+08:00"
    assert cells["wait_seconds"] == "90.500"
    assert cells["service_seconds"] == ""
    assert cells["timezone"] == "Asia/Makassar"


def test_query_defaults_and_values() -> None:
    """No parameters: today, ungrouped; values are parsed."""
    today = date(2026, 12, 4)
    q = parse_query({}, today)
    assert (q.date_from, q.date_to, q.group_by) == (today, today, ())
    q = parse_query(
        {"from": "2026-12-01", "to": "2026-12-04", "priority": "2", "channel": "kiosk", "group_by": "day,service"},
        today,
    )
    assert q.days() == ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]
    assert (q.priority, q.channel, q.group_by) == (2, "kiosk", ("day", "service"))
    assert parse_query({"tenant": "t1"}, today, extra=("tenant",)).date_from == today


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-12-05", "to": "2026-12-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-12-01"}, "to"),
        ({"priority": "high"}, "priority"),
        ({"channel": "fax"}, "channel"),
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day,day"}, "group_by"),
        ({"service_id": "a;b"}, "service_id"),
        ({"sep": "|"}, "sep"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_query_errors_name_the_parameter(params: dict[str, str], field: str) -> None:
    """Each bad parameter is a clear, typed error naming it (the API turns it into a 400)."""
    with pytest.raises(KpiQueryError) as caught:
        parse_query(params, date(2026, 12, 4))
    assert caught.value.field == field


@given(st.dictionaries(st.sampled_from(("from", "to", "priority", "channel", "group_by", "sep", "x")), st.text()))
def test_query_parsing_is_total(params: dict[str, str]) -> None:
    """Any input is either a query or a KpiQueryError, never another exception."""
    with contextlib.suppress(KpiQueryError):
        parse_query(params, date(2026, 12, 4))


def _event(kind: str, seq: int, at: datetime) -> Event:
    """One ticket event of a kind, for ticket t1, with the fields the fold reads."""
    env: dict[str, Any] = {
        "event_id": f"e{seq}",
        "occurred_at": at,
        "actor": "a",
        "ticket_id": "t1",
        "branch_id": "b1",
        "seq": seq,
    }
    svc: dict[str, Any] = {"service_id": "s2" if seq % 2 else "s1"}
    match kind:
        case "created":
            return TicketCreated(**env, **svc, ticket_number="A001", seq_no=1, business_date="2026-12-04", order=1)
        case "called":
            return TicketCalled(**env, **svc, counter_id=f"c{seq % 3}")
        case "recalled":
            return TicketRecalled(**env, **svc, counter_id="c1", recall_count=1)
        case "serving":
            return TicketServing(**env, **svc, counter_id=f"c{seq % 3}")
        case "done":
            return TicketDone(**env, **svc, counter_id="c1")
        case "cancelled":
            return TicketCancelled(**env, **svc, from_status="waiting")
        case "no_show":
            return TicketNoShow(**env, **svc)
        case "returned":
            return TicketReturned(**env, **svc, order=2, returns=1)
        case _:
            return TicketTransferred(
                **env, **svc, from_service="s1", to_service=svc["service_id"], order=3, from_status="waiting"
            )


KINDS = ("called", "recalled", "serving", "done", "cancelled", "no_show", "returned", "transferred")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 7200)), max_size=8),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_fold_is_independent_of_arrival_order(steps: list[tuple[str, int]], created: bool, rnd: object) -> None:
    """Events replicated out of order (or with the creation missing) fold to the same fact as in seq order."""
    kinds = (["created"] if created else []) + [k for k, _ in steps]
    offsets = [0] + [o for _, o in steps] if created else [o for _, o in steps]
    events = [_event(k, i + 1, T0 + timedelta(seconds=o)) for i, (k, o) in enumerate(zip(kinds, offsets, strict=True))]
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]

    def fold(evs: list[Event]) -> object:
        src = None
        for e in evs:
            src = fold_event(src, e, lambda _sid: 10)
        return None if src is None else fact_of(src, "Asia/Jakarta")

    in_order = fold(events)
    assert in_order == fold(shuffled)
    if in_order is not None:
        csv_row(in_order)  # type: ignore[arg-type]


def test_fold_keeps_the_first_call() -> None:
    """A recall and a return do not move the first call: the wait is to the first call."""
    events = [
        _event("created", 2, T0),
        _event("called", 3, T0 + timedelta(minutes=4)),
        _event("returned", 4, T0 + timedelta(minutes=6)),
        _event("called", 5, T0 + timedelta(minutes=9)),
        _event("serving", 6, T0 + timedelta(minutes=10)),
        _event("done", 7, T0 + timedelta(minutes=15)),
    ]
    src = None
    for e in events:
        src = fold_event(src, e, {"s1": 3}.get)
    assert src is not None
    fact = fact_of(src, "Asia/Jakarta")
    assert (fact.wait_seconds, fact.service_seconds, fact.status, fact.returned) == (240, 300, "done", True)
    assert (fact.sla_minutes, fact.sla_met) == (3, False)
