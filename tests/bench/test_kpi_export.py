"""CSV export of 1 M tickets from the real appliance: rows/s through HTTP and the server's RSS (constant memory).

A seeded demo branch gets 1 M fact rows over 30 days, written by the projection's own write path
(`edge.analytics.facts._write` over `sync.kpi` sources). The real server (`qms-edge serve`) streams
`GET /api/v1/reports/tickets.csv` for the 30 days; the client counts records as they arrive while the server's
RSS is sampled from /proc. Reported: rows, rows/s (budget >= 100,000/s), RSS before, peak and after; the export is
constant-memory when the peak stays within a few MB of the start however many rows go through.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.analytics import facts
from edge.store.db import connect
from sync.kpi import CSV_HEADER, FactSource
from tests.support.appliance import RunningAppliance, mint_token, seed_demo

from ._support import bench_line

ROWS = int(os.environ.get("QMS_BENCH_CSV_ROWS", "1000000"))  # a smaller run for a quick look
DAYS = 30
BATCH = 20_000
SERVICES = ("teller", "cs", "loan")


def _sources(start: int, n: int, first_day: date) -> list[FactSource]:
    """n varied, finished tickets spread over DAYS business days (Jakarta office hours)."""
    out = []
    for i in range(start, start + n):
        day = first_day + timedelta(days=i % DAYS)
        created = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC) + timedelta(seconds=(i * 7) % 28_000)
        called = created + timedelta(seconds=30 + (i * 13) % 2400)
        served = called + timedelta(seconds=15)
        status = ("done", "done", "done", "no_show", "cancelled")[i % 5]
        out.append(
            FactSource(
                ticket_id=f"{i:032x}",
                ticket_number=f"A{i % 1000:03d}",
                branch_id="jkt-sudirman",
                service_id=SERVICES[i % 3],
                counter_id=str(1 + i % 6),
                priority=i % 2,
                channel=("walk_in", "kiosk", "web")[i % 3],
                status=status,
                created_at=created,
                called_at=called if status != "cancelled" else None,
                served_at=served if status == "done" else None,
                completed_at=served + timedelta(seconds=60 + (i * 17) % 900) if status == "done" else None,
                sla_minutes=10,
            )
        )
    return out


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.timeout(1800)  # seeding a million rows through the projection's write path takes minutes
def test_csv_export_of_a_million_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_demo(data)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=DAYS - 1)
    conn = connect(data / "qms.sqlite3")
    started = time.perf_counter()
    for start in range(0, ROWS, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        facts._write(conn, _sources(start, min(BATCH, ROWS - start), first), "Asia/Jakarta")
        conn.execute("COMMIT")
    conn.close()
    bench_line(seeded_rows=ROWS, seed_seconds=time.perf_counter() - started)

    appliance = RunningAppliance(data).start()
    try:
        assert appliance.proc is not None
        pid = appliance.proc.pid
        token = mint_token(data, "admin")
        rss_before = _rss_mb(pid)
        peak = [rss_before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], _rss_mb(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rows = -1  # the header line
        size = 0
        t0 = time.perf_counter()
        with (
            httpx.Client(timeout=120) as client,
            client.stream(
                "GET",
                f"{appliance.api}/reports/tickets.csv",
                params={"from": first.isoformat(), "to": today.isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status_code == 200, appliance.log()
            first_line = None
            for chunk in response.iter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")  # every record ends CRLF; a chunk may split the pair
                if first_line is None:
                    first_line = chunk.split(b"\r\n", 1)[0].decode()
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
        rss_after = _rss_mb(pid)
    finally:
        appliance.stop()
    assert first_line == ",".join(CSV_HEADER)
    assert rows == ROWS
    bench_line(
        csv_rows=rows,
        seconds=elapsed,
        rows_per_s=rows / elapsed,
        budget=">= 100000",
        mb=size / 1e6,
        rss_before_mb=rss_before,
        rss_peak_mb=peak[0],
        rss_after_mb=rss_after,
    )
