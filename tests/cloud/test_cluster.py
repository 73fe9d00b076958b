"""The shipped 3-node JetStream cluster configuration (deploy/nats), run for real on free local ports: it parses,
the nodes form a cluster, `QMS_EVENTS` is created with three replicas, and events are still accepted with a node down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import APIError

from cloud.consumer import ensure_stream
from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from sync.relay import STREAM, event_subject
from tests.support.appliance import free_port
from tests.support.nats_server import NatsServer, nats_server_binary

pytestmark = pytest.mark.slow
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nats"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[list[NatsServer], Path]]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    keys = tmp_path / "keys"
    issue(engine, keys, "acme", "jkt-sudirman")
    auth = authorization_block(engine, keys)
    engine.dispose()
    route_ports = [free_port() for _ in range(3)]
    routes = {f"NATS_ROUTE_{i + 1}": f"nats-route://127.0.0.1:{p}" for i, p in enumerate(route_ports)}
    nodes = []
    for i in range(3):
        workdir = tmp_path / f"nats-{i + 1}"
        workdir.mkdir()
        shutil.copy(DEPLOY / "nats-server.conf", workdir / "node.conf")
        (workdir / "auth.conf").write_text(auth)
        env = {"NATS_SERVER_NAME": f"nats-{i + 1}", "NATS_STORE_DIR": str(workdir / "jetstream"), **routes}
        args = ("-c", str(workdir / "node.conf"), "--cluster", f"nats://127.0.0.1:{route_ports[i]}",
                "-m", str(free_port()))  # fmt: skip
        nodes.append(NatsServer(workdir, extra_args=args, env=env, jetstream_flags=False))
    await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
    try:
        yield nodes, keys
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


def test_nats_server_accepts_the_config(tmp_path: Path) -> None:
    """`nats-server -t` (test the configuration and exit) with a node's environment."""
    shutil.copy(DEPLOY / "nats-server.conf", tmp_path / "node.conf")
    shutil.copy(DEPLOY / "auth.conf.example", tmp_path / "auth.conf")
    env = {**os.environ, "NATS_SERVER_NAME": "nats-1", "NATS_STORE_DIR": str(tmp_path / "js")}
    env |= {f"NATS_ROUTE_{i}": f"nats-route://127.0.0.1:{6221 + i}" for i in (1, 2, 3)}
    done = subprocess.run([nats_server_binary(), "-t", "-c", str(tmp_path / "node.conf")], env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout + done.stderr


async def test_three_nodes_keep_accepting_events_with_one_down(
    cluster: tuple[list[NatsServer], Path],
) -> None:
    nodes, keys = cluster
    nc = await nats.connect([n.url for n in nodes], nkeys_seed=str(keys / HUB_KEY), max_reconnect_attempts=-1,
                            reconnect_time_wait=0.2)  # fmt: skip
    js = nc.jetstream(timeout=5)
    for _ in range(150):  # the meta leader is elected a moment after the routes connect
        try:
            await ensure_stream(js, replicas=3)
            break
        except (APIError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.1)
    info = await js.stream_info(STREAM)
    assert info.config.num_replicas == 3
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2  # the leader plus two followers
    subject = event_subject("acme", "jkt-sudirman")
    for seq in range(1, 11):
        await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"jkt-sudirman:{seq}"})
    follower = next(n for n in nodes if f"nats-{nodes.index(n) + 1}" != info.cluster.leader)
    follower.kill()
    for seq in range(11, 21):
        for _ in range(100):
            try:
                await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"jkt-sudirman:{seq}"})
                break
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, APIError):
                await asyncio.sleep(0.1)
    assert (await js.stream_info(STREAM)).state.messages == 20
    await nc.close()
