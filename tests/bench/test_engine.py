"""Engine benchmarks: durable commands/s through the single writer (group commit) and log replay speed.

Budgets (ARCHITECTURE.md "Performance budgets"): >= 2,000 durable commands/s mixed enqueue/call/start/complete,
anchored on the raw SQLite single-row WAL+FULL commit rate of the same disk; rebuild >= 20,000 events/s.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.engine import commands as c
from edge.service import QueueService, measure_raw_commit_rate
from edge.store import rebuild
from edge.store.db import connect

from ._support import SERVICE_ID, bench_line, many_counters_config

WORKERS = 20  # "counter" threads, one counter each
RUN_SECONDS = 5.0
WARMUP_SECONDS = 0.5


def test_engine_durable_commands_per_second(tmp_path: Path) -> None:
    raw = measure_raw_commit_rate(tmp_path / "probe.sqlite3", seconds=2.0)

    service = QueueService(tmp_path / "data")
    service.start()
    service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(WORKERS), base_version=0))

    stop = threading.Event()
    done = [0] * WORKERS
    errors: list[BaseException] = []
    empty_calls = [0] * WORKERS

    def worker(index: int) -> None:
        counter_id = str(index + 1)
        actor = f"agent{index + 1}"
        try:
            while not stop.is_set():
                service.submit(c.Enqueue(actor=actor, service_id=SERVICE_ID)).result(30)
                out = service.submit(c.CallNext(actor=actor, counter_id=counter_id)).result(30)
                done[index] += 2
                ticket = out.response["ticket"]
                if ticket is None:
                    empty_calls[index] += 1
                    continue
                tid = ticket["ticket_id"]
                service.submit(c.Start(actor=actor, ticket_id=tid, counter_id=counter_id)).result(30)
                service.submit(c.Complete(actor=actor, ticket_id=tid, counter_id=counter_id)).result(30)
                done[index] += 2
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    time.sleep(WARMUP_SECONDS)
    cmds0, batches0, done0, t0 = service.commands, service.batches, sum(done), time.perf_counter()
    time.sleep(RUN_SECONDS)
    cmds1, batches1, done1, t1 = service.commands, service.batches, sum(done), time.perf_counter()
    stop.set()
    for t in threads:
        t.join(30)
    tickets_in_memory = len(service.state.tickets)
    service.stop()

    elapsed = t1 - t0
    rate = (cmds1 - cmds0) / elapsed
    batches = batches1 - batches0
    bench_line(
        engine_durable_cmds_per_s=rate,
        budget=">= 2000",
        raw_full_commits_per_s=raw,
        ratio=rate / raw,
        avg_batch=(cmds1 - cmds0) / batches if batches else 0.0,
        commits_per_s=batches / elapsed,
        client_acked_cmds_per_s=(done1 - done0) / elapsed,
        producers=WORKERS,
        empty_calls=sum(empty_calls),
        tickets_in_memory=tickets_in_memory,
    )
    assert not errors, errors[:3]
    assert rate > 0


REBUILD_TICKETS = 25_000  # x4 events (created, called, serving, done) = 100,000 events
TICKETS_PER_DAY = 2_500  # the log spans 10 business days, like a real appliance's log
CHUNK = 500


class _DayClock:
    """Wall-clock time shifted by whole days on demand (so the build spans several business days)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_rebuild_events_per_second(tmp_path: Path) -> None:
    clock = _DayClock()
    data = tmp_path / "data"
    service = QueueService(data, clock=clock)
    service.start()
    n_counters = 20
    service.execute(c.ApplyConfig(actor="bench", config=many_counters_config(n_counters), base_version=0))
    build_started = time.perf_counter()
    for start in range(0, REBUILD_TICKETS, CHUNK):
        if start and start % TICKETS_PER_DAY == 0:
            service.submit_store(lambda _conn: None).result(60)  # drain, then move to the next day
            clock.offset += timedelta(days=1)
        created = [service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID)) for _ in range(CHUNK)]
        ids = [f.result(60).response["ticket_id"] for f in created]
        pending = []
        for i, tid in enumerate(ids):
            counter_id = str(i % n_counters + 1)
            pending.append(service.submit(c.CallTicket(actor="bench", ticket_id=tid, counter_id=counter_id)))
            pending.append(service.submit(c.Start(actor="bench", ticket_id=tid, counter_id=counter_id)))
            pending.append(service.submit(c.Complete(actor="bench", ticket_id=tid, counter_id=counter_id)))
        for f in pending:
            f.result(60)
    build_seconds = time.perf_counter() - build_started
    seq = service.state.seq
    service.stop()

    conn = connect(data / "qms.sqlite3", readonly=True)
    started = time.perf_counter()
    result = rebuild.replay(conn)
    seconds = time.perf_counter() - started
    conn.close()

    bench_line(
        rebuild_events_per_s=result.events / seconds,
        budget=">= 20000",
        events=result.events,
        replay_s=seconds,
        build_events_per_s=seq / build_seconds,
        build_s=build_seconds,
    )
    assert result.events == seq
    assert len(result.tickets) > 0
