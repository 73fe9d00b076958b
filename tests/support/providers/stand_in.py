"""A real local HTTP server standing in for a provider's API: it records every request and answers from a script of
behaviours (`ok`, `429`, `500`, `hang`, `permanent`), each provider subclass shaping the bodies as the real API does.
Also `WebhookSink`: a real HTTP endpoint that records the callbacks a stand-in sends to "our" webhook URL."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

HANG_SECONDS = 10.0  # a hung request is released at the latest when the stand-in stops


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """One scripted answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        owner = self.server.owner
        answer = owner.handle(request)
        if answer is None:  # hang: hold the connection without an answer until released
            owner.released.wait(HANG_SECONDS)
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `requests` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: StandIn


class StandIn:
    """A provider stand-in on a free loopback port; subclasses implement `answer(kind, request)`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[str] = deque()
        self.retry_after = "2"
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def then(self, *kinds: str) -> Self:
        """Queue behaviours for the next requests (after them: `ok`)."""
        self.script.extend(kinds)
        return self

    def handle(self, request: Recorded) -> Answer | None:
        """Record the request and answer per the script (None = hang)."""
        with self._lock:
            self.requests.append(request)
            kind = self.script.popleft() if self.script else "ok"
        return None if kind == "hang" else self.answer(kind, request)

    def answer(self, kind: str, request: Recorded) -> Answer:
        """The provider's answer for a behaviour; overridden per provider."""
        return Answer(200 if kind == "ok" else 500)

    def start(self) -> Self:
        """Listen on a free port and serve in a thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class WebhookSink(StandIn):
    """ "Our" webhook URL in adapter tests: records callbacks and answers 200 (the route itself is the dispatcher's)."""

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Always 200: the test checks the recorded callback with the provider's `parse_webhook`."""
        return Answer(200, b"")

    def url(self, path: str = "/hooks") -> str:
        """A full URL on the sink."""
        return self.base_url + path
