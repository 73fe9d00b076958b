"""Hub PostgreSQL backups (issue 16, E-PLAT-03) with a real PostgreSQL started here: `qms-cloud db backup` dumps a hub
holding a branch's applied events and customer contacts, `qms-cloud db restore` brings it into a new database with the
same row counts; a dump never holds a contact whose retention ends before the dump expires (the contact rows are
copied beside it, filtered, from the dump's own snapshot), and expired dumps are deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.apply import Incoming, apply_batch
from cloud.cli import app
from cloud.notify import contacts
from cloud.ops import backups
from cloud.store import create_store_engine, parked
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import event_subject
from tests.support.appliance import seed_demo
from tests.support.postgres import PostgresCluster

runner = CliRunner()
SOON_PHONE, SOON_EMAIL = "+6281299887766", "siti.rahma@example.co.id"
LATER_PHONE, LATER_EMAIL = "+6281355501234", "budi.santoso@example.co.id"
PARKED_KEY = "k" * 43


def _database(cluster: PostgresCluster) -> str:
    return cluster.new_database("qms_hub_bk")  # in the suite's cluster (tests/cloud/conftest.py)


def _hub(cluster: PostgresCluster, tmp_path: Path) -> str:
    """A hub store with a branch's events applied, two tickets' contacts (one due in 3 days, one in 30) and an event
    parked with the contact key that came beside it."""
    url = _database(cluster)
    seed_demo(tmp_path / "edge", users=[])
    service = QueueService(tmp_path / "edge")
    try:
        for _ in range(12):
            service.execute(c.Enqueue(service_id="teller"))
        out = service.read(lambda conn: read_outgoing(conn, 0, 1000))
    finally:
        service.stop()
    engine = create_store_engine(url)
    apply_batch(engine, [Incoming(event_subject("acme", "jkt-sudirman"), o.payload) for o in out])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        contacts.record(conn, "acme", "jkt-sudirman", "t-soon", phone=SOON_PHONE, email=SOON_EMAIL, opt_in=True,
                        lang="id", now=now, retention=timedelta(days=3))  # fmt: skip
        contacts.record(conn, "acme", "jkt-sudirman", "t-later", phone=LATER_PHONE, email=LATER_EMAIL, opt_in=True,
                        lang="id", now=now, retention=timedelta(days=30))  # fmt: skip
        conn.execute(sa.insert(parked).values(tenant_id="acme", branch_id="jkt-sudirman", seq=999, body="{}",
                                              received_at=now.isoformat(), contact_key=PARKED_KEY))  # fmt: skip
    engine.dispose()
    return url


def _counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return backups._counts(conn)
    finally:
        engine.dispose()


def test_dump_and_restore_into_a_new_database_without_contacts_that_would_outlive_it(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = _hub(postgres, tmp_path)
    before = _counts(url)
    assert before["events"] == 13  # config.applied + 12 tickets
    assert before["notify_contacts"] == 2
    dumps = tmp_path / "dumps"
    made = runner.invoke(app, ["db", "backup", "--db-url", url, "--backup-dir", str(dumps)])
    assert made.exit_code == 0, made.output
    [dump] = sorted(dumps.glob("qms-hub-*.dump"))
    manifest = json.loads((dumps / f"{dump.name}.json").read_text())
    # Lifetime 7 days (+1 of grace): the contact due in 3 days is left out, the one due in 30 is kept.
    assert manifest["tables"]["notify_contacts"] == 1
    assert manifest["tables"]["parked_events"] == 1
    assert {t: n for t, n in manifest["tables"].items() if t != "notify_contacts"} == {
        t: n for t, n in before.items() if t != "notify_contacts"
    }
    everything = b"".join(p.read_bytes() for p in dumps.iterdir())
    for secret in (SOON_PHONE, SOON_EMAIL, PARKED_KEY):
        assert secret.encode() not in everything, secret
    assert LATER_EMAIL.encode() in (dumps / f"{dump.name}.notify_contacts.copy").read_bytes()

    target = _database(postgres)
    restored = runner.invoke(app, ["db", "restore", str(dump), "--db-url", target])
    assert restored.exit_code == 0, restored.output
    assert _counts(target) == manifest["tables"]
    engine = create_store_engine(target)  # opens as the hub does
    try:
        with engine.connect() as conn:
            assert contacts.read(conn, "acme", "jkt-sudirman", "t-later") is not None
            assert contacts.read(conn, "acme", "jkt-sudirman", "t-soon") is None
            assert conn.execute(sa.select(parked.c.contact_key)).scalars().all() == [None]
    finally:
        engine.dispose()
    # The drill restores the same way and checks every table against the manifest.
    drilled = runner.invoke(app, ["drill", "--db-url", url, "--backup-dir", str(dumps)])
    assert drilled.exit_code == 0, drilled.output


def test_expired_dumps_are_deleted_and_a_damaged_contact_file_refuses_the_restore(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = _hub(postgres, tmp_path)
    dumps = tmp_path / "dumps"
    old = backups.backup(url, dumps, now=datetime.now(UTC) - timedelta(days=8))
    assert (dumps / f"{old.name}.notify_contacts.copy").exists()
    new = backups.backup(url, dumps)
    assert sorted(p.name for p in dumps.glob("qms-hub-*.dump")) == [new.name]
    assert not list(dumps.glob(f"{old.name}*"))  # its manifest and contact rows went with it
    assert backups.prune(dumps, now=datetime.now(UTC) + timedelta(days=7, seconds=1)) == [new.name]

    again = backups.backup(url, dumps)
    copy = dumps / f"{again.name}.notify_contacts.copy"
    copy.write_bytes(copy.read_bytes() + b"x")
    refused = runner.invoke(app, ["db", "restore", str(again), "--db-url", _database(postgres)])
    assert refused.exit_code == 1
    assert "missing or damaged" in refused.output
