"""Helpers for tests that drive the appliance: seeding a data dir, running the real server, SSE parsing.

`RunningAppliance` starts `qms-edge serve` as a subprocess on a free port (the real uvicorn + Litestar + writer),
waits until `/api/v1/health` answers and always stops it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from edge.auth import TokenIssuer, User, load_secret, upsert_user
from edge.demo import DEMO_PASSWORD, DEMO_USERS, demo_config
from edge.engine import commands as c
from edge.service import QueueService
from edge.tls import server_files
from sync.contract_config import BranchConfig

STARTUP_SECONDS = 60.0  # a deadline, not a wait: a start takes ~2 s idle, 20-30 s on a 2-core box at load 10+
STOP_SECONDS = 10.0


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a test server and wait for a graceful exit; SIGKILL it if none comes within `timeout`."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_demo(data_dir: Path, config: BranchConfig | None = None,
              users: Iterable[tuple[str, str, list[str]]] = DEMO_USERS) -> BranchConfig:  # fmt: skip
    """Create the database with a configuration (the demo branch by default) and the demo users (password `demo`).

    Returns the configuration as applied (version 1). The writer is stopped again before returning.
    """
    config = config or demo_config()
    service = QueueService(data_dir)
    try:
        outcome = service.execute(c.ApplyConfig(actor="test", config=config, base_version=0, source="test"))
        assert outcome.response["version"] == 1, outcome.response
        for username, role, counters in users:
            service.submit_store(
                lambda conn, u=username, r=role, cs=counters: upsert_user(conn, u, DEMO_PASSWORD, r, cs)  # type: ignore[misc]
            ).result(timeout=30)
        applied = service.state.config
    finally:
        service.stop()
    assert applied is not None
    return applied


def mint_token(data_dir: Path, username: str, *, branch_id: str = "jkt-sudirman",
               users: Iterable[tuple[str, str, list[str]]] = DEMO_USERS) -> str:  # fmt: skip
    """A valid token signed with the data dir's key, without the (deliberately slow) password check."""
    for name, role, counters in users:
        if name == username:
            user = User(username=name, role=role, counters=list(counters))  # type: ignore[arg-type]
            return TokenIssuer(load_secret(data_dir)).issue(user, branch_id)[0]
    raise KeyError(username)


def qms_edge_command() -> list[str]:
    """How to run `qms-edge` as a subprocess.

    `python -m edge.cli` when the module has its `if __name__ == "__main__": app()` guard; otherwise the console
    script next to the interpreter (`.venv/bin/qms-edge`), or the Typer app through `-c` as a last resort.
    """
    import edge.cli

    if 'if __name__ == "__main__":' in Path(edge.cli.__file__).read_text():
        return [sys.executable, "-m", "edge.cli"]
    script = Path(sys.executable).parent / "qms-edge"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from edge.cli import app; app()"]


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `qms-edge ARGS` and capture its output."""
    return subprocess.run([*qms_edge_command(), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def event_rows(data_dir: Path, sql: str = "SELECT seq, type, request_id, ticket_id, body FROM events ORDER BY seq",
               params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:  # fmt: skip
    """Rows from the data dir's event log, read with a separate read-only connection."""
    conn = sqlite3.connect(f"file:{data_dir / 'qms.sqlite3'}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count_request_events(data_dir: Path, request_id: str) -> int:
    """How many events in the log carry this request_id."""
    return int(event_rows(data_dir, "SELECT count(*) FROM events WHERE request_id = ?", (request_id,))[0][0])


class RunningAppliance:
    """`qms-edge serve` on 127.0.0.1:`port` as a subprocess; use as a context manager."""

    def __init__(self, data_dir: Path, port: int | None = None, *, args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.args = args  # extra `qms-edge serve` options
        self.port = port or free_port()
        scheme = "https" if server_files(data_dir) else "http"  # with a LAN certificate it serves HTTPS only
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        self.api = f"{self.base_url}/api/v1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"appliance-{self.port}.log"
        self._tokens: dict[str, str] = {}
        self._log: Any = None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> RunningAppliance:
        """Start the server and wait (bounded) until its health endpoint answers."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        cmd = [*qms_edge_command(), "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning", *self.args]  # fmt: skip
        # Test servers do not announce themselves on the LAN unless a test asks for it (QMS_MDNS=1).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "QMS_MDNS": os.environ.get("QMS_MDNS", "0")}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + STARTUP_SECONDS
        last_error: Exception | None = None
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self._reap()
                    raise RuntimeError(f"appliance exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if client.get(f"{self.api}/health").status_code == 200:
                        return self
                except httpx.HTTPError as exc:
                    last_error = exc
                time.sleep(0.05)  # polling interval, bounded by the deadline
        self.kill()
        raise RuntimeError(f"appliance not healthy after {STARTUP_SECONDS}s ({last_error}):\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: a power cut, as far as the process is concerned."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_SECONDS)
        self._reap()

    def stop(self) -> int | None:
        """SIGTERM and wait for a graceful exit (SIGKILL if it does not come); returns the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, STOP_SECONDS)
        self._reap()
        return self.proc.returncode if self.proc is not None else None

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        """What the server printed (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> RunningAppliance:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    # ---- conveniences ----------------------------------------------------------------------------------------

    def token(self, username: str, password: str = DEMO_PASSWORD) -> str:
        """A bearer token for the user, obtained through `POST /auth/token` (cached)."""
        if username not in self._tokens:
            r = httpx.post(f"{self.api}/auth/token", json={"username": username, "password": password}, timeout=10)
            r.raise_for_status()
            self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    def headers(self, username: str) -> dict[str, str]:
        """Authorization headers for the user."""
        return {"Authorization": f"Bearer {self.token(username)}"}


# ---- Server-Sent Events ---------------------------------------------------------------------------------------


@dataclass
class SseEvent:
    """One dispatched SSE message."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """A small SSE parser (WHATWG rules): yields one SseEvent per blank-line-terminated block with data or id."""
    current = SseEvent()
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data or current.id is not None:
                current.data = "\n".join(data)
                yield current
            current, data = SseEvent(), []
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "retry" and value.isdigit():
            current.retry = int(value)


class SseParser:
    """Incremental variant of `parse_sse` for async line streams."""

    def __init__(self) -> None:
        self._current = SseEvent()
        self._data: list[str] = []

    def feed(self, raw: str) -> SseEvent | None:
        """Feed one line; returns an event when a block completes."""
        line = raw.rstrip("\r\n")
        if line == "":
            done = None
            if self._data or self._current.id is not None:
                self._current.data = "\n".join(self._data)
                done = self._current
            self._current, self._data = SseEvent(), []
            return done
        if line.startswith(":"):
            self._current.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._current.id = value
        elif name == "event":
            self._current.event = value
        return None


@contextlib.contextmanager
def running(data_dir: Path) -> Iterator[RunningAppliance]:
    """`with running(dir) as appliance:` — start, yield, always stop."""
    appliance = RunningAppliance(data_dir)
    try:
        yield appliance.start()
    finally:
        appliance.stop()
