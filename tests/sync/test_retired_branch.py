"""A branch retired at the hub (its NATS user removed, the server reloaded, as `cloud.admin.nats_users` does) while
its appliance runs: the relay and the four KV watchers back off, the log says "branch retired at the hub" once for
the outage (not a warning per attempt of each watcher), `qms-edge status` and `/api/v1/replication` say so, and after
reactivation the link comes back by itself with one line and ships what was taken meanwhile. Real nats-server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from cloud.credentials import branch_permissions, public_key_of
from cloud.kv_publish import ensure_bucket
from sync.appointments import BOOKINGS_BUCKET
from sync.config_watch import ConfigEntry, ConfigWatch
from sync.hq_alerts import ALERTS_BUCKET
from sync.relay import CONFIG_BUCKET, LinkSettings, Relay
from sync.staff import STAFF_BUCKET
from tests.support.appliance import RunningAppliance, run_cli, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer
from tests.support.relay_source import ListSource
from tests.sync.test_link_status import BRANCH, HUB_PASSWORD, TENANT, authorized_server, create_stream, replication

pytestmark = pytest.mark.slow
RETIRED = "branch retired at the hub"


def _users(server: NatsServer, *branch_keys: str) -> None:
    """Rewrite the server's users (the hub, and these branches' NKeys) and reload it, as the hub does."""
    users = [json.dumps({"user": "hub", "password": HUB_PASSWORD})]
    users += [json.dumps({"nkey": key, "permissions": branch_permissions(TENANT, BRANCH)}) for key in branch_keys]
    assert server.config_path is not None
    assert server.proc is not None
    server.config_path.write_text("authorization {\n  users = [\n" + ",\n".join(users) + "\n  ]\n}\n")
    os.kill(server.proc.pid, signal.SIGHUP)


def _log_lines(appliance: RunningAppliance) -> list[dict[str, Any]]:
    """Every JSON line the appliance wrote (the whole file: `log()` keeps only the tail)."""
    text = appliance.log_path.read_text(errors="replace")
    return [json.loads(raw) for raw in text.splitlines() if raw.startswith("{")]


def _refusals(server: NatsServer) -> int:
    """Connection attempts the server refused so far (its log)."""
    return sum(len(re.findall(r"authentication error", p.read_text())) for p in server.workdir.glob("nats-*.log"))


async def _buckets(server: NatsServer) -> None:
    """What the hub makes on start: the KV buckets the watchers read (config, staff, bookings, alerts)."""
    nc = await nats.connect(server.url, user="hub", password=HUB_PASSWORD)
    try:
        for bucket in (CONFIG_BUCKET, STAFF_BUCKET, BOOKINGS_BUCKET, ALERTS_BUCKET):
            await ensure_bucket(nc.jetstream(), bucket)
    finally:
        await nc.close()


def _take_ticket(appliance: RunningAppliance) -> None:
    r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller"}, headers=appliance.headers("admin"),
                   timeout=10)  # fmt: skip
    assert r.status_code == 201, r.text


def test_a_retired_branch_backs_off_says_it_once_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH,))
    asyncio.run(create_stream(server))
    asyncio.run(_buckets(server))
    seed_demo(tmp_path / "edge")
    seed = keys / f"{TENANT}.{BRANCH}.nk"
    monkeypatch.setenv("QMS_NATS_URL", server.url)
    monkeypatch.setenv("QMS_TENANT", TENANT)
    monkeypatch.setenv("QMS_NATS_NKEY", str(seed))
    try:
        with RunningAppliance(tmp_path / "edge", args=("--log-level", "info")) as appliance:  # as in production
            wait_until(lambda: replication(appliance)["lag_events"] == 0, what="the log shipped: the hub took the key")
            wait_until(lambda: replication(appliance)["config_watch"]["state"] == "connected", what="watch up")

            _users(server)  # retired: the branch leaves the users
            down = wait_until(lambda: (r := replication(appliance))["link_error"] and RETIRED in r["link_error"] and r,
                              what="the link says retired")  # fmt: skip
            assert down["link"] == "down"
            assert down["link_error"].startswith(RETIRED), down["link_error"]
            assert "reactivates" in down["link_error"]
            assert "qms-cloud branch add" not in down["link_error"]  # not "make a new branch"
            watch = wait_until(lambda: (w := replication(appliance)["config_watch"])["last_error"] and w,
                               what="the config watch down")  # fmt: skip
            assert watch["last_error"].startswith(RETIRED), watch
            out = run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
            assert f"last error: {RETIRED}" in out, out
            _take_ticket(appliance)  # the branch keeps working offline

            time.sleep(6)  # the relay and the four watchers keep retrying, backing off
            before = _refusals(server)
            time.sleep(6)
            # Five connections, each backing off (0.2 s doubling, with jitter): after ~6 s each retries at most
            # about once in the next 6 s (before: several a second in all, each a warning line).
            assert _refusals(server) - before <= 10, _refusals(server) - before
            lines = _log_lines(appliance)
            retired = [line for line in lines if RETIRED in line["message"]]
            assert len(retired) == 1, retired
            assert retired[0]["level"] == "warning"
            assert retired[0]["logger"] == "qms.link"
            link_warnings = [line["message"] for line in lines if line["logger"] == "qms.link"
                             and line["level"] in ("warning", "error")]  # fmt: skip
            assert link_warnings == [retired[0]["message"]], link_warnings  # not also "cannot reach the cloud"
            chatter = [line for line in lines if line["level"] in ("warning", "error")
                       and line["logger"] in ("qms.config_watch", "qms.relay")]  # fmt: skip
            assert chatter == [], chatter

            _users(server, public_key_of(seed))  # reactivated
            wait_until(lambda: replication(appliance)["link"] == "connected", timeout=90, what="the link back")
            wait_until(lambda: replication(appliance)["lag_events"] == 0, timeout=30, what="the backlog shipped")
            wait_until(lambda: any("through again" in line["message"] for line in _log_lines(appliance)),
                       timeout=90, what="the outage closed in the log")  # fmt: skip
            assert replication(appliance)["link_error"] is None
            assert "cloud link: connected" in run_cli("status", "--data-dir", str(tmp_path / "edge")).stdout
            assert len([line for line in _log_lines(appliance) if RETIRED in line["message"]]) == 1
    finally:
        server.stop()


async def test_a_watch_whose_reads_fail_backs_off_although_it_connects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that takes the connection but answers no read (here: no KV bucket at all) used to reset the back-off
    at every connect, so the watch retried several times a second with a warning each: now it backs off until a read
    is answered, and says it once."""
    caplog.set_level(logging.DEBUG, logger="qms.link")
    with NatsServer(tmp_path / "nats") as server:
        watch = ConfigWatch(LinkSettings(servers=(server.url,), tenant=TENANT, branch_id="no-bucket"), _never)
        watch.start()
        try:
            for _ in range(100):  # ~5 s
                await asyncio.sleep(0.05)
        finally:
            await watch.stop()
    assert watch.state == "disconnected"
    assert watch.retry_in is not None
    assert watch.retry_in >= 0.8, watch.retry_in  # 0.2 s doubled at least three times (jitter halves at most)
    warnings = [r for r in caplog.records if r.name == "qms.link" and r.levelno == logging.WARNING]
    retries = [r for r in caplog.records if r.name == "qms.link" and r.levelno == logging.DEBUG]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "config watch" in warnings[0].getMessage()
    assert 2 <= len(retries) <= 10, len(retries)


async def _never(entry: ConfigEntry) -> None:
    raise AssertionError(f"no entry expected, got revision {entry.revision}")


async def test_retirement_while_connected_is_the_only_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reload that drops the branch's user closes its connected relay's and watcher's connections with no error (a
    plain end of stream, as when the server stops): that outage is the retirement, one warning, never also "cannot
    reach the cloud … connection refused or server down" (QA: both within 200 ms, in either order)."""
    caplog.set_level(logging.DEBUG, logger="qms.link")
    keys = tmp_path / "keys"
    server = authorized_server(tmp_path / "nats", keys, (BRANCH,))
    try:
        await create_stream(server)
        await _buckets(server)
        link = LinkSettings(servers=(server.url,), tenant=TENANT, branch_id=BRANCH,
                            nkey_seed_file=str(keys / f"{TENANT}.{BRANCH}.nk"))  # fmt: skip
        relay = Relay(link, ListSource([]), cursor=0, idle_poll=0.2)
        watch = ConfigWatch(link, _never, poll_seconds=0.2)
        relay.start()
        watch.start()
        try:
            await _until(lambda: relay.status.link == "connected" and watch.state == "connected",
                                   what="both connected")  # fmt: skip
            _users(server)  # retired
            await _until(lambda: relay.status.link == "down" and watch.last_error, what="both down")
            await asyncio.sleep(2)  # both retry (and fail) a few times
        finally:
            await relay.stop()
            await watch.stop()
    finally:
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "qms.link" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert RETIRED in warnings[0], warnings
    assert relay.status.link_error is not None
    assert relay.status.link_error.startswith(RETIRED), relay.status.link_error
    assert watch.last_error is not None
    assert watch.last_error.startswith(RETIRED), watch.last_error


async def _until(condition: Any, *, what: str) -> None:
    """Await `condition()` turning true (polled every 20 ms in the test's own loop, for at most 15 s)."""
    try:
        async with asyncio.timeout(15):
            while not condition():  # noqa: ASYNC110 - the relay and the watch expose no event to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_stopped_server_while_connected_is_still_cannot_reach(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The drop that says nothing (above) hides no real outage: the server stopped, the reconnect is refused, and
    that is the one warning."""
    caplog.set_level(logging.DEBUG, logger="qms.link")
    with NatsServer(tmp_path / "nats") as server:
        await create_stream_plain(server)
        link = LinkSettings(servers=(server.url,), tenant=TENANT, branch_id="stopped")
        relay = Relay(link, ListSource([]), cursor=0, idle_poll=0.2)
        relay.start()
        try:
            await _until(lambda: relay.status.link == "connected", what="connected")
            server.stop()
            await _until(lambda: relay.status.link == "down", what="down")
            await _until(lambda: any(r.levelno == logging.WARNING for r in caplog.records if r.name == "qms.link"),
                         what="the warning")  # fmt: skip
        finally:
            await relay.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "qms.link" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cannot reach the cloud" in warnings[0], warnings
    assert any("closed the connection" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


async def create_stream_plain(server: NatsServer) -> None:
    """The event stream on a server without users."""
    nc = await nats.connect(server.url)
    try:
        await nc.jetstream().add_stream(name="QMS_EVENTS", subjects=["qms.evt.>"])
    finally:
        await nc.close()
