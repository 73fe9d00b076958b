"""A real `qms-cloud serve` pushes the open anomaly alerts it finds in its store to the branches' `qms_alerts` keys at
start, without any anomaly check nudging it (the checks are off here): with NATS up before the hub, and with NATS
started only after the hub (published once NATS answers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
import sqlalchemy as sa
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from cloud.analytics.tables import alerts
from cloud.store import create_store_engine, register_branch, transaction
from sync.hq_alerts import ALERTS_BUCKET, AlertsDocument
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow

TENANT, BRANCH = "acme", "jkt-01"


def _store(tmp_path: Path) -> str:
    """A hub store with one branch whose `teller` alert is open and whose `cs` alert has cleared."""
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, BRANCH)
        for service, state in (("teller", "open"), ("cs", "cleared")):
            conn.execute(sa.insert(alerts).values(
                tenant_id=TENANT, branch_id=BRANCH, service_id=service, state=state,
                opened_at="2026-12-07T02:00:00+00:00", p90_seconds=1650.0, baseline_seconds=410.0,
                cleared_at=None if state == "open" else "2026-12-07T03:00:00+00:00",
                updated_at="2026-12-07T03:00:00+00:00"))  # fmt: skip
    engine.dispose()
    return url


@contextmanager
def serving(tmp_path: Path, url: str, nats_url: str) -> Iterator[str]:
    """`qms-cloud serve` as a subprocess (anomaly checks off: nothing nudges the publisher) until it answers."""
    port = free_port()
    log_path = tmp_path / "cloud.log"
    with log_path.open("wb") as log:
        hub = subprocess.Popen(
            [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url", url, "--nats-url",
             nats_url, "--port", str(port), "--log-level", "warning", "--keys-dir", str(tmp_path / "keys")],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "QMS_ANOMALY_CHECK_SECONDS": "0"},
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:

            def answers() -> bool:
                try:
                    return httpx.get(f"{base}/api/v1/health", timeout=2).status_code in (200, 503)
                except httpx.HTTPError:
                    return hub.poll() is not None  # stop waiting if it died; asserted below

            wait_until(answers, timeout=90, what="qms-cloud serve")
            assert hub.poll() is None, log_path.read_text()
            yield base
        finally:
            hub.terminate()
            hub.wait(timeout=30)


async def _document(nats_url: str) -> AlertsDocument | None:
    """The branch's document in `qms_alerts`, None while there is none (or NATS/the bucket is not there)."""
    try:
        nc = await nats.connect(nats_url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception:  # not up yet
        return None
    try:
        kv = await nc.jetstream().key_value(ALERTS_BUCKET)
        entry = await kv.get(f"{TENANT}.{BRANCH}")
    except (BucketNotFoundError, KeyNotFoundError):
        return None
    finally:
        await nc.close()
    return msgspec.json.decode(entry.value or b"", type=AlertsDocument)


def _published(nats_url: str) -> AlertsDocument | None:
    return asyncio.run(_document(nats_url))


def _open_services(document: AlertsDocument) -> list[tuple[str, float, float]]:
    return [(a.service_id, a.p90_seconds, a.baseline_seconds) for a in document.alerts]


def test_a_starting_hub_publishes_the_open_alerts_without_a_nudge(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        url = _store(tmp_path)
        assert _published(server.url) is None  # nothing before the hub
        with serving(tmp_path, url, server.url):
            document = wait_until(lambda: _published(server.url), timeout=30, what="the branch's alerts document")
        assert (document.tenant_id, document.branch_id) == (TENANT, BRANCH)
        assert _open_services(document) == [("teller", 1650.0, 410.0)]  # the cleared one is not listed
    finally:
        server.stop()


def test_a_hub_started_before_nats_publishes_once_nats_answers(tmp_path: Path) -> None:
    port = free_port()
    server = NatsServer(tmp_path / "nats", port=port)
    url = _store(tmp_path)
    try:
        with serving(tmp_path, url, f"nats://127.0.0.1:{port}"):
            assert server.proc is None  # the hub serves with NATS down
            server.start()
            document = wait_until(lambda: _published(server.url), timeout=60, what="the alerts once NATS is up")
        assert _open_services(document) == [("teller", 1650.0, 410.0)]
    finally:
        server.stop()
