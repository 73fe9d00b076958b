"""Per-command cost against queue length: enqueue and call-next at 100 and at 10,000 waiting tickets.

Each command is submitted alone and timed until its transaction committed (WAL + synchronous=FULL: durable, as
the API acknowledges it), so the figure is one command's full cost through the single writer. The budget is that
the cost does not depend on how many tickets wait: the 10,000 / 100 ratio of the medians should stay <= 1.3.

The two queue lengths are measured interleaved (one round on each in turn) so that noise from the rest of the
machine (fsync latency above all) falls on both alike; `paired_ratio` is the median of the round-by-round ratios,
the figure least disturbed by the machine's other load. `QMS_BENCH_PROFILE=1` prints a cProfile of the writer
thread's transactions at 10,000 waiting.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.engine import commands as c
from edge.service import QueueService

from ._support import SERVICE_ID, bench_line, many_counters_config

SAMPLES = 300  # commands timed per kind and queue length
COUNTERS = 4
SEED_BATCH = 2000


def _seed(service: QueueService, waiting: int) -> None:
    config = many_counters_config(COUNTERS, digits=5)  # 10,000 waiting need more than A001…A900
    service.execute(c.ApplyConfig(actor="bench", config=config, base_version=0))
    left = waiting
    while left:
        n = min(left, SEED_BATCH)
        futures = [service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID)) for _ in range(n)]
        for future in futures:
            future.result(120)
        left -= n


class _Probe:
    """One appliance with `waiting` tickets in the queue, and the samples taken on it."""

    def __init__(self, data_dir: Path, waiting: int) -> None:
        self.waiting = waiting
        self.service = QueueService(data_dir)
        self.service.start()
        _seed(self.service, waiting)
        self.samples: dict[str, list[float]] = {"enqueue": [], "call_next": [], "writer_enqueue": [], "writer_call": []}
        self.round = 0

    def _timed(self, kind: str, command: c.Command) -> dict[str, object]:
        before = self.service.commit_seconds
        started = time.perf_counter()
        response = self.service.execute(command).response
        self.samples[kind].append(time.perf_counter() - started)
        self.samples[f"writer_{'call' if kind == 'call_next' else kind}"].append(self.service.commit_seconds - before)
        return response

    def step(self) -> None:
        """Enqueue one, call one at a counter and finish it: the queue stays at `waiting`."""
        counter_id = str(self.round % COUNTERS + 1)
        self.round += 1
        self._timed("enqueue", c.Enqueue(actor="bench", service_id=SERVICE_ID))
        ticket = self._timed("call_next", c.CallNext(actor="bench", counter_id=counter_id))["ticket"]
        assert isinstance(ticket, dict)
        self.service.execute(c.Start(actor="bench", ticket_id=ticket["ticket_id"], counter_id=counter_id))
        self.service.execute(c.Complete(actor="bench", ticket_id=ticket["ticket_id"], counter_id=counter_id))

    def median_ms(self, kind: str) -> float:
        return statistics.median(self.samples[kind]) * 1000

    def close(self) -> None:
        assert self.service.state.count("waiting") == self.waiting
        self.service.stop()


def test_command_cost_independent_of_queue_length(tmp_path: Path) -> None:
    small = _Probe(tmp_path / "q100", 100)
    large = _Probe(tmp_path / "q10000", 10_000)
    profile = cProfile.Profile() if os.environ.get("QMS_BENCH_PROFILE") else None
    try:
        # interleaved, so disk and CPU noise from the rest of the machine falls on both queue lengths alike
        for i in range(SAMPLES):
            small.step()
            if profile is not None and i == SAMPLES // 2:
                large.service._process = _profiled(large.service._process, profile)  # type: ignore[method-assign]
            large.step()
    finally:
        small.close()
        large.close()
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
        print(f"--- writer profile at 10,000 waiting ---\n{out.getvalue()}")
    for name, writer in (("enqueue", "writer_enqueue"), ("call_next", "writer_call")):
        bench_line(
            **{
                f"{name}_ms_median_at_100": small.median_ms(name),
                f"{name}_ms_median_at_10000": large.median_ms(name),
                "ratio": large.median_ms(name) / small.median_ms(name),
                "budget": "<= 1.3",
                "paired_ratio": statistics.median(
                    b / a for a, b in zip(small.samples[name], large.samples[name], strict=True)
                ),
                "writer_txn_ms_at_100": small.median_ms(writer),
                "writer_txn_ms_at_10000": large.median_ms(writer),
            }
        )


def _profiled(process: Callable[[list[Any]], None], profile: cProfile.Profile) -> Callable[[list[Any]], None]:
    def run(batch: list[Any]) -> None:
        profile.enable()
        try:
            process(batch)
        finally:
            profile.disable()

    return run
