"""Announcement memory under a sustained call burst: RSS must stay flat (issue 11).

The real writer on SQLite, the real announcer with voice packs (Indonesian espeak-ng, English piper) and a WAV
file sink as the speaker, paced as in production (each announcement waits for its audio plus the gap). Ten
counters call `CALL_RATE` tickets a second for `SECONDS` seconds (call-next, start, complete), far faster than
speech. Before the fix every call was rendered into its own ~10 s WAV and queued without limit (the appliance
reached 1.27 GB); now superseded calls collapse per counter, the queue is capped per area and announcements
keep the voice pack's clips by reference.

Reported: RSS at the start, the peak (sampled every 50 ms) and the end; calls made, announcements composed,
played, superseded and dropped, the longest queue, and the call command's p50/p99 latency during the burst.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from edge.devices.audio.announcer import Announcer
from edge.devices.audio.outputs import WavSink
from edge.devices.audio.voicepack import build_pack
from edge.engine import commands as c
from edge.service import QueueService
from tests.edge.devices.audio.conftest import TEST_CLIPS

from ._support import bench_line, percentile, seed

CALL_RATE = 50  # calls per second
SECONDS = 20.0
COUNTERS = 10


def rss_mb() -> float:
    """This process's resident set size (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_announcement_memory_is_flat_under_a_call_burst(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    data = tmp_path / "data"
    calls_needed = int(CALL_RATE * SECONDS) + COUNTERS
    seed(data, n_counters=COUNTERS, tickets=calls_needed, digits=4)  # more than 900 waiting
    build_pack(data / "voice", "id", "espeak", TEST_CLIPS)
    build_pack(data / "voice", "en", "piper", TEST_CLIPS)
    service = QueueService(data)
    announcer = Announcer(service, data / "voice", [WavSink(tmp_path / "speaker")], pace=True)
    service.subscribe_commits(announcer.on_commit)
    service.start()
    announcer.start()

    peak = [0.0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    start_rss = rss_mb()
    peak[0] = start_rss
    sampler.start()
    try:
        began = time.monotonic()
        latencies = _burst(service)
        calls, burst = len(latencies), time.monotonic() - began
        deadline = time.monotonic() + 10  # the composer catches up within moments: calls are laid out, not rendered
        while announcer.stats.announced + announcer.stats.quiet < calls and time.monotonic() < deadline:
            time.sleep(0.05)
        end_rss = rss_mb()
    finally:
        sampling.set()
        sampler.join()
        announcer.stop()
        service.stop()

    stats = announcer.stats
    bench_line(
        announce_rss_start_mb=start_rss,
        announce_rss_peak_mb=peak[0],
        announce_rss_end_mb=end_rss,
        growth_mb=end_rss - start_rss,
        calls=calls,
        calls_per_s=calls / burst,
        announced=stats.announced,
        played=stats.played,
        superseded=stats.superseded,
        dropped=stats.dropped,
        peak_pending=stats.peak_pending,
        call_p50_ms=percentile(latencies, 50) * 1000,
        call_p99_ms=percentile(latencies, 99) * 1000,
    )
    assert stats.announced == calls
    assert stats.peak_pending <= COUNTERS


def _burst(service: QueueService) -> list[float]:
    """Call at `CALL_RATE` for `SECONDS` (call-next, start, complete, counters in turn); the call latencies."""
    latencies: list[float] = []
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < SECONDS:
        if len(latencies) >= elapsed * CALL_RATE:  # hold the rate
            time.sleep(min(0.005, len(latencies) / CALL_RATE - elapsed))
            continue
        counter = str(len(latencies) % COUNTERS + 1)
        t0 = time.perf_counter()
        ticket = service.execute(c.CallNext(actor="bench", counter_id=counter)).response["ticket"]
        latencies.append(time.perf_counter() - t0)
        assert ticket is not None
        service.execute(c.Start(actor="bench", ticket_id=ticket["ticket_id"], counter_id=counter))
        service.execute(c.Complete(actor="bench", ticket_id=ticket["ticket_id"], counter_id=counter))
    return latencies
