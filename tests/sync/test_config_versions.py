"""A configuration version names one document: its number travels with a content hash (KV entry, `config.applied` /
`config.rejected`, the hub's rows, console, CLI), and a push based on an older version than the branch runs (a local
edit HQ never saw) is refused unless `--force` (real nats-server, real appliance, the hub's consumer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from cloud.cli import app as cloud_cli
from cloud.console import overview
from cloud.store import branches, config_versions, create_store_engine, upgrade_schema
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from sync.contract import ConfigApplied
from sync.contract_config import BranchConfig, Counter, config_decoder, config_hash, short_hash
from tests.support.appliance import RunningAppliance, event_rows, run_cli, seed_demo
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"


def cli_push(tmp_path: Path, store_url: str, server: NatsServer, config: BranchConfig, *flags: str) -> Any:
    """`qms-cloud config push` with a document file."""
    doc = tmp_path / f"push-{config.version}-{config_hash(config)[:6]}.json"
    doc.write_bytes(msgspec.json.encode(config))
    args = ["config", "push", TENANT, BRANCH, str(doc), "--db-url", store_url, "--nats-url", server.url, *flags]
    return CliRunner().invoke(cloud_cli, args)


def running_at_branch(appliance: RunningAppliance) -> BranchConfig:
    """The document the appliance runs."""
    r = httpx.get(f"{appliance.api}/config", headers=appliance.headers("admin"), timeout=5)
    r.raise_for_status()
    return config_decoder.decode(r.content)


def test_a_push_based_on_an_older_version_than_the_branch_runs_is_refused_unless_forced(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    with CloudHub(store_url, nats_server.url) as hub, RunningAppliance(tmp_path / "edge") as appliance:
        v1 = running_at_branch(appliance)
        row = wait_until(lambda: (r := hub.branch(BRANCH, TENANT)) and r.config_version == 1 and r, what="v1 at hub")
        assert row.config_hash == config_hash(v1)

        # A branch admin edits the configuration on the appliance: v2, which HQ never distributed.
        local = msgspec.structs.replace(v1, name="Bank Demo - KCP Sudirman (edited at the branch)")
        r = httpx.put(f"{appliance.api}/config", content=msgspec.json.encode(local),
                      headers=appliance.headers("admin"), timeout=5)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        row = wait_until(lambda: (r := hub.branch(BRANCH, TENANT)) and r.config_version == 2 and r, what="v2 at hub")
        assert row.config_hash == config_hash(local)
        applied = json.loads(event_rows(tmp_path / "edge", "SELECT body FROM events WHERE type = 'config.applied'"
                                        " ORDER BY seq DESC LIMIT 1")[0][0])  # fmt: skip
        assert applied["config_hash"] == config_hash(local)

        # HQ pushes a document edited from v1: refused, naming what the branch runs and why.
        from_hq = msgspec.structs.replace(v1, name="Bank Demo - KCP Sudirman (renamed by HQ)")
        refused = cli_push(tmp_path, store_url, nats_server, from_hq)
        assert refused.exit_code == 1
        assert f"the branch runs v2 ({short_hash(config_hash(local))}), newer than v1" in refused.output
        assert "edited at the branch" in refused.output
        assert "--force" in refused.output
        assert running_at_branch(appliance).name == local.name

        # --force replaces the local edit.
        forced = cli_push(tmp_path, store_url, nats_server, from_hq, "--force")
        assert forced.exit_code == 0, forced.output
        pushed = msgspec.structs.replace(from_hq, version=3)
        assert f"configuration v3 ({short_hash(config_hash(pushed))}) distributed" in forced.output
        wait_until(lambda: running_at_branch(appliance).version == 3, what="v3 applied")
        assert running_at_branch(appliance).name == from_hq.name
        status = run_cli("status", "--data-dir", str(tmp_path / "edge"))
        assert f"config v3 ({short_hash(config_hash(pushed))})" in status.stdout
        wait_until(lambda: hub.branch(BRANCH, TENANT).config_hash == config_hash(pushed), what="v3 hash at hub")

        # A push based on v3 that the branch refuses: the console tells the three documents apart.
        broken = msgspec.structs.replace(
            pushed, counters=[*pushed.counters, Counter(id="99", name="Loket 99", services=["no-such-service"])]
        )
        assert cli_push(tmp_path, store_url, nats_server, broken).exit_code == 0
        row = wait_until(lambda: (r := hub.branch(BRANCH, TENANT)) and r.config_rejected_version == 4 and r,
                         what="v4 rejected")  # fmt: skip
        rejected_hash = config_hash(msgspec.structs.replace(broken, version=4))
        assert row.config_rejected_hash == rejected_hash
        runs, cloud, rejected = (f"v3 ({short_hash(config_hash(pushed))})", f"v4 ({short_hash(rejected_hash)})",
                                 f"v4 ({short_hash(rejected_hash)})")  # fmt: skip
        view = next(b for b in overview(hub.engine)["branches"] if b.branch_id == BRANCH)
        assert (view.config_label("runs"), view.config_label("latest"), view.config_label("rejected")) == (
            runs, cloud, rejected)  # fmt: skip
        with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
            page = client.get("/", params={"lang": "en"}).text
        assert f"runs {runs} · HQ {cloud}" in page  # the console calls the hub HQ
        assert f"rejected {rejected}" in page
        listed = CliRunner().invoke(cloud_cli, ["branch", "list", "--db-url", store_url])
        assert f"config {runs}" in listed.output


def test_the_same_number_for_another_document_is_rejected_at_the_branch(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub had not heard of a local v2 yet and distributes its own v2: the branch refuses it by hash instead of
    taking it for the version it already runs."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", nats_server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    with RunningAppliance(tmp_path / "edge") as appliance:
        with CloudHub(store_url, nats_server.url) as hub:  # the hub learns that the branch runs v1, then stops
            wait_until(lambda: (r := hub.branch(BRANCH, TENANT)) and r.config_version == 1, what="v1 at the hub")
        v1 = running_at_branch(appliance)
        local = msgspec.structs.replace(v1, name="edited at the branch")
        r = httpx.put(f"{appliance.api}/config", content=msgspec.json.encode(local),
                      headers=appliance.headers("admin"), timeout=5)  # fmt: skip
        assert r.json()["version"] == 2
        hq = msgspec.structs.replace(v1, name="edited by HQ")
        out = cli_push(tmp_path, store_url, nats_server, hq)
        assert out.exit_code == 0, out.output  # the hub still thinks the branch runs v1: it distributes a v2
        assert "configuration v2 (" in out.output

        def rejected() -> int:
            return int(
                event_rows(tmp_path / "edge", "SELECT count(*) FROM events WHERE type = 'config.rejected'")[0][0]
            )

        wait_until(lambda: rejected() == 1, what="the hub's v2 rejected at the branch")
        body = json.loads(event_rows(tmp_path / "edge", "SELECT body FROM events WHERE type = 'config.rejected'")[0][0])
        assert body["version"] == 2
        assert body["config_hash"] == config_hash(msgspec.structs.replace(hq, version=2))
        assert "already runs a different v2" in body["errors"][0]
        assert running_at_branch(appliance).name == local.name


def test_an_upgraded_hub_gets_the_hashes_of_what_it_already_had(tmp_path: Path) -> None:
    """Migration 0003 fills the hashes of stored versions and of the version each branch last reported running."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}", upgrade=False)
    upgrade_schema(engine, "0002_tenant_keys")
    v1 = msgspec.structs.replace(demo_config(), version=1)
    applied = ConfigApplied(event_id="e1", occurred_at=datetime.now(UTC), actor="cloud", branch_id=BRANCH, seq=1,
                            version=1, config=v1)  # fmt: skip
    now = datetime.now(UTC).isoformat()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO config_versions (tenant_id, branch_id, version, doc, kv_revision, created_at)"
                " VALUES (:t, :b, 1, :doc, 1, :now)"
            ),
            {"t": TENANT, "b": BRANCH, "doc": msgspec.json.encode(v1).decode(), "now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (tenant_id, branch_id, seq, event_id, type, occurred_at, hash, body, received_at)"
                " VALUES (:t, :b, 1, 'e1', 'config.applied', :now, 'h', :body, :now)"
            ),
            {"t": TENANT, "b": BRANCH, "now": now, "body": msgspec.json.encode(applied).decode()},
        )
        conn.execute(
            sa.text(
                "INSERT INTO branches (tenant_id, branch_id, next_seq, last_hash, events, duplicates, config_version,"
                " status, updated_at) VALUES (:t, :b, 2, 'h', 1, 0, 1, 'ok', :now)"
            ),
            {"t": TENANT, "b": BRANCH, "now": now},
        )
    upgrade_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(config_versions.c.config_hash)).scalar_one() == config_hash(v1)
        assert conn.execute(sa.select(branches.c.config_hash)).scalar_one() == config_hash(v1)
    view = overview(engine)["branches"][0]
    assert view.config_label("runs") == view.config_label("latest") == f"v1 ({short_hash(config_hash(v1))})"
    engine.dispose()
