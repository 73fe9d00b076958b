"""Ticket facts and rollups at the hub: applied events → one fact row per ticket, in the consumer's transaction
(issue 13, US-ANALYT-001).

Per applied batch of one branch, a fixed number of statements whatever its size: read the branch's settings and the
touched tickets' current facts (one `IN` query per 1,000 tickets), fold the events in memory (`fold`, pure), then
write the facts (one upsert, each with its export record rendered) and the rollup deltas (one additive upsert: the
old contribution of each touched ticket is subtracted, its new one added). The KPI arithmetic (wait, service, SLA,
buckets, hours open) is `sync.kpi`'s — the module the appliance uses — so a branch-day's figures agree at both ends.

Timestamps follow the shared fold (`sync.kpi.fold_event`): `called_at` is the first call (recalls, returns and
transfers do not move it), `served_at` the latest start of serving, `completed_at` the latest `ticket.done`; a clock
running backwards or a ticket whose `ticket.created` is missing yields a fact with what is known (not
measured where it cannot be), never an error. `rebuild` folds the stored log again and gives the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.analytics.tables import (
    ACTIVE_HOURS,
    SERVICE_BUCKETS,
    WAIT_BUCKETS,
    branch_days,
    branch_settings,
    counters,
    daily,
    facts,
    rollups,
)
from cloud.store import branch_key, probe_rows, write_many
from sync import kpi
from sync.contract import (
    ConfigApplied,
    CounterPresence,
    Event,
    TicketCreated,
)

CHUNK = 1000
ROLLUP_KEY = ("local_date", "local_hour", "service_id", "priority", "channel", "counter_id")
MEASURES = ("tickets", "done", "no_shows", "cancelled", "abandoned", "active", "waited", "wait_sum", "served",
            "service_sum", "sla_measured", "sla_met", *WAIT_BUCKETS, *SERVICE_BUCKETS)  # fmt: skip


class Settings:
    """A branch's time zone and SLA minutes per service (from its newest `config.applied`)."""

    def __init__(self, timezone: str = kpi.DEFAULT_TIMEZONE, sla: dict[str, int] | None = None) -> None:
        self.timezone = timezone or kpi.DEFAULT_TIMEZONE
        self.sla = sla or {}
        self.changed = False

    def row(self) -> dict[str, Any]:
        """The `analytics_branch_settings` columns."""
        return {"timezone": self.timezone, "sla_minutes": json.dumps(self.sla, sort_keys=True)}


_SETTINGS = sa.select(branch_settings).where(
    branch_settings.c.tenant_id == sa.bindparam("s_tenant"), branch_settings.c.branch_id == sa.bindparam("s_branch")
)  # built once: read for every applied batch


def load_settings(conn: Connection, tenant: str, branch_id: str) -> Settings:
    """The branch's settings row, or the defaults (Asia/Jakarta; no SLA known → SLA not measured)."""
    row = conn.execute(_SETTINGS, {"s_tenant": tenant, "s_branch": branch_id}).one_or_none()
    return Settings() if row is None else Settings(row.timezone, json.loads(row.sla_minutes))


def _settings_from(config: ConfigApplied) -> Settings:
    settings = Settings(config.config.timezone, {s.id: s.sla_minutes for s in config.config.services})
    settings.changed = True
    return settings


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_SOURCE_TIMES = ("created_at", "called_at", "served_at", "completed_at")
_SOURCE_FIELDS = ("ticket_number", "service_id", "counter_id", "priority", "channel", "status", "transferred",
                  "returned", "sla_minutes")  # fmt: skip


def _source(fact: Mapping[str, Any]) -> kpi.FactSource:
    """A stored fact as the shared fold's input (the hub applies in seq order: stored seqs count as 0)."""
    values: dict[str, Any] = {k: fact[k] for k in _SOURCE_FIELDS}
    values.update({k: _at(fact[k]) for k in _SOURCE_TIMES})
    return kpi.FactSource(ticket_id=fact["ticket_id"], **values)


def _row(
    source: kpi.FactSource, previous: Mapping[str, Any] | None, event: Event, settings: Settings
) -> dict[str, Any]:
    """The fact row for a folded source (timezone fixed at creation, first-seen time kept)."""
    row: dict[str, Any] = {"ticket_id": source.ticket_id, **{k: getattr(source, k) for k in _SOURCE_FIELDS}}
    row.update({k: (v.isoformat() if (v := getattr(source, k)) is not None else None) for k in _SOURCE_TIMES})
    row["seen_at"] = previous["seen_at"] if previous else event.occurred_at.isoformat()
    keep_zone = previous is not None and not isinstance(event, TicketCreated)
    row["timezone"] = previous["timezone"] if keep_zone and previous else settings.timezone
    return row


def fold(fact: dict[str, Any] | None, event: Event, settings: Settings) -> dict[str, Any]:
    """The fact's timestamps and dimensions after one more of its ticket's events, by the shared fold
    (`sync.kpi.fold_event`, the appliance's own); pure: `fact` is not modified, `derive` measures it."""
    source = kpi.fold_event(_source(fact) if fact else None, event, settings.sla.get)
    assert source is not None  # only ticket events are folded
    return _row(source, fact, event, settings)


def fold_batch(
    before: Mapping[str, dict[str, Any]], applied: Sequence[Any], settings: Settings
) -> tuple[dict[str, dict[str, Any]], Settings]:
    """The touched tickets' facts after a batch (folded, then measured once per ticket), and the settings after it.

    Each ticket's source is carried from one of its events to the next and rendered as a row once, at the end: the
    same as `fold` on each event's row (the batch is in seq order, so the seqs the source keeps decide what a stored
    0 would), without parsing and formatting its timestamps at every event."""
    folded, settings = _fold_sources(before, applied, settings)
    return {ticket_id: _measured(*state, "")[0] for ticket_id, state in folded.items()}, settings


def _fold_sources(
    before: Mapping[str, dict[str, Any]], applied: Sequence[Any], settings: Settings
) -> tuple[dict[str, tuple[kpi.FactSource, str, str]], Settings]:
    """Each touched ticket's folded source with its first-seen time and time zone, and the settings after the batch."""
    folded: dict[str, tuple[kpi.FactSource, str, str]] = {}  # ticket -> (source, seen_at, timezone) so far
    for event in applied:
        if isinstance(event, ConfigApplied):
            settings = _settings_from(event)
        elif _folds(event):
            known = folded.get(event.ticket_id)
            if known is None and (stored := before.get(event.ticket_id)) is not None:
                known = (_source(stored), stored["seen_at"], stored["timezone"])
            source = kpi.fold_event(known[0] if known else None, event, settings.sla.get)
            assert source is not None  # only ticket events are folded
            seen_at = known[1] if known else event.occurred_at.isoformat()
            zone = known[2] if known and not isinstance(event, TicketCreated) else settings.timezone
            folded[event.ticket_id] = (source, seen_at, zone)
    return folded, settings


def _measured(
    source: kpi.FactSource, seen_at: str, timezone: str, branch_id: str
) -> tuple[dict[str, Any], kpi.TicketFact]:
    """A folded source as a measured fact row and its `sync.kpi` fact (built once: the row's measures and its export
    record both come from it; the same as `derive(_as_row(...))` and `as_ticket_fact` on that row, without formatting
    the timestamps and parsing them back)."""
    fact = kpi.fact_of(source, timezone, branch_id)  # served_by rides along: never exported, never stored
    row = _as_row(source, seen_at, timezone)
    if fact.business_date is None or fact.hour is None:  # no timestamp known: dated by its first event at the hub
        local_date, local_hour = kpi.local_date_hour(datetime.fromisoformat(seen_at), timezone)
    else:
        local_date, local_hour = fact.business_date, fact.hour
    row.update(
        wait_seconds=fact.wait_seconds,
        service_seconds=fact.service_seconds,
        sla_met=fact.sla_met,
        abandoned=fact.abandoned,
        local_date=local_date,
        local_hour=local_hour,
        closed_date=fact.closed_date,
        closed_hour=fact.closed_hour,
    )
    return row, fact


def _as_row(source: kpi.FactSource, seen_at: str, timezone: str) -> dict[str, Any]:
    """A folded source as a fact row (not measured yet)."""
    row: dict[str, Any] = {"ticket_id": source.ticket_id, **{k: getattr(source, k) for k in _SOURCE_FIELDS}}
    row.update({k: (v.isoformat() if (v := getattr(source, k)) is not None else None) for k in _SOURCE_TIMES})
    row["seen_at"], row["timezone"] = seen_at, timezone
    return row


def as_ticket_fact(fact: Mapping[str, Any], branch_id: str) -> kpi.TicketFact:
    """The shared definitions' fact for a stored (or folded) row: the one source of wait, service, SLA, hours."""
    return kpi.ticket_fact(
        ticket_id=fact["ticket_id"],
        status=fact["status"],
        created_at=_at(fact["created_at"]),
        called_at=_at(fact["called_at"]),
        served_at=_at(fact["served_at"]),
        completed_at=_at(fact["completed_at"]),
        ticket_number=fact["ticket_number"],
        branch_id=branch_id,
        service_id=fact["service_id"],
        counter_id=fact["counter_id"],
        priority=fact["priority"],
        channel=fact["channel"],
        transferred=bool(fact["transferred"]),
        returned=bool(fact["returned"]),
        sla_minutes=fact["sla_minutes"],
        tz=fact["timezone"],
    )


def derive(fact: dict[str, Any]) -> dict[str, Any]:
    """Fill the measured columns from the timestamps (by `sync.kpi.ticket_fact`)."""
    derived = as_ticket_fact(fact, "")
    fallback = kpi.local_date_hour(datetime.fromisoformat(fact["seen_at"]), fact["timezone"])
    fact.update(
        wait_seconds=derived.wait_seconds,
        service_seconds=derived.service_seconds,
        sla_met=derived.sla_met,
        abandoned=derived.abandoned,
        local_date=derived.business_date or fallback[0],
        local_hour=derived.hour if derived.hour is not None else fallback[1],
        closed_date=derived.closed_date,
        closed_hour=derived.closed_hour,
    )
    return fact


def contribution(fact: dict[str, Any]) -> list[tuple[tuple[Any, ...], dict[str, float]]]:
    """What the fact adds to the rollups: its creation hour's row, and the `active` count of the hour it was done."""
    dims = (fact["service_id"], fact["priority"], fact["channel"], fact["counter_id"] or "")
    status, wait, service = fact["status"], fact["wait_seconds"], fact["service_seconds"]
    values: dict[str, float] = {
        "tickets": 1,
        "active": 1,
        "done": int(status == "done"),
        "no_shows": int(status == "no_show"),
        "cancelled": int(status == "cancelled"),
        "abandoned": int(bool(fact["abandoned"])),
    }
    if wait is not None:
        values["waited"], values["wait_sum"] = 1, wait
        values[WAIT_BUCKETS[kpi.bucket_of(wait)]] = 1
    if fact["sla_met"] is not None:
        values["sla_measured"], values["sla_met"] = 1, int(bool(fact["sla_met"]))
    if service is not None:
        values["served"], values["service_sum"] = 1, service
        values[SERVICE_BUCKETS[kpi.bucket_of(service)]] = 1
    parts = [((fact["local_date"], fact["local_hour"], *dims), values)]
    if fact["closed_date"] is not None:
        parts.append(((fact["closed_date"], fact["closed_hour"], *dims), {"active": 1}))
    return parts


DAILY_MEASURES = tuple(m for m in MEASURES if m != "active") + ACTIVE_HOURS


def daily_deltas(hourly: dict[tuple[Any, ...], dict[str, float]]) -> dict[tuple[Any, ...], dict[str, float]]:
    """The hourly rollup deltas folded to (local date, service) rows: the hour's `active` becomes column a<hour>."""
    deltas: dict[tuple[Any, ...], dict[str, float]] = {}
    for (local_date, local_hour, service_id, *_rest), values in hourly.items():
        row = deltas.setdefault((local_date, service_id), {})
        for name, value in values.items():
            column = ACTIVE_HOURS[local_hour] if name == "active" else name
            row[column] = row.get(column, 0) + value
    return {key: row for key, row in deltas.items() if any(row.values())}


def branch_day_deltas(hourly: dict[tuple[Any, ...], dict[str, float]]) -> dict[str, dict[str, float]]:
    """The hourly deltas' `active` per local date and hour, all services together (`analytics_branch_days`)."""
    deltas: dict[str, dict[str, float]] = {}
    for (local_date, local_hour, *_rest), values in hourly.items():
        if values.get("active"):
            row = deltas.setdefault(local_date, {})
            row[ACTIVE_HOURS[local_hour]] = row.get(ACTIVE_HOURS[local_hour], 0) + values["active"]
    return {day: row for day, row in deltas.items() if any(row.values())}


def rollup_deltas(
    changes: Iterable[tuple[dict[str, Any] | None, dict[str, Any]]],
) -> dict[tuple[Any, ...], dict[str, float]]:
    """Per rollup key, the change of each measure when facts go from `old` (None: new ticket) to `new`."""
    deltas: dict[tuple[Any, ...], dict[str, float]] = {}
    for old, new in changes:
        for fact, sign in ((old, -1), (new, 1)):
            if fact is None:
                continue
            for key, values in contribution(fact):
                row = deltas.setdefault(key, {})
                for name, value in values.items():
                    row[name] = row.get(name, 0) + sign * value
    return {key: row for key, row in deltas.items() if any(row.values())}


def _folds(event: Any) -> bool:
    """A known ticket event (a newer appliance's unknown types, `cloud.apply.UnknownEvent`, are not folded)."""
    return isinstance(event, Event) and event.ticket_id is not None


def on_applied(conn: Connection, tenant: str, branch_id: str, applied: Sequence[Any]) -> None:
    """Called by `cloud.apply` for every applied batch of one branch, inside its transaction (events in seq order;
    typed `sync.contract` events, or `cloud.apply.UnknownEvent` for types this hub does not know)."""
    presence = {e.counter_id: e for e in applied if isinstance(e, CounterPresence)}  # the newest of each counter
    if presence:
        rows = [{"tenant_id": tenant, "branch_id": branch_id, "counter_id": counter_id, "status": e.status,
                 "updated_at": e.occurred_at.isoformat()} for counter_id, e in presence.items()]  # fmt: skip
        _upsert(conn, counters, rows, ("tenant_id", "branch_id", "counter_id"), replace=True)
    if not any(isinstance(e, ConfigApplied) or _folds(e) for e in applied):
        return
    settings = load_settings(conn, tenant, branch_id)
    before = _current(conn, tenant, branch_id, list({e.ticket_id for e in applied if _folds(e)}))
    folded, settings = _fold_sources(before, applied, settings)
    after = {}
    for ticket_id, state in folded.items():
        row, fact = _measured(*state, branch_id)
        cells = kpi.csv_cells(fact)
        row["csv_comma"], row["csv_semicolon"] = kpi.csv_line(cells, ","), kpi.csv_line(cells, ";")
        after[ticket_id] = row
    write(conn, tenant, branch_id, before, after, settings)


def _current(conn: Connection, tenant: str, branch_id: str, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored facts of these tickets (one query of primary-key probes per CHUNK ids)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ticket_ids), CHUNK):
        chunk = ticket_ids[start : start + CHUNK]
        rows = probe_rows(conn, facts, tenant, branch_id, "ticket_id", chunk, _STORED)
        found.update({row.ticket_id: row._asdict() for row in rows})
    return found


_STORED = tuple(c.name for c in facts.c if c.name not in ("tenant_id", "branch_id", "csv_comma", "csv_semicolon"))


def write(
    conn: Connection,
    tenant: str,
    branch_id: str,
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    settings: Settings,
) -> None:
    """Upsert the changed facts and add the rollup deltas (two statements), and the settings when they changed."""
    keys = {"tenant_id": tenant, "branch_id": branch_id}
    if settings.changed:
        _upsert(conn, branch_settings, [{**keys, **settings.row()}], ("tenant_id", "branch_id"), replace=True)
    if not after:
        return
    for fact in after.values():
        if "csv_comma" not in fact:  # `on_applied` renders them from the fact it measured
            cells = kpi.csv_cells(as_ticket_fact(fact, branch_id))
            fact["csv_comma"], fact["csv_semicolon"] = kpi.csv_line(cells, ","), kpi.csv_line(cells, ";")
    _upsert(conn, facts, [{**keys, **fact} for fact in after.values()], ("tenant_id", "branch_id", "ticket_id"),
            replace=True)  # fmt: skip
    deltas = rollup_deltas((before.get(tid), fact) for tid, fact in after.items())
    if deltas:
        rows = [
            {**keys, **dict(zip(ROLLUP_KEY, key, strict=True)), **{m: values.get(m, 0) for m in MEASURES}}
            for key, values in deltas.items()
        ]
        _upsert(conn, rollups, rows, ("tenant_id", "branch_id", *ROLLUP_KEY), replace=False)
        days = [
            {**keys, "local_date": day, "service_id": service, **{m: values.get(m, 0) for m in DAILY_MEASURES}}
            for (day, service), values in daily_deltas(deltas).items()
        ]
        if days:
            _upsert(conn, daily, days, ("tenant_id", "branch_id", "local_date", "service_id"), replace=False)
        hours = [{**keys, "local_date": day, **{h: active.get(h, 0) for h in ACTIVE_HOURS}}
                 for day, active in branch_day_deltas(deltas).items()]  # fmt: skip
        if hours:
            _upsert(conn, branch_days, hours, ("tenant_id", "branch_id", "local_date"), replace=False)


def _upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], key: tuple[str, ...], *, replace: bool
) -> None:
    """`INSERT … ON CONFLICT (key) DO UPDATE` for many rows in one statement: replace the other columns, or add to
    them (rollup measures)."""
    write_many(conn, table, rows, key=key, merge="replace" if replace else "add")


def clear(conn: Connection, tenant: str, branch_id: str) -> None:
    """Forget the branch's facts, rollups and settings (before `cloud.resync` folds its kept log again)."""
    for table in (facts, rollups, daily, branch_days, branch_settings, counters):
        conn.execute(sa.delete(table).where(branch_key(table, tenant, branch_id)))
