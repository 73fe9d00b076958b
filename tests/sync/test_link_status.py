"""`qms-edge status` and `/api/v1/replication` tell the truth about the cloud link, against a real nats-server: a
stopped server is `down since …` with the reason in words, a seed of another branch is "permission denied: this seed
belongs to branch X", a good seed is `connected` (never a bare `TimeoutError`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import StreamConfig

from cloud.credentials import branch_permissions, new_seed, public_key_of, write_seed
from sync.relay import STREAM
from tests.support.appliance import RunningAppliance, free_port, run_cli, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH, OTHER = "acme", "jkt-sudirman", "bdg-dago"
HUB_PASSWORD = "hub-secret"  # a throwaway test server's hub user


def replication(appliance: RunningAppliance) -> dict[str, Any]:
    """The appliance's replication status (as its admin: the endpoint may be restricted to admins)."""
    r = httpx.get(f"{appliance.api}/replication", headers=appliance.headers("admin"), timeout=5)
    r.raise_for_status()
    result: dict[str, Any] = r.json()
    return result


def authorized_server(workdir: Path, keys: Path, branches: tuple[str, ...], *, heartbeats: bool = True) -> NatsServer:
    """A nats-server whose users are the branches' NKeys with their real permissions (as `qms-cloud` writes them;
    without `heartbeats`, as a hub did before heartbeats existed)."""
    users = [json.dumps({"user": "hub", "password": HUB_PASSWORD})]
    for branch in branches:
        seed, public = new_seed()
        write_seed(keys / f"{TENANT}.{branch}.nk", seed)
        permissions: dict[str, Any] = branch_permissions(TENANT, branch)
        if not heartbeats:
            allowed = permissions["publish"]["allow"]
            permissions["publish"]["allow"] = [s for s in allowed if not s.startswith("qms.hb.")]
        users.append(json.dumps({"nkey": public, "permissions": permissions}))
    return NatsServer(workdir, config="authorization {\n  users = [\n" + ",\n".join(users) + "\n  ]\n}\n").start()


async def create_stream(server: NatsServer) -> None:
    """What the hub does on start: the event stream the relay publishes into."""
    nc = await nats.connect(server.url, user="hub", password=HUB_PASSWORD)
    try:
        await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["qms.evt.>"]))
    finally:
        await nc.close()


def test_a_stopped_server_shows_the_link_down_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", f"nats://127.0.0.1:{free_port()}")  # nobody listens there
    monkeypatch.setenv("QMS_TENANT", TENANT)
    with RunningAppliance(tmp_path / "edge") as appliance:
        down = wait_until(lambda: (r := replication(appliance))["link"] == "down" and r, what="link down")
        assert down["link_status"].startswith("down since ")
        assert "cannot reach the cloud" in down["link_error"]
        assert "TimeoutError" not in down["link_error"]
        out = run_cli("status", "--data-dir", str(tmp_path / "edge"))
        assert out.returncode == 0, out.stderr
        assert f"cloud link: down since {down['link_since']}" in out.stdout
        assert "last error: cannot reach the cloud at nats://127.0.0.1:" in out.stdout
        as_json = json.loads(run_cli("status", "--json", "--data-dir", str(tmp_path / "edge")).stdout)
        assert as_json["link"]["link"] == "down"
        assert "cannot reach the cloud" in as_json["link"]["link_error"]
    stopped = run_cli("status", "--data-dir", str(tmp_path / "edge"))
    assert "cloud link: appliance not running" in stopped.stdout


def test_a_standalone_branch_says_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_demo(tmp_path / "edge")
    monkeypatch.delenv("QMS_NATS_URL", raising=False)
    with RunningAppliance(tmp_path / "edge") as appliance:
        assert replication(appliance)["link"] == "not configured"
        out = run_cli("status", "--data-dir", str(tmp_path / "edge"))
        assert "cloud link: not configured" in out.stdout


def test_a_seed_of_another_branch_is_permission_denied_and_the_right_one_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH, OTHER))
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_NATS_NKEY", str(keys / f"{TENANT}.{OTHER}.nk"))
    try:
        with RunningAppliance(tmp_path / "edge") as appliance:
            down = wait_until(lambda: (r := replication(appliance))["link"] == "down" and r, what="link refused")
            assert down["link_error"].startswith(f"permission denied: this seed belongs to branch {OTHER}")
            assert "TimeoutError" not in down["link_error"]
            out = run_cli("status", "--data-dir", str(tmp_path / "edge"))
            assert f"last error: permission denied: this seed belongs to branch {OTHER}" in out.stdout
            # The relay keeps retrying (each retry connects over TCP before the server refuses the publish): the
            # link must read down throughout, never "connected" between a reconnect and its refusal.
            seen = set()
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                seen.add(replication(appliance)["link"])
            assert seen == {"down"}, seen
        monkeypatch.setenv("QMS_NATS_NKEY", str(keys / f"{TENANT}.{BRANCH}.nk"))
        asyncio.run(create_stream(server))
        with RunningAppliance(tmp_path / "edge") as appliance:
            up = wait_until(lambda: (r := replication(appliance))["link"] == "connected" and r, what="link up")
            assert up["link_status"] == "connected"
            assert up["link_error"] is None
            assert "cloud link: connected" in run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
    finally:
        server.stop()


def test_an_idle_branch_with_another_branchs_seed_is_down_not_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to ship, so only heartbeats go out: before, their refusal left the link `connected` with a warning."""
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH, OTHER))
    asyncio.run(create_stream(server))
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_HEARTBEAT_SECONDS", "0.2")
    try:
        monkeypatch.setenv("QMS_NATS_NKEY", str(keys / f"{TENANT}.{BRANCH}.nk"))
        with RunningAppliance(tmp_path / "edge") as appliance:
            wait_until(lambda: replication(appliance)["lag_events"] == 0, what="everything shipped")
        monkeypatch.setenv("QMS_NATS_NKEY", str(keys / f"{TENANT}.{OTHER}.nk"))
        with RunningAppliance(tmp_path / "edge") as appliance:
            down = wait_until(lambda: (r := replication(appliance))["link"] == "down" and r, what="link refused")
            assert down["lag_events"] == 0
            assert down["link_error"].startswith(f"permission denied: this seed belongs to branch {OTHER}")
    finally:
        server.stop()


def test_heartbeats_refused_by_an_old_users_file_are_a_warning_while_events_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH,), heartbeats=False)
    asyncio.run(create_stream(server))
    seed_demo(tmp_path / "edge")
    monkeypatch.setenv("QMS_NATS_URL", server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_NATS_NKEY", str(keys / f"{TENANT}.{BRANCH}.nk"))
    monkeypatch.setenv("QMS_HEARTBEAT_SECONDS", "0.2")
    try:
        with RunningAppliance(tmp_path / "edge") as appliance:
            state = wait_until(lambda: (r := replication(appliance))["link_error"] and r, what="heartbeat refused")
            assert state["link"] == "connected"
            assert state["link_error"].startswith(f"permission denied: the server refused qms.hb.{TENANT}.{BRANCH}")
            assert "reload" in state["link_error"]
            assert "qms-cloud branch users" in state["link_error"]  # regenerates the users without a new seed
            wait_until(lambda: replication(appliance)["lag_events"] == 0, what="events still ship")
            out = run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
            assert "cloud link: connected" in out
            assert f"warning: permission denied: the server refused qms.hb.{TENANT}.{BRANCH}" in out
            # The hub regenerates its users and reloads the server: the beats go through and the warning goes.
            public = public_key_of(keys / f"{TENANT}.{BRANCH}.nk")
            assert server.config_path is not None
            assert server.proc is not None
            users = [json.dumps({"user": "hub", "password": HUB_PASSWORD}),
                     json.dumps({"nkey": public, "permissions": branch_permissions(TENANT, BRANCH)})]  # fmt: skip
            server.config_path.write_text("authorization {\n  users = [\n" + ",\n".join(users) + "\n  ]\n}\n")
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_until(lambda: replication(appliance)["link_error"] is None, what="the warning goes after a reload")
            assert "warning" not in run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
            # The server stops: the link is down because it cannot reach the cloud, not "permission denied".
            server.stop()
            down = wait_until(lambda: (r := replication(appliance))["link"] == "down" and r, what="link down")
            assert "cannot reach the cloud" in down["link_error"], down["link_error"]
    finally:
        server.stop()
