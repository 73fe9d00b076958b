"""Facts and rollups at the hub: the incremental upkeep (deltas per batch) equals folding every fact at once, whatever
the events and their batching (Hypothesis); real branch logs on SQLite and PostgreSQL give facts equal to a rebuild
from the log, and rollup totals equal to the facts' own KPIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.analytics.facts import DAILY_MEASURES, MEASURES, Settings, contribution, fold_batch, rollup_deltas
from cloud.analytics.queries import Scope, kpis
from cloud.analytics.tables import daily, facts, rollups
from cloud.apply import Incoming, apply_batch
from cloud.resync import resync_branch
from cloud.store import create_store_engine
from sync import kpi
from sync.contract import (
    Event,
    TicketCalled,
    TicketCancelled,
    TicketCreated,
    TicketDone,
    TicketHeld,
    TicketNoShow,
    TicketRecalled,
    TicketReturned,
    TicketServing,
    TicketTransferred,
    TicketUnheld,
)
from sync.relay import Outgoing
from tests.cloud.branch_events import TENANT, make_branch_events, subject

BRANCH = "jkt-sudirman"
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


def make_event(kind: str, ticket: str, seq: int, at: datetime) -> Event:
    """A ticket event of `kind` with the fields its type needs (pure, no appliance)."""
    base: dict[str, Any] = {"event_id": f"e{seq}", "occurred_at": at, "actor": "t", "ticket_id": ticket,
                            "branch_id": BRANCH, "seq": seq}  # fmt: skip
    if kind == "created":
        return TicketCreated(**base, service_id="s1", ticket_number="A001", seq_no=1, business_date="2026-12-04",
                             order=seq, priority=seq % 2, channel="kiosk")  # fmt: skip
    if kind == "called":
        return TicketCalled(**base, service_id="s1", counter_id=f"c{seq % 3}")
    if kind == "recalled":
        return TicketRecalled(**base, service_id="s1", counter_id="c1", recall_count=1)
    if kind == "serving":
        return TicketServing(**base, service_id="s1", counter_id="c1")
    if kind == "done":
        return TicketDone(**base, service_id="s1", counter_id="c1")
    if kind == "cancelled":
        return TicketCancelled(**base, service_id="s1", from_status="waiting")
    if kind == "held":
        return TicketHeld(**base, service_id="s1", from_status="called")
    if kind == "unheld":
        return TicketUnheld(**base, service_id="s1", order=seq)
    if kind == "transferred":
        return TicketTransferred(**base, from_service="s1", to_service="s2", service_id="s2", order=seq,
                                 from_status="serving")  # fmt: skip
    if kind == "no_show":
        return TicketNoShow(**base, service_id="s1")
    return TicketReturned(**base, service_id="s1", order=seq, returns=1)


KINDS = ("created", "called", "recalled", "serving", "done", "cancelled", "held", "unheld", "transferred", "no_show",
         "returned")  # fmt: skip
# Any order of any events for a few tickets, with clocks that may run backwards (minutes from T0, negative allowed).
event_lists = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(("t1", "t2", "t3")), st.integers(-30, 600)), max_size=30
)


def totals(rows: dict[tuple[Any, ...], dict[str, float]]) -> dict[tuple[Any, ...], dict[str, float]]:
    """Rows without all-zero measures, measures rounded (float sums)."""
    kept = {}
    for key, row in rows.items():
        cleaned = {m: round(v, 6) for m, v in row.items() if round(v, 6)}
        if cleaned:
            kept[key] = cleaned
    return kept


@settings(max_examples=200, deadline=None)
@given(event_lists, st.lists(st.integers(1, 5), max_size=10))
def test_incremental_rollups_equal_folding_all_facts_at_once(
    items: list[tuple[str, str, int]], cuts: list[int]
) -> None:
    """Batches of any size, events in any order and with any clock: never an error, and the sum of each batch's
    deltas is exactly the contribution of the final facts."""
    events = [make_event(kind, ticket, seq, T0 + timedelta(minutes=m)) for seq, (kind, ticket, m) in
              enumerate(items, 1)]  # fmt: skip
    settings_ = Settings("Asia/Makassar", {"s1": 5})
    stored: dict[str, dict[str, Any]] = {}
    summed: dict[tuple[Any, ...], dict[str, float]] = {}
    position = 0
    for size in [*cuts, len(events)]:
        batch, position = events[position : position + size], position + size
        after, _ = fold_batch(stored, batch, settings_)
        for key, row in rollup_deltas((stored.get(t), f) for t, f in after.items()).items():
            target = summed.setdefault(key, {})
            for name, value in row.items():
                target[name] = target.get(name, 0) + value
        stored.update(after)
    expected: dict[tuple[Any, ...], dict[str, float]] = {}
    for fact in stored.values():
        for key, values in contribution(fact):
            target = expected.setdefault(key, {})
            for name, value in values.items():
                target[name] = target.get(name, 0) + value
        assert fact["wait_seconds"] is None or fact["wait_seconds"] >= 0
        assert set(contribution(fact)[0][1]) <= set(MEASURES)
    assert totals(summed) == totals(expected)


@pytest.fixture(scope="module")
def branch_log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """A real branch log (config.applied, tickets, calls, a completion) from the appliance's own writer."""
    return make_branch_events(tmp_path_factory.mktemp("edge"), tickets=30)


def table_rows(engine: sa.Engine, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of a table, sorted, zero-count rollup rows dropped."""
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    if table is rollups:
        found = [r for r in found if any(r[m] for m in MEASURES)]
    if table is daily:
        found = [r for r in found if any(r[m] for m in DAILY_MEASURES)]
    return sorted(found, key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def test_facts_from_real_log_equal_a_rebuild_and_rollups_agree(store_url: str, branch_log: list[Outgoing]) -> None:
    """Applied in uneven batches, the facts are one per ticket; a resync from seq 1 (rebuild from the stored log) gives
    the same facts and rollups; the rollups' totals equal the exact KPIs of the facts."""
    engine = create_store_engine(store_url)
    incoming = [Incoming(subject(), o.payload) for o in branch_log]
    for start, end in ((0, 3), (3, 17), (17, len(incoming))):
        assert not apply_batch(engine, incoming[start:end]).problems
    built_facts, built_rollups, built_daily = (table_rows(engine, t) for t in (facts, rollups, daily))
    assert len(built_facts) == 30
    assert {f["timezone"] for f in built_facts} == {"Asia/Jakarta"}
    resync_branch(engine, TENANT, BRANCH, len(branch_log) + 1)
    assert table_rows(engine, facts) == built_facts
    assert table_rows(engine, rollups) == built_rollups
    assert table_rows(engine, daily) == built_daily
    day = built_facts[0]["local_date"]
    query = kpi.parse_query({"from": day, "to": day, "group_by": "service"}, datetime.now(UTC).date())
    before = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    two_days = kpi.parse_query({"from": before, "to": day, "group_by": "service"}, datetime.now(UTC).date())
    with engine.connect() as conn:
        exact, is_exact = kpis(conn, Scope(frozenset({TENANT}), BRANCH), query)
        merged, merged_exact = kpis(conn, Scope(frozenset({TENANT})), two_days)
    assert is_exact
    assert not merged_exact
    counted = ("tickets", "done", "no_shows", "cancelled", "wait_avg_s", "service_avg_s", "sla_met_pct",
               "throughput_per_hour")  # fmt: skip
    assert [{k: r[k] for k in ("service_id", *counted)} for r in exact["rows"]] == [
        {k: r[k] for k in ("service_id", *counted)} for r in merged["rows"]
    ]
    assert exact["totals"]["tickets"] == 30
    engine.dispose()


def test_a_ticket_whose_creation_is_missing_is_counted_where_it_can_be(tmp_path: Path) -> None:
    """A call, a start and a completion without the ticket.created (a resync that kept only later events): a fact
    with no wait (not measurable) but its service time, dated by its first event — no error."""
    events = [make_event(kind, "t9", seq, T0 + timedelta(minutes=seq)) for seq, kind in
              enumerate(("called", "serving", "done"), 1)]  # fmt: skip
    fact = fold_batch({}, events, Settings())[0]["t9"]
    assert fact["wait_seconds"] is None
    assert fact["service_seconds"] == 60.0
    assert fact["local_date"] == "2026-12-04"
    assert fact["local_hour"] == 8
    assert fact["status"] == "done"
