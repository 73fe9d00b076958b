"""The hub's apply rate with its hooks (budget >= 5,000 events/s on PostgreSQL with the analytics facts and rollups
and the notification triggers maintained), in process: no NATS, the consumer's `apply_batch` on batches of 500 (its
default fetch), each batch one transaction, timed one by one; the rate is a batch's events over the median batch time.

The log is a real appliance's (the writer in process): a day of tickets through 20 counters, each created (half of
them with a sealed e-mail or phone contact and opted in), called, served and done, with a queue kept waiting so the
"N to go" ranking has people to rank; the tenant has an e-mail provider, so the triggers write outbox rows. The same
log goes into a fresh database three times: without hooks (events, projection and tracking only), with every hook
(each hook timed), and with every hook on SQLite.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloud import apply
from cloud.apply import Incoming, apply_batch
from cloud.notify import policy
from cloud.notify.providers import email as email_provider
from cloud.store import create_store_engine
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import Outgoing, event_subject
from tests.bench._support import SERVICE_ID, bench_line, many_counters_config
from tests.support.postgres import PostgresCluster, postgres_bin

TENANT, BRANCH = "acme", "jkt-sudirman"
TICKETS = 6_250  # x4 events = 25,000 events, 50 batches
WAITING = 40  # tickets kept in the queue ahead of the ones being served
ROUND = 50  # tickets enqueued, then as many called, served and completed, per round
N_COUNTERS = 20
BATCH = 500  # cloud.consumer's default fetch


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the module."""
    if postgres_bin() is None:
        pytest.fail("PostgreSQL is missing: run `make system-deps`")
    started = PostgresCluster().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """The appliance's log as the relay ships it (payloads and contact keys)."""
    data = tmp_path_factory.mktemp("edge")
    service = QueueService(data)
    service.start()
    try:
        service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(N_COUNTERS), base_version=0))
        number = itertools.count()
        queue = _enqueue(service, number, WAITING)
        created, served = WAITING, 0
        while queue:
            fresh = min(ROUND, TICKETS - created)
            queue.extend(_enqueue(service, number, fresh))
            created += fresh
            _serve(service, queue[:ROUND], served)
            served += len(queue[:ROUND])
            del queue[:ROUND]
        return list(service.read(lambda conn: read_outgoing(conn, 0, 10_000_000)))
    finally:
        service.stop()


def _enqueue(service: QueueService, number: Iterator[int], count: int) -> list[str]:
    """`count` new tickets, every second one with a contact (e-mail or phone, alternately), opted in."""
    pending = []
    for _ in range(count):
        i = next(number)
        contact: dict[str, Any] = {}
        if i % 4 == 0:
            contact = {"email": f"customer{i}@example.co.id", "notify_opt_in": True, "lang": "id"}
        elif i % 4 == 2:
            contact = {"phone": f"+62812{i:07d}", "notify_opt_in": True, "lang": "en"}
        pending.append(service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID, **contact)))
    return [f.result(60).response["ticket_id"] for f in pending]


def _serve(service: QueueService, ticket_ids: list[str], served: int) -> None:
    """Call, start and complete each ticket at the counters in turn."""
    pending = []
    for i, tid in enumerate(ticket_ids):
        counter_id = str((served + i) % N_COUNTERS + 1)
        pending.append(service.submit(c.CallTicket(actor="bench", ticket_id=tid, counter_id=counter_id)))
        pending.append(service.submit(c.Start(actor="bench", ticket_id=tid, counter_id=counter_id)))
        pending.append(service.submit(c.Complete(actor="bench", ticket_id=tid, counter_id=counter_id)))
    for f in pending:
        f.result(60)


def _pg_database(cluster: PostgresCluster) -> str:
    return cluster.new_database("bench_apply")


class _Timed:
    """A hook with the seconds it took in each batch."""

    def __init__(self, hook: apply.ApplyHook) -> None:
        self.hook = hook
        self.name = f"{hook.__module__.rsplit('.', 1)[-1]}"
        self.seconds: list[float] = []

    def __call__(self, conn: Any, tenant: str, branch_id: str, applied: Sequence[Any]) -> None:
        started = time.perf_counter()
        self.hook(conn, tenant, branch_id, applied)
        self.seconds.append(time.perf_counter() - started)


def _run(url: str, log: list[Outgoing], hooks: Sequence[Callable[..., None]]) -> tuple[list[float], float]:
    """Apply the log in batches to a fresh store: each batch's seconds, and the whole run's (each batch's CPU seconds
    of this process, the database's time left out, in `_cpu`: the figure a loaded box disturbs least)."""
    engine = create_store_engine(url)
    try:
        with engine.begin() as conn:
            settings = {"host": "127.0.0.1", "port": 2525, "sender": "antrean@bank.example"}
            policy.save_provider(conn, TENANT, "email", "email", settings, email_provider.SECRETS)
        subject = event_subject(TENANT, BRANCH)
        incoming = [Incoming(subject, o.payload, o.contact_key) for o in log]
        seconds = []
        _cpu.clear()
        started = time.perf_counter()
        for i in range(0, len(incoming), BATCH):
            t, cpu = time.perf_counter(), time.process_time()
            result = apply_batch(engine, incoming[i : i + BATCH], hooks)
            seconds.append(time.perf_counter() - t)
            _cpu.append(time.process_time() - cpu)
            assert result.applied == len(incoming[i : i + BATCH]), result.problems
        total = time.perf_counter() - started
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT next_seq, status FROM branches")).one()
        assert (row.next_seq, row.status) == (len(log) + 1, "ok")
        return seconds, total
    finally:
        engine.dispose()


_cpu: list[float] = []  # the last run's CPU seconds of this process per batch


def _figures(log: list[Outgoing], seconds: list[float], total: float) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {"median_batch_ms": round(median * 1000, 1), "median_batch_cpu_ms": round(statistics.median(_cpu) * 1000, 1),
            "overall_events_per_s": round(len(log) / total), "events": len(log), "batches": len(seconds)}  # fmt: skip


@pytest.mark.timeout(1800)  # three stores x 25,000 events, on a loaded box
def test_hub_apply_rate_with_hooks(cluster: PostgresCluster, log: list[Outgoing], tmp_path: Path) -> None:
    """Median batch rate on PostgreSQL without the hooks and with them (and each hook's median share), then SQLite."""
    seconds, total = _run(_pg_database(cluster), log, ())
    bench_line(hub_apply_no_hooks_events_per_s=round(BATCH / statistics.median(seconds)), store="postgresql",
               **_figures(log, seconds, total))  # fmt: skip
    timed = [_Timed(hook) for hook in apply.HOOKS]
    seconds, total = _run(_pg_database(cluster), log, timed)
    hooks_ms = {f"{t.name}_median_ms": round(statistics.median(t.seconds) * 1000, 1) for t in timed}
    bench_line(hub_apply_events_per_s=round(BATCH / statistics.median(seconds)), budget=">= 5000",
               store="postgresql", **_figures(log, seconds, total), **hooks_ms)  # fmt: skip
    seconds, total = _run(f"sqlite:///{tmp_path / 'cloud.sqlite3'}", log, apply.HOOKS)
    bench_line(hub_apply_events_per_s=round(BATCH / statistics.median(seconds)), store="sqlite",
               **_figures(log, seconds, total))  # fmt: skip
