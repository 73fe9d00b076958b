"""The hub audit log (US-ADMIN-005): hash-chained, verified by `qms-cloud audit verify`, written under concurrency
without forking the chain, merged with the branches' replicated audit events, filtered and exported (SQLite and
PostgreSQL)."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.admin.audit import Filters, entries, record, verify
from cloud.admin.tables import hub_audit
from cloud.apply import Incoming, apply_batch
from cloud.cli import app as cloud_cli
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.cloud.branch_events import make_branch_events, subject


def test_the_chain_verifies_and_an_edited_or_deleted_entry_is_found(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with engine.begin() as conn:
        for i in range(5):
            record(
                conn,
                actor="ana",
                action="branch.update",
                tenant="acme",
                branch="jkt-1",
                before={"n": i},
                after={"n": i + 1},
                source_ip="10.0.0.9",
                correlation_id=f"req-{i}",
            )
    assert verify(engine).ok
    assert verify(engine).rows == 5
    ok = CliRunner().invoke(cloud_cli, ["audit", "verify", "--db-url", store_url])
    assert ok.exit_code == 0, ok.output
    assert "intact: 5 entries" in ok.output

    with engine.begin() as conn:  # someone rewrites history in the database
        conn.execute(hub_audit.update().where(hub_audit.c.seq == 3).values(after='{"n": 99}'))
    broken = verify(engine)
    assert (broken.broken_at, broken.reason) == (3, "its content was changed after it was written")
    refused = CliRunner().invoke(cloud_cli, ["audit", "verify", "--db-url", store_url])
    assert refused.exit_code == 1
    assert "BROKEN at entry 3" in refused.output

    with engine.begin() as conn:
        conn.execute(hub_audit.update().where(hub_audit.c.seq == 3).values(after='{"n": 3}'))
    assert verify(engine).ok  # restored byte for byte
    with engine.begin() as conn:
        conn.execute(sa.delete(hub_audit).where(hub_audit.c.seq == 2))
    assert verify(engine).broken_at == 3  # a deleted entry leaves a hole the next one points across
    engine.dispose()


def test_concurrent_writers_keep_one_unbroken_chain(store_url: str) -> None:
    """Two hub replicas (threads here) appending at once: no seq twice, no fork."""
    engine = create_store_engine(store_url)

    def write(worker: int) -> None:
        for i in range(10):
            with engine.begin() as conn:
                record(conn, actor=f"user{worker}", action="config.distribute", tenant="acme", after={"i": i})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    outcome = verify(engine)
    assert outcome.ok, outcome
    assert outcome.rows == 40
    engine.dispose()


def test_hub_actions_merge_with_branch_events_filtered_and_exported(store_url: str, tmp_path: Path) -> None:
    log = make_branch_events(tmp_path / "edge", "jkt-sudirman", tickets=3)
    engine = create_store_engine(store_url)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    with engine.begin() as conn:
        record(
            conn,
            actor="ana",
            action="branch.update",
            tenant="acme",
            branch="jkt-sudirman",
            target='=HYPERLINK("http://evil")',
            after={"name": "KCP Sudirman"},
            at=datetime(2026, 12, 4, 18, 30, tzinfo=UTC),
        )
        record(conn, actor="budi", action="branch.create", tenant="beta", branch="bdg-1")
        everything, _tz = entries(conn, Filters(), None)
        assert {e.source for e in everything} == {"hub", "branch"}
        applied = [e for e in everything if e.action == "config.applied"]
        assert applied
        assert applied[0].branch == "jkt-sudirman"
        assert applied[0].target == "config v1"
        by_user, _ = entries(conn, Filters(actor="ana"), None)
        assert [e.action for e in by_user] == ["branch.update"]
        # 18:30 UTC is 01:30 on 5 December in Jakarta: the day filter is the branch's calendar day
        assert [
            e.actor
            for e in entries(conn, Filters(since=date(2026, 12, 5), until=date(2026, 12, 5), actor="ana"), None)[0]
        ] == ["ana"]
        assert entries(conn, Filters(until=date(2026, 12, 4), actor="ana"), None)[0] == []
        scoped, _ = entries(conn, Filters(), frozenset({"beta"}))
        assert [(e.tenant, e.action) for e in scoped] == [("beta", "branch.create")]
    add_accounts(engine, "root")
    engine.dispose()

    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        sign_in(client, "root")
        page = client.get("/admin/audit", params={"branch": "jkt-sudirman", "lang": "en"})
        assert page.status_code == 200
        assert 'data-action="branch.update"' in page.text
        assert 'data-action="config.applied"' in page.text
        assert "bdg-1" not in page.text
        assert "Export CSV" in page.text
        assert "Ekspor CSV" in client.get("/admin/audit", params={"lang": "id"}).text
        exported = client.get("/admin/audit.csv", params={"actor": "ana"})
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][:7] == ["time", "time_zone", "source", "tenant", "branch", "actor", "action"]
        assert rows[1][0] == "2026-12-05 01:30:00"
        assert rows[1][1] == "Asia/Jakarta"
        assert rows[1][7] == '\'=HYPERLINK("http://evil")'  # the formula stays text in a spreadsheet
        # the export is itself an audited console action
        assert 'data-action="audit.export"' in client.get("/admin/audit").text
