"""Hub PostgreSQL backup and restore drill against a real PostgreSQL (issue 16, E-PLAT-03): a hub store holding a real
branch's applied events is dumped (`qms-cloud backup`, pg_dump -Fc with row counts from the dump's own snapshot), the
drill restores the newest dump into a scratch database, matches every table's rows with the manifest, opens it as the
hub does and drops it; a damaged dump fails the drill."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.apply import Incoming, apply_batch
from cloud.cli import app
from cloud.ops.backups import DRILL_FILE, last_drill
from cloud.store import create_store_engine
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import event_subject
from tests.support.appliance import seed_demo
from tests.support.postgres import PostgresCluster

runner = CliRunner()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _hub_with_events(cluster: PostgresCluster, tmp_path: Path) -> str:
    url = cluster.new_database("qms_hub")
    seed_demo(tmp_path / "edge", users=[])
    service = QueueService(tmp_path / "edge")
    try:
        for _ in range(15):
            service.execute(c.Enqueue(service_id="teller"))
        out = service.read(lambda conn: read_outgoing(conn, 0, 1000))
    finally:
        service.stop()
    engine = create_store_engine(url)
    apply_batch(engine, [Incoming(event_subject("acme", "jkt-sudirman"), o.payload) for o in out])
    engine.dispose()
    return url


def test_dump_and_drill_with_a_real_postgresql(postgres: PostgresCluster, tmp_path: Path) -> None:
    url = _hub_with_events(postgres, tmp_path)
    dumps = tmp_path / "dumps"
    made = runner.invoke(app, ["backup", "--db-url", url, "--backup-dir", str(dumps)])
    assert made.exit_code == 0, made.output
    [dump] = sorted(dumps.glob("qms-hub-*.dump"))
    manifest = json.loads((dumps / f"{dump.name}.json").read_text())
    assert manifest["tables"]["events"] == 16  # config.applied + 15 tickets
    drilled = runner.invoke(app, ["drill", "--db-url", url, "--backup-dir", str(dumps)])
    assert drilled.exit_code == 0, drilled.output
    assert "restore drill passed" in drilled.output
    assert last_drill(dumps) is not None
    with sa.create_engine(postgres.url).connect() as conn:  # the scratch database is gone again
        names = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'qms_drill_%'")).all()
    assert names == []


def test_a_damaged_dump_fails_the_drill(postgres: PostgresCluster, tmp_path: Path) -> None:
    url = _hub_with_events(postgres, tmp_path)
    dumps = tmp_path / "dumps"
    assert runner.invoke(app, ["backup", "--db-url", url, "--backup-dir", str(dumps)]).exit_code == 0
    [dump] = sorted(dumps.glob("qms-hub-*.dump"))
    dump.write_bytes(dump.read_bytes()[:-100])
    failed = runner.invoke(app, ["drill", "--db-url", url, "--backup-dir", str(dumps)])
    assert failed.exit_code == 1
    assert "SHA-256" in failed.output
    assert not (dumps / DRILL_FILE).exists()
