"""Announcement and board benchmarks: call-next -> announcement audio ready, and -> board update with 200 boards.

Budgets (ARCHITECTURE.md "Performance budgets"): announcement audio ready <= 150 ms after a call; event -> board
p99 <= 50 ms with 200 boards connected (the backlog asks <= 1 s).

1. In process, on the real writer and SQLite: CallNext is submitted and timed until the announcer has assembled
   the WAV (chime + Indonesian + English from voice packs built at the start; not played). Start/Complete free the
   counter between calls.
2. The real server as a subprocess with 200 board streams (`/board/events?area=lantai-1`, raw asyncio sockets):
   each call-next over HTTP is timed until every board received a `state` whose "now calling" is that ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.auth import load_secret
from edge.devices.audio.announcer import Announcement, Announcer
from edge.devices.audio.voicepack import build_pack
from edge.engine import commands as c
from edge.service import QueueService
from edge.web.board.access import Scope, board_key
from tests.edge.devices.audio.conftest import TEST_CLIPS

from ._support import HOST, SERVICE_ID, Conn, bench_line, get_token, percentile, read_headers, run_server, seed

CALLS = 100
BOARDS = 200
BOARD_CALLS = 50
CALL_INTERVAL = 0.05
CONNECT_TIMEOUT = 30.0


def test_call_next_to_announcement_audio_ready(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    data = tmp_path / "data"
    seed(data, n_counters=4, tickets=CALLS)
    build_pack(data / "voice", "id", "espeak", TEST_CLIPS)
    build_pack(data / "voice", "en", "piper", TEST_CLIPS)
    service = QueueService(data)
    announcer = Announcer(service, data / "voice", [], pace=False)
    ready: dict[str, Announcement] = {}
    arrived = threading.Condition()

    def on_ready(a: Announcement) -> None:
        with arrived:
            ready[a.ticket_number] = a
            arrived.notify_all()

    announcer.listeners.append(on_ready)
    service.subscribe_commits(announcer.on_commit)
    service.start()
    announcer.start()
    total, after_commit, durations = [], [], []
    try:
        for _ in range(CALLS):
            started = time.monotonic()
            ticket = service.submit(c.CallNext(actor="bench", counter_id="1")).result(10).response["ticket"]
            number = ticket["ticket_number"]
            with arrived:
                assert arrived.wait_for(lambda n=number: n in ready, timeout=5), f"no announcement for {number}"
            a = ready[number]
            total.append((a.ready_at - started) * 1000)
            after_commit.append((a.ready_at - a.committed_at) * 1000)
            durations.append(a.duration)
            service.execute(c.Start(actor="bench", ticket_id=ticket["ticket_id"], counter_id="1"))
            service.execute(c.Complete(actor="bench", ticket_id=ticket["ticket_id"], counter_id="1"))
    finally:
        announcer.stop()
        service.stop()
    bench_line(
        announce_ready_p50_ms=percentile(total, 50),
        p99_ms=percentile(total, 99),
        budget="<= 150 ms",
        max_ms=max(total),
        commit_to_ready_p50_ms=percentile(after_commit, 50),
        commit_to_ready_p99_ms=percentile(after_commit, 99),
        calls=len(total),
        audio_seconds=sum(durations) / len(durations),
        languages="id+en",
    )
    assert len(total) == CALLS


@dataclass
class Board:
    """One board stream: when it first saw each ticket as "now calling"."""

    seen: dict[str, float] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


async def _board(port: int, query: str, board: Board, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET /board/events?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        status, headers = await read_headers(reader)
        if status != 200:
            board.error = f"status {status}"
            return
        assert headers.get("transfer-encoding", "").lower() == "chunked"
        buf = b""
        while not stop.is_set():
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                return
            buf += (await reader.readexactly(size + 2))[:-2]
            now = time.perf_counter()
            while b"\r\n\r\n" in buf:
                block, buf = buf.split(b"\r\n\r\n", 1)
                lines = block.decode().splitlines()
                if "event: state" not in lines:
                    continue
                state = json.loads(next(line[6:] for line in lines if line.startswith("data: ")))
                board.connected.set()
                if state["now"] is not None:
                    board.seen.setdefault(state["now"]["ticket_number"], now)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        if not stop.is_set():
            board.error = repr(exc)
    finally:
        board.connected.set()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _run_boards(port: int, token: str, query: str) -> None:
    stop = asyncio.Event()
    boards = [Board() for _ in range(BOARDS)]
    tasks = [asyncio.create_task(_board(port, query, b, stop)) for b in boards]
    await asyncio.wait_for(asyncio.gather(*(b.connected.wait() for b in boards)), CONNECT_TIMEOUT)
    assert not [b.error for b in boards if b.error]
    conn = await Conn.open(port)
    calls: list[tuple[str, float, float]] = []
    try:
        for _ in range(BOARD_CALLS):
            status, raw = await conn.request("POST", "/api/v1/tickets", {"service_id": SERVICE_ID}, token)
            assert status == 201, raw
            sent = time.perf_counter()
            status, raw = await conn.request("POST", "/api/v1/counters/1/call-next", None, token)
            acked = time.perf_counter()
            ticket = json.loads(raw)["ticket"]
            calls.append((ticket["ticket_number"], sent, acked))
            for action in ("start", "complete"):
                status, raw = await conn.request(
                    "POST", f"/api/v1/tickets/{ticket['ticket_id']}/{action}", {"counter_id": "1"}, token
                )
                assert status == 200, raw
            await asyncio.sleep(max(0.0, CALL_INTERVAL - (time.perf_counter() - sent)))
        deadline = time.perf_counter() + 10
        last = calls[-1][0]
        while time.perf_counter() < deadline and not all(last in b.seen for b in boards):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    from_send, from_ack, missing = [], [], 0
    for b in boards:
        for number, sent, acked in calls:
            at = b.seen.get(number)
            if at is None:
                missing += 1
                continue
            from_send.append((at - sent) * 1000)
            from_ack.append((at - acked) * 1000)
    bench_line(
        board_update_p50_ms_from_call_next=percentile(from_send, 50),
        p99_ms=percentile(from_send, 99),
        budget="p99 <= 50 ms; backlog <= 1 s",
        max_ms=max(from_send, default=float("nan")),
        p99_ms_from_ack=percentile(from_ack, 99),
        boards=BOARDS,
        calls=len(calls),
        missing=missing,
    )
    assert missing == 0


def test_call_next_to_board_update_with_200_boards(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, n_counters=4, tickets=0)
    key = board_key(load_secret(data), "jkt-sudirman", Scope("area", "lantai-1"))
    with run_server(data) as server:
        token = get_token(server.port)
        asyncio.run(_run_boards(server.port, token, f"area=lantai-1&key={key}"))
