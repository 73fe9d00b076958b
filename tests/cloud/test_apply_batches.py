"""The consumer's set-based batch path gives the same projection, facts, rollups, contacts and owed messages whatever
the batch size: a real appliance log (contacts, calls, recalls, holds, transfers, no-shows, cancellations, counter
presence) applied in batches cut anywhere (Hypothesis) equals the same log applied one event per transaction, on
SQLite and PostgreSQL. Each example applies the log under a tenant of its own in one database (rows compared without
the tenant), so a wrong row from the batched statements (`write_many`, `update_many`, the facts upsert) shows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.analytics.facts import DAILY_MEASURES, MEASURES
from cloud.analytics.tables import ACTIVE_HOURS, branch_days, counters, daily, facts, rollups
from cloud.apply import Incoming, apply_batch
from cloud.notify import policy
from cloud.notify.contacts import contacts
from cloud.notify.providers import email as email_provider
from cloud.notify.tables import outbox
from cloud.store import create_store_engine, number_leases, ticket_links, tickets
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import Outgoing, event_subject
from tests.support.appliance import seed_demo

BRANCH = "jkt-sudirman"
# Clock columns (written with the hub's now) and the outbox's own id differ between two runs by nature.
CLOCK = {"created_at", "updated_at", "next_attempt_at", "purge_after", "id"}
# "N to go" is decided on the queue as each batch leaves it (a ticket that passes the threshold inside one batch is
# never within it at a batch's end), and a created message's people ahead are counted then: both follow the batching
# by design. The rest of the outbox does not.
BATCH_DEPENDENT_TRIGGERS = ("ticket.to_go",)
_tenants = itertools.count(1)


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """A branch's log with every kind of ticket life the facts and triggers distinguish."""
    data_dir = tmp_path_factory.mktemp("edge")
    seed_demo(data_dir, users=[])
    service = QueueService(data_dir)
    service.start()
    try:
        ids = []
        for i in range(14):
            contact: dict[str, Any] = {}
            if i % 3 == 0:
                contact = {"email": f"c{i}@example.co.id", "notify_opt_in": True, "lang": "id"}
            elif i % 3 == 1:
                contact = {"phone": f"+62812000{i:04d}", "notify_opt_in": i % 2 == 0, "lang": "en"}
            outcome = service.execute(c.Enqueue(service_id="cs" if i % 4 == 0 else "teller", **contact))
            ids.append(outcome.response["ticket_id"])
        teller = [t for i, t in enumerate(ids) if i % 4]
        cs = [t for i, t in enumerate(ids) if i % 4 == 0]
        steps: list[c.Command] = [
            c.SetPresence(counter_id="1", status="available"),
            c.CallTicket(ticket_id=teller[0], counter_id="1"),
            c.Start(ticket_id=teller[0], counter_id="1"),
            c.Complete(ticket_id=teller[0], counter_id="1"),
            c.CallTicket(ticket_id=teller[1], counter_id="2"),
            c.Recall(ticket_id=teller[1], counter_id="2"),
            c.NoShow(ticket_id=teller[1], counter_id="2"),
            c.Cancel(ticket_id=teller[2]),
            c.CallTicket(ticket_id=teller[3], counter_id="3"),
            c.Hold(ticket_id=teller[3], counter_id="3"),
            c.Unhold(ticket_id=teller[3]),
            c.CallTicket(ticket_id=teller[3], counter_id="1"),
            c.Start(ticket_id=teller[3], counter_id="1"),
            c.Transfer(ticket_id=teller[3], to_service_id="cs", counter_id="1"),
            c.CallTicket(ticket_id=cs[0], counter_id="4"),
            c.Start(ticket_id=cs[0], counter_id="4"),
            c.Complete(ticket_id=cs[0], counter_id="4"),
            c.CallTicket(ticket_id=teller[3], counter_id="5"),
            c.Start(ticket_id=teller[3], counter_id="5"),
            c.Complete(ticket_id=teller[3], counter_id="5"),
            c.CallTicket(ticket_id=teller[4], counter_id="2"),
            c.SetPresence(counter_id="1", status="break"),
        ]
        for command in steps:
            service.execute(command)
        return list(service.read(lambda conn: read_outgoing(conn, 0, 1_000_000)))
    finally:
        service.stop()


def _apply(engine: sa.Engine, tenant: str, log: list[Outgoing], sizes: list[int]) -> None:
    """Apply the log under `tenant` in batches of these sizes (the rest in batches of the last size, or of 1)."""
    with engine.begin() as conn:
        settings_ = {"host": "127.0.0.1", "port": 2525, "sender": "antrean@bank.example"}
        policy.save_provider(conn, tenant, "email", "email", settings_, email_provider.SECRETS)
    incoming = [Incoming(event_subject(tenant, BRANCH), o.payload, o.contact_key) for o in log]
    cuts = itertools.chain(sizes, itertools.repeat(sizes[-1] if sizes else 1))
    position = 0
    while position < len(incoming):
        size = next(cuts)
        result = apply_batch(engine, incoming[position : position + size])
        assert not result.problems, result.problems
        position += size


def _state(engine: sa.Engine, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    """The tenant's derived rows, table by table, without the tenant, the clock columns and all-zero rollup rows."""
    zero_checked = {rollups.name: MEASURES, daily.name: DAILY_MEASURES, branch_days.name: ACTIVE_HOURS}
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (tickets, ticket_links, number_leases, facts, rollups, daily, branch_days, counters, contacts,
                      outbox):  # fmt: skip
            columns = [col for col in table.c if col.name not in CLOCK and col.name != "tenant_id"]
            query = sa.select(*columns).where(table.c.tenant_id == tenant)
            if table is outbox:
                query = query.where(outbox.c.trigger.not_in(BATCH_DEPENDENT_TRIGGERS))
                columns = [col for col in columns if col.name != "vars"]  # people ahead at the batch's end
                query = query.with_only_columns(*columns)
            rows = [dict(r._mapping) for r in conn.execute(query)]
            measures = zero_checked.get(table.name)
            if measures is not None:  # sums of float deltas: their order of addition follows the batching
                rows = [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
                rows = [r for r in rows if any(r[m] for m in measures)]
            found[table.name] = sorted((tuple(r.values()) for r in rows), key=repr)
    return found


_one_at_a_time: dict[str, dict[str, list[tuple[Any, ...]]]] = {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 80), min_size=1, max_size=6))
def test_batches_of_any_size_give_the_rows_of_one_event_at_a_time(
    store_url: str, mixed_log: list[Outgoing], tmp_path: Path, sizes: list[int]
) -> None:
    """Facts (with their export records), rollups, daily and hourly counts, tickets, links, contacts, counters and the
    outbox's created/called/recalled rows are the same for any batching as for one event per transaction."""
    engine = create_store_engine(store_url)
    try:
        if store_url not in _one_at_a_time:
            _apply(engine, "one", mixed_log, [1])
            _one_at_a_time[store_url] = _state(engine, "one")
        expected = _one_at_a_time[store_url]
        assert len(expected[facts.name]) == 14
        assert any(row for row in expected[outbox.name])
        tenant = f"batched{next(_tenants)}"
        _apply(engine, tenant, mixed_log, sizes)
        assert _state(engine, tenant) == expected
    finally:
        engine.dispose()
