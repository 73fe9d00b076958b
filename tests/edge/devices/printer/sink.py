"""A recording ESC/POS printer: a TCP server that stores every byte it receives (the thermal printer stand-in)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class PrinterSink:
    """Listens on 127.0.0.1:`port`; `jobs` holds one bytes object per connection.

    `paper_out=True` answers the DLE EOT 4 status query with "paper end", as a real printer with an empty roll does.
    """

    def __init__(self, *, paper_out: bool = False) -> None:
        self.paper_out = paper_out
        self.jobs: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="printer-sink", daemon=True)

    def __enter__(self) -> PrinterSink:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = bytearray()
                while True:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    data += chunk
                    if self.paper_out and data.endswith(b"\x10\x04\x04"):
                        conn.sendall(b"\x72")  # 0b0111_0010: paper end (bits 5, 6) + fixed bits
            with self._changed:
                self.jobs.append(bytes(data))
                self._changed.notify_all()

    def wait_for_jobs(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Block until `count` print jobs arrived (or fail)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.jobs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} print job(s), got {len(self.jobs)}")
                self._changed.wait(left)
            return list(self.jobs)
