"""The hub's durable consumer against a real nats-server: quiet branches are normal (no crash, no reconnect), a store
that refuses a batch leaves it unacknowledged and is retried with back-off, logged once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer

IDLE_FETCH_TIMEOUT = 0.02
# Idle pulls: ten minutes of a hub at a 1 s fetch timeout (fifty at the default FETCH_TIMEOUT_SECONDS).
IDLE_CYCLES = 600


def test_an_idle_hub_neither_crashes_nor_reconnects(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hundreds of empty pulls (the server's "no messages" answer racing the client's timer included) are normal."""
    caplog.set_level(logging.INFO, logger="qms.cloud.consumer")
    store = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    with CloudHub(store, nats_server.url, fetch_timeout=IDLE_FETCH_TIMEOUT) as hub:
        assert hub.consumer is not None
        stats = hub.consumer.stats
        wait_until(lambda: stats.idle_fetches >= IDLE_CYCLES, timeout=120, what="idle pulls")
        assert stats.connects == 1  # one session from start to end: the pull loop never tore it down
        assert stats.disconnects == 0
        assert (stats.failures, stats.ack_failures, stats.batches) == (0, 0, 0)
        assert stats.last_error is None
        assert stats.nats_connected
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []
