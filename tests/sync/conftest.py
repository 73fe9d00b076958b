"""Fixtures of the replication tests: the cloud store (SQLite and a throwaway PostgreSQL) and a real nats-server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.conftest import postgres, store_url
from tests.support.nats_server import NatsServer

__all__ = ["postgres", "store_url"]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream-enabled nats-server of this test's own, on a free port."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()
