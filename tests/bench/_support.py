"""Shared pieces of the benchmarks: a many-counter branch config, seeding, the real server as a subprocess,
a tiny keep-alive HTTP/1.1 client on raw asyncio streams, and percentile/printing helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from edge.auth import upsert_user
from edge.demo import DEMO_PASSWORD, demo_config
from edge.engine import commands as c
from edge.service import QueueService
from sync.contract_config import BranchConfig, Counter

HOST = "127.0.0.1"
SERVICE_ID = "teller"


def many_counters_config(n_counters: int, digits: int | None = None) -> BranchConfig:
    """The demo branch with `n_counters` counters, all serving the one service `teller`.

    `digits`: the teller's number width; a benchmark that keeps more than 900 tickets waiting needs more than 3
    (numbers wrap after A900 and are refused while every one is held)."""
    base = demo_config()
    counters = [
        Counter(id=str(i), name=f"Loket {i}", area_id="lantai-1", services=[SERVICE_ID])
        for i in range(1, n_counters + 1)
    ]
    services = [
        msgspec.structs.replace(s, digits=digits) if digits is not None and s.id == SERVICE_ID else s
        for s in base.services
    ]
    return msgspec.structs.replace(base, counters=counters, services=services)


def bench_line(**figures: object) -> str:
    """`BENCH k=v (budget ...) k=v ...` (floats rounded sensibly); printed and returned.

    A `budget` keyword is printed in parentheses right after the figure before it."""
    parts = []
    for key, value in figures.items():
        if key == "budget":
            parts.append(f"(budget {value})")
            continue
        if isinstance(value, float):
            value = f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"  # noqa: PLW2901
        parts.append(f"{key}={value}")
    line = "BENCH " + " ".join(parts)
    print(line, flush=True)
    return line


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (values need not be sorted); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def seed(data_dir: Path, *, n_counters: int, tickets: int, digits: int | None = None) -> None:
    """Config with `n_counters` counters, a supervisor (password `demo`) and `tickets` waiting tickets."""
    service = QueueService(data_dir)
    try:
        config = many_counters_config(n_counters, digits)
        service.execute(c.ApplyConfig(actor="bench", config=config, base_version=0))
        service.submit_store(lambda conn: upsert_user(conn, "supervisor", DEMO_PASSWORD, "supervisor", [])).result()
        pending = [service.submit(c.Enqueue(actor="bench", service_id=SERVICE_ID)) for _ in range(tickets)]
        for future in pending:
            future.result(60)
    finally:
        service.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _cli() -> list[str]:
    source = Path(__import__("edge.cli").cli.__file__).read_text()
    if '__name__ == "__main__"' in source:
        return [sys.executable, "-m", "edge.cli"]
    return [str(Path(sys.executable).with_name("qms-edge"))]


@dataclass
class Server:
    """A running `qms-edge serve` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def run_server(data_dir: Path, log_level: str = "warning") -> Iterator[Server]:
    """Start the real appliance on 127.0.0.1 and wait until /api/v1/health answers; stop it afterwards."""
    port = _free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    cmd = [*_cli(), "serve", "--data-dir", str(data_dir), "--host", HOST, "--port", str(port),
           "--log-level", log_level]  # fmt: skip
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ})
    server = Server(proc, port, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                status, _ = asyncio.run(_once(port, "GET", "/api/v1/health"))
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


IDLE_RECONNECT_SECONDS = 4.5  # uvicorn closes keep-alive connections idle for 5 s (its default)


async def _open_streams(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


class Conn:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams (cheap enough for 200 clients on 2 cores).

    Like a browser, it opens a new connection (counted in `reconnects`) when the old one sat idle long enough
    for the server to have closed it; the reconnect is inside the timed request."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port
        self.last_used = time.monotonic()
        self.reconnects = 0

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await _open_streams(port), port)

    async def request(self, method: str, path: str, body: object = None,
                      token: str | None = None) -> tuple[int, bytes]:  # fmt: skip
        if time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS:
            await self.close()
            self.reader, self.writer = await _open_streams(self.port)
            self.reconnects += 1
        try:
            return await self._request(method, path, body, token)
        finally:
            self.last_used = time.monotonic()

    async def _request(self, method: str, path: str, body: object, token: str | None) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        return await read_response(self.reader)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def read_headers(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, headers = await read_headers(reader)
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, b""


async def _once(port: int, method: str, path: str, body: object = None,
                token: str | None = None) -> tuple[int, bytes]:  # fmt: skip
    conn = await Conn.open(port)
    try:
        return await conn.request(method, path, body, token)
    finally:
        await conn.close()


def get_token(port: int, username: str = "supervisor") -> str:
    """A bearer token from POST /api/v1/auth/token."""
    status, body = asyncio.run(
        _once(port, "POST", "/api/v1/auth/token", {"username": username, "password": DEMO_PASSWORD})
    )
    assert status == 200, body
    return str(json.loads(body)["access_token"])
