"""The hub's web app served by uvicorn on a free port in a thread, so provider stand-ins can call its webhooks over
real HTTP (as the providers do)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from litestar import Litestar

from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until


@contextmanager
def served(app: Litestar, timeout: float = 90.0) -> Iterator[str]:
    """Serve `app` (lifespan included) and yield its base URL once it listens (within `timeout` s on busy cores);
    stopped on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="hub", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=timeout, what="hub started")
        assert server.started, "the hub did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
