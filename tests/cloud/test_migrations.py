"""Hub migrations (Alembic): a hub from before migrations is taken as `0001_baseline` and rekeyed by `0002_tenant_keys`
with its rows intact and replication continuing where it was; a fresh database ends exactly at `metadata`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from cloud.apply import Incoming, apply_batch
from cloud.cli import app
from cloud.console import overview
from cloud.schema import metadata
from cloud.store import (
    create_store_engine,
    events,
    head_revision,
    number_leases,
    parked,
    schema_revision,
    ticket_links,
    tickets,
    upgrade_schema,
)
from sync.relay import Outgoing
from tests.cloud.branch_events import TENANT, make_branch_events, subject

BRANCH = "jkt-sudirman"
KEYED = ("events", "parked_events", "tickets", "ticket_links", "number_leases")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """One branch's real log (config.applied, tickets, calls, a completion)."""
    return make_branch_events(tmp_path_factory.mktemp("edge"))


def rows_of(engine: sa.Engine, table: str) -> list[dict[str, Any]]:
    """Every row of a table, as dicts in a stable order."""
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]  # noqa: S608
    return sorted(found, key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def pre_migration_hub(url: str, tmp_path: Path, applied: list[Outgoing], parked_too: list[Outgoing]) -> None:
    """A hub database as main made it before migrations (`metadata.create_all` of the old schema, no
    `alembic_version`), holding the rows the hub had when it applied `applied` and parked `parked_too`: the rows are
    made by today's apply on a scratch hub and copied into the old, branch-keyed tables."""
    scratch = create_store_engine(f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
    apply_batch(scratch, [Incoming(subject(), o.payload) for o in [*applied, *parked_too]])
    old = create_store_engine(url, upgrade=False)
    upgrade_schema(old, "0001_baseline")
    with old.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        for table in ("branches", *KEYED):
            rows = rows_of(scratch, table)
            old_columns = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            for row in rows:
                tenant = row.pop("tenant_id")
                if table == "branches":
                    row["tenant"] = tenant
                for newer in set(row) - old_columns:  # columns later revisions added (e.g. 0003's config hashes)
                    del row[newer]
            if rows:
                conn.execute(sa.table(table, *(sa.column(c) for c in rows[0])).insert(), rows)
        now = "2026-12-01T00:00:00+00:00"
        conn.execute(
            sa.text(
                "INSERT INTO branch_credentials (tenant, branch_id, public_key, created_at) VALUES"
                " ('acme', 'jkt-sudirman', 'UA', :now), ('acme', 'bdg-dago', 'UB', :now)"
            ),
            {"now": now},
        )
        conn.execute(sa.text("INSERT INTO config_versions (tenant, branch_id, version, doc, created_at)"
                             " VALUES ('acme', 'bdg-dago', 1, '{}', :now)"), {"now": now})  # fmt: skip
    old.dispose()
    scratch.dispose()


def test_a_pre_migration_hub_is_rekeyed_and_replication_continues(
    store_url: str, log: list[Outgoing], tmp_path: Path
) -> None:
    half = len(log) // 2
    pre_migration_hub(store_url, tmp_path, log[:half], log[half + 2 : half + 4])  # seq half+1, +2 missing: a gap
    engine = create_store_engine(store_url)  # what `serve` (and every command) does on start
    assert schema_revision(engine) == head_revision()
    assert {r["tenant_id"] for t in KEYED for r in rows_of(engine, t)} == {TENANT}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == half
        assert conn.execute(sa.select(parked.c.seq)).scalars().all() == [log[half + 2].seq, log[half + 3].seq]
        assert conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one() > 0
        assert conn.execute(sa.select(sa.func.count()).select_from(ticket_links)).scalar_one() > 0
        assert conn.execute(sa.select(number_leases)).all() is not None
    before = {b.branch_id: b for b in overview(engine)["branches"]}
    assert before[BRANCH].tenant == TENANT
    assert before[BRANCH].link == "gap"
    assert before[BRANCH].events == half
    assert before["bdg-dago"].link == "never_connected"  # had credentials, never sent: listed after the upgrade
    # The appliance carries on: the rest of its log, plus a redelivery of what the hub already had.
    result = apply_batch(engine, [Incoming(subject(), o.payload) for o in [*log[half - 3 :], *log[:2]]])
    assert result.refused == 0
    assert result.problems == []
    assert result.duplicates == 5  # 3 + 2 below next_seq; the parked copies are taken in order, not twice
    after = {b.branch_id: b for b in overview(engine)["branches"]}
    assert after[BRANCH].link == "ok"
    assert after[BRANCH].events == len(log)
    assert after[BRANCH].next_seq == len(log) + 1
    fresh = create_store_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    apply_batch(fresh, [Incoming(subject(), o.payload) for o in log])
    for table in ("tickets", "ticket_links", "number_leases"):
        assert rows_of(engine, table) == rows_of(fresh, table), table
    assert upgrade_schema(engine) == (head_revision(), head_revision())  # idempotent
    engine.dispose()
    fresh.dispose()


def test_an_older_pre_migration_hub_gets_the_tables_it_lacks(
    store_url: str, log: list[Outgoing], tmp_path: Path
) -> None:
    """A hub last run before status links and HQ accounts existed has no `ticket_links`, `number_leases`, `hq_users`
    (`create_all` used to add them at start): the upgrade adds them and keys what it has."""
    pre_migration_hub(store_url, tmp_path, log[:5], [])
    old = create_store_engine(store_url, upgrade=False)
    with old.begin() as conn:
        for table in ("ticket_links", "number_leases", "hq_users"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
    old.dispose()
    engine = create_store_engine(store_url)
    assert schema_revision(engine) == head_revision()
    assert {r["tenant_id"] for r in rows_of(engine, "events")} == {TENANT}
    result = apply_batch(engine, [Incoming(subject(), o.payload) for o in log[5:]])
    assert (result.applied, result.problems) == (len(log) - 5, [])
    assert rows_of(engine, "ticket_links")  # the links of tickets created after the upgrade
    engine.dispose()


def test_a_fresh_database_ends_exactly_at_the_store_metadata(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []  # every schema change in cloud/store.py comes with its revision


def test_replicas_starting_at_once_upgrade_once(store_url: str) -> None:
    """Several processes opening an empty store at the same moment: one migrates, the others wait and find it done."""
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: create_store_engine(store_url), range(4)))
    assert {schema_revision(e) for e in engines} == {head_revision()}
    for engine in engines:
        engine.dispose()


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    old = create_store_engine(url, upgrade=False)
    upgrade_schema(old, "0001_baseline")
    with old.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    old.dispose()
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--db-url", url])
    assert first.exit_code == 0, first.output
    assert f"-> {head_revision()}" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--db-url", url])
    assert again.exit_code == 0
    assert "already at" in again.output
