"""Config distribution end to end, with per-branch credentials on a real nats-server: the cloud puts a version in
the `qms_config` KV bucket, the running appliance applies it (`config.applied`, source `cloud`) or refuses it
(`config.rejected`), and either answer replicates back so the cloud shows which version the branch runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import msgspec
import nats
import pytest

from cloud.config_dist import ConfigRefused, distribute
from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from edge.demo import demo_config
from sync.contract_config import BranchConfig, Counter
from tests.support.appliance import RunningAppliance, event_rows, seed_demo
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"


def push(server: NatsServer, keys: Path, store_url: str, config: BranchConfig) -> int:
    """What `qms-cloud config push` does, from the test."""

    async def run() -> int:
        nc = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
        try:
            engine = create_store_engine(store_url)
            version, _revision = await distribute(engine, nc.jetstream(), TENANT, BRANCH, msgspec.json.encode(config))
            engine.dispose()
            return version
        finally:
            await nc.close()

    return asyncio.run(run())


def test_a_distributed_version_is_applied_and_an_invalid_one_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = issue(engine, keys, TENANT, BRANCH)
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    engine.dispose()
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_NATS_NKEY", str(issued.seed_file))
    try:
        with (
            CloudHub(store_url, server.url, connect_options={"nkeys_seed": str(keys / HUB_KEY)}) as hub,
            RunningAppliance(tmp_path / "edge") as appliance,
        ):
            wait_until(lambda: hub.branch(BRANCH) and hub.branch(BRANCH).config_version == 1, what="v1 at the cloud")
            base = demo_config()
            # edited from v1, the version the branch runs (a push based on an older one is refused)
            renamed = msgspec.structs.replace(base, name="Bank Demo - KCP Sudirman (renovated)", version=1)
            assert push(server, keys, store_url, renamed) == 2
            admin = appliance.headers("admin")

            def config_version() -> int:
                return int(httpx.get(f"{appliance.api}/config", headers=admin, timeout=5).json()["version"])

            wait_until(lambda: config_version() == 2, what="v2 applied at the branch")
            doc = httpx.get(f"{appliance.api}/config", headers=admin, timeout=5).json()
            assert doc["name"] == "Bank Demo - KCP Sudirman (renovated)"
            applied = event_rows(tmp_path / "edge", "SELECT body FROM events WHERE type = 'config.applied'")
            assert b'"source":"cloud"' in applied[-1][0]
            wait_until(lambda: hub.branch(BRANCH).config_version == 2, what="v2 reported back to the cloud")

            broken = msgspec.structs.replace(
                renamed,
                version=2,
                counters=[*renamed.counters, Counter(id="99", name="Loket 99", services=["no-such-service"])],
            )
            assert push(server, keys, store_url, broken) == 3
            row = wait_until(
                lambda: (r := hub.branch(BRANCH)) and r.config_rejected_version == 3 and r, what="v3 rejected"
            )
            assert "no-such-service" in row.config_rejected_reason
            assert row.config_version == 2
            assert config_version() == 2
            state = httpx.get(f"{appliance.api}/replication", headers=appliance.headers("admin"), timeout=5).json()
            assert state["cloud_config"]["version"] == 3
            assert state["cloud_config"]["outcome"] == "rejected"
            rejected = event_rows(tmp_path / "edge", "SELECT count(*) FROM events WHERE type = 'config.rejected'")
            assert rejected[0][0] == 1
    finally:
        server.stop()


def test_the_cloud_refuses_a_document_for_another_branch_or_malformed(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    other = msgspec.json.encode(msgspec.structs.replace(demo_config(), branch_id="bdg-dago"))
    with pytest.raises(ConfigRefused, match="for branch 'bdg-dago'"):
        asyncio.run(distribute(engine, None, TENANT, BRANCH, other))
    with pytest.raises(ConfigRefused, match="invalid configuration document"):
        asyncio.run(distribute(engine, None, TENANT, BRANCH, b'{"services": 3}'))
