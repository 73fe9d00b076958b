"""SSE benchmark: event delivery latency to 200 connected boards, and the appliance's RSS with them connected.

Budgets (ARCHITECTURE.md "Performance budgets"): event -> SSE client p99 <= 50 ms with 200 boards connected;
appliance RSS <= 120 MB with 200 SSE clients.

The server runs as a subprocess (`qms-edge serve`). The 200 SSE clients are raw asyncio sockets in this process
(HTTP/1.1 + chunked decoding + SSE parsing in a few lines: a StreamReader each, far cheaper than 200 httpx
streams). A commander on its own keep-alive connection sends COMMANDS commands one every ~20 ms, strictly one at
a time (enqueue -> call-next -> start -> complete cycles on counter 1), so command k produces exactly event
seq = base + k; each received event is also checked to carry the command's ticket_id.

Latency per (client, event): receive time minus (a) the time the command's HTTP response came back (after the
commit; the event is published after the same commit, so this can be slightly negative) and (b) the time the
command's request was sent (an upper bound of commit -> delivery). Receive times are taken in this process's
event loop, which also has to wake 200 readers per event: client-side scheduling is included in the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ._support import HOST, SERVICE_ID, Conn, bench_line, get_token, percentile, read_headers, run_server, seed

CLIENTS = 200
COMMANDS = 200
COMMAND_INTERVAL = 0.020
CONNECT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 10.0


@dataclass
class Board:
    """One SSE client: the seq -> receive time of every event it got, and the data by seq."""

    received: dict[int, float] = field(default_factory=dict)
    data: dict[int, str] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    duplicates: int = 0
    error: str | None = None


async def _board(port: int, token: str, board: Board, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        head = f"GET /api/v1/events HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
        writer.write(f"{head}Authorization: Bearer {token}\r\n\r\n".encode())
        status, headers = await read_headers(reader)
        if status != 200:
            board.error = f"status {status}"
            board.connected.set()
            return
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        buf = b""
        while not stop.is_set():
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    return
                chunk = (await reader.readexactly(size + 2))[:-2]
            else:
                chunk = await reader.read(65536)
                if not chunk:
                    return
            now = time.perf_counter()
            buf += chunk
            while True:
                ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := buf.find(sep)) >= 0]
                if not ends:
                    break
                i, n = min(ends)
                block, buf = buf[:i], buf[i + n :]
                seq, data = None, []
                for line in block.decode().splitlines():
                    if line.startswith(":"):
                        if "connected" in line:
                            board.connected.set()
                    elif line.startswith("id:"):
                        seq = int(line[3:].strip())
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                if seq is not None:
                    if seq in board.received:
                        board.duplicates += 1
                    board.received[seq] = now
                    board.data[seq] = "\n".join(data)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        if not stop.is_set():
            board.error = repr(exc)
    finally:
        board.connected.set()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@dataclass
class Sent:
    seq: int
    ticket_id: str
    sent: float
    acked: float


async def _commander(port: int, token: str, base_seq: int) -> list[Sent]:
    conn = await Conn.open(port)
    out: list[Sent] = []
    ticket_id = ""
    try:
        for k in range(COMMANDS):
            step = k % 4
            if step == 0:
                path, body = "/api/v1/tickets", {"service_id": SERVICE_ID}
            elif step == 1:
                path, body = "/api/v1/counters/1/call-next", None
            else:
                path, body = f"/api/v1/tickets/{ticket_id}/{'start' if step == 2 else 'complete'}", {"counter_id": "1"}
            sent = time.perf_counter()
            status, raw = await conn.request("POST", path, body, token)
            acked = time.perf_counter()
            assert status in (200, 201), (path, status, raw[:300])
            response = json.loads(raw)
            ticket = response["ticket"] if step == 1 else response
            assert ticket is not None, response
            ticket_id = ticket["ticket_id"]
            out.append(Sent(base_seq + k + 1, ticket_id, sent, acked))
            await asyncio.sleep(max(0.0, COMMAND_INTERVAL - (time.perf_counter() - sent)))
    finally:
        await conn.close()
    return out


async def _run(port: int, pid: int, token: str) -> None:
    server = psutil.Process(pid)
    rss_idle = server.memory_info().rss
    stop = asyncio.Event()
    boards = [Board() for _ in range(CLIENTS)]
    tasks = [asyncio.create_task(_board(port, token, b, stop)) for b in boards]
    connect_started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(b.connected.wait() for b in boards)), CONNECT_TIMEOUT)
    connect_s = time.perf_counter() - connect_started
    failed = [b.error for b in boards if b.error]
    assert not failed, failed[:3]
    await asyncio.sleep(0.5)
    rss_connected = server.memory_info().rss

    status, raw = await _health(port)
    assert status == 200
    base_seq = int(json.loads(raw)["seq"])
    cpu0 = sum(server.cpu_times()[:2])
    started = time.perf_counter()
    sent = await _commander(port, token, base_seq)
    last = sent[-1].seq
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline and not all(last in b.received for b in boards):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling 200 dicts is cheaper than 200 events set per delivery
    elapsed = time.perf_counter() - started
    server_cpu = (sum(server.cpu_times()[:2]) - cpu0) / elapsed
    rss_after = server.memory_info().rss
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    from_ack, from_send, missing, mismatched = [], [], 0, 0
    for b in boards:
        for s in sent:
            at = b.received.get(s.seq)
            if at is None:
                missing += 1
                continue
            if s.ticket_id not in b.data[s.seq]:
                mismatched += 1
            from_ack.append((at - s.acked) * 1000)
            from_send.append((at - s.sent) * 1000)
    extra = sum(1 for b in boards for seq in b.received if seq > last or seq <= base_seq)
    duplicates = sum(b.duplicates for b in boards)
    bench_line(
        sse_delivery_p50_ms_from_ack=percentile(from_ack, 50),
        p99_ms_from_ack=percentile(from_ack, 99),
        budget="p99 <= 50 ms",
        max_ms_from_ack=max(from_ack, default=float("nan")),
        min_ms_from_ack=min(from_ack, default=float("nan")),
        p50_ms_from_send=percentile(from_send, 50),
        p99_ms_from_send=percentile(from_send, 99),
        max_ms_from_send=max(from_send, default=float("nan")),
        clients=CLIENTS,
        events=len(sent),
        deliveries=len(from_ack),
        missing=missing,
        duplicates=duplicates,
        mismatched=mismatched,
        unexpected=extra,
        connect_all_s=connect_s,
        server_cpu_cores=server_cpu,
    )
    bench_line(
        server_rss_mb_200_sse=rss_connected / 2**20,
        budget="<= 120 MB",
        rss_mb_before_clients=rss_idle / 2**20,
        rss_mb_after_events=rss_after / 2**20,
        per_client_kb=(rss_connected - rss_idle) / CLIENTS / 1024,
    )
    assert missing == 0, f"{missing} (client, event) deliveries missing"
    assert duplicates == 0
    assert mismatched == 0
    assert extra == 0


async def _health(port: int) -> tuple[int, bytes]:
    conn = await Conn.open(port)
    try:
        return await conn.request("GET", "/api/v1/health")
    finally:
        await conn.close()


def test_sse_delivery_latency_and_memory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, n_counters=20, tickets=0)
    with run_server(data) as server:
        token = get_token(server.port)
        asyncio.run(_run(server.port, server.pid, token))
        assert server.proc.poll() is None
