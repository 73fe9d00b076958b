"""Fixtures of the image tests: a real hub app served by uvicorn on a free port, with a branch and a one-time code."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from cloud.admin.branches import new_enrolment_code
from cloud.credentials import issue
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.conftest import nats_server
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until

__all__ = ["nats_server", "running_hub"]


@contextlib.contextmanager
def running_hub(
    tmp_path: Path, nats_servers: tuple[str, ...] = (), host: str = "127.0.0.1"
) -> Iterator[tuple[str, str, str]]:
    """A hub with branch acme/jkt-sudirman issued and a fresh one-time code: (hub URL, code, store URL)."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    keys = tmp_path / "keys"
    engine = create_store_engine(url)
    app = create_app(CloudSettings(db_url=url, keys_dir=keys, nats_servers=nats_servers))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="hub started")
    issue(engine, keys, "acme", "jkt-sudirman")
    with engine.begin() as conn:
        code, _ = new_enrolment_code(conn, "acme", "jkt-sudirman", actor="test", source_ip=None)
    try:
        yield f"http://127.0.0.1:{port}", code, url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
