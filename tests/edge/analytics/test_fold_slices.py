"""The fact projection under Hypothesis: any log, folded in slices of any size, equals one rebuild from seq 0.

Random ticket events for a few tickets (in any order the engine would never write, missing creations included) and
configuration changes (time zone, SLA) between them go into a real SQLite log; the projection catches up in random
slices, as the follower does after commits, and must end byte-identical to `rebuild`.
"""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.analytics import facts
from edge.demo import demo_config
from edge.store.db import connect, migrate
from edge.store.log import append, seal
from sync.contract import (
    ConfigApplied,
    Event,
    TicketCalled,
    TicketCancelled,
    TicketCreated,
    TicketDone,
    TicketNoShow,
    TicketServing,
)

T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
_EXAMPLES = itertools.count()
KINDS = ("created", "called", "serving", "done", "cancelled", "no_show", "config")


def _event(kind: str, ticket: str, at: datetime, n: int) -> Event:
    env: dict[str, Any] = {"event_id": f"e{n}", "occurred_at": at, "actor": "agent1", "ticket_id": ticket}
    svc: dict[str, Any] = {"service_id": "teller"}
    match kind:
        case "created":
            return TicketCreated(**env, **svc, ticket_number=f"A{n:03d}", seq_no=n, business_date="2026-12-04", order=n)
        case "called":
            return TicketCalled(**env, **svc, counter_id="1")
        case "serving":
            return TicketServing(**env, **svc, counter_id="1")
        case "done":
            return TicketDone(**env, **svc, counter_id="1")
        case "cancelled":
            return TicketCancelled(**env, **svc, from_status="waiting")
        case "no_show":
            return TicketNoShow(**env, **svc, counter_id="1")
        case _:
            base = demo_config()
            zone = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")[n % 3]
            services = [msgspec.structs.replace(s, sla_minutes=1 + n % 30) for s in base.services]
            config = msgspec.structs.replace(base, version=n, timezone=zone, services=services)
            return ConfigApplied(event_id=f"e{n}", occurred_at=at, actor="admin", version=n, config=config)


def _log(conn: sqlite3.Connection, script: list[tuple[str, int, int]]) -> None:
    prev = ""
    conn.execute("BEGIN IMMEDIATE")
    for seq, (kind, ticket, minutes) in enumerate(script, start=1):
        event = _event(kind, f"t{ticket}", T0 + timedelta(minutes=minutes), seq)
        sealed, body = seal(event, branch_id="jkt-sudirman", seq=seq, prev_hash=prev)
        append(conn, sealed, body)
        if isinstance(sealed, ConfigApplied):
            conn.execute("INSERT INTO config (version, seq, doc) VALUES (?, ?, ?)",
                         (sealed.config.version, seq, msgspec.json.encode(sealed.config)))  # fmt: skip
        prev = sealed.hash
    conn.execute("COMMIT")


def _rows(conn: sqlite3.Connection) -> list[Any]:
    return [
        *conn.execute("SELECT * FROM ticket_facts ORDER BY ticket_id").fetchall(),
        *conn.execute("SELECT * FROM ticket_fact_csv ORDER BY sort_key").fetchall(),
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 600)), min_size=1, max_size=30),
    st.lists(st.integers(1, 7), min_size=1, max_size=10),
)
def test_slices_equal_a_rebuild(tmp_path: Path, script: list[tuple[str, int, int]], slices: list[int]) -> None:
    path = tmp_path / f"facts-{next(_EXAMPLES)}.sqlite3"  # one database per example
    conn = connect(path)
    try:
        migrate(conn)
        _log(conn, script)
        i = 0
        while facts.cursor(conn) < len(script):
            conn.execute("BEGIN IMMEDIATE")
            facts.catch_up(conn, slices[i % len(slices)])
            conn.execute("COMMIT")
            i += 1
        followed = _rows(conn)
        conn.execute("BEGIN IMMEDIATE")
        assert facts.rebuild(conn) == len(script)
        assert _rows(conn) == followed
        conn.execute("ROLLBACK")
    finally:
        conn.close()
