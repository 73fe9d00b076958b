"""Per-branch NATS credentials, enforced by a real nats-server: a branch publishes only its own subject, reads only
its own configuration key, and cannot impersonate another branch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from cloud.consumer import ensure_config_bucket, ensure_stream
from cloud.credentials import HUB_KEY, Issued, authorization_block, branch_permissions, issue
from cloud.store import create_store_engine
from sync.appointments import bookings_subject
from sync.config_watch import direct_get_subject, fetch_config
from sync.hq_alerts import alerts_subject
from sync.liveness import command_subject, heartbeat_subject
from sync.relay import STREAM, LinkSettings, Relay, config_key, event_subject
from sync.staff import staff_subject
from tests.cloud.branch_events import make_branch_events
from tests.support.nats_server import NatsServer
from tests.support.relay_source import ListSource

pytestmark = pytest.mark.slow
TENANT = "acme"
A, B = "jkt-sudirman", "bdg-dago"


@dataclass
class Secured:
    server: NatsServer
    keys: Path
    a: Issued
    b: Issued
    hub: NatsClient


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """A nats-server whose only users are the hub and two branches, as `qms-cloud branch add` issues them."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    keys = tmp_path / "keys"
    a, b = issue(engine, keys, TENANT, A), issue(engine, keys, TENANT, B)
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys))
    await asyncio.to_thread(server.start)
    hub = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
    js = hub.jetstream()
    await ensure_stream(js)
    kv = await ensure_config_bucket(js)
    await kv.put(config_key(TENANT, A), b'{"for": "A"}')
    await kv.put(config_key(TENANT, B), b'{"for": "B"}')
    try:
        yield Secured(server, keys, a, b, hub)
    finally:
        await hub.close()
        await asyncio.to_thread(server.stop)


async def connect_as(secured: Secured, issued: Issued, branch: str, errors: list[str]) -> NatsClient:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    link = LinkSettings(servers=(secured.server.url,), tenant=TENANT, branch_id=branch,
                        nkey_seed_file=str(issued.seed_file))  # fmt: skip
    return await link.connect(error_cb=on_error)


def test_permissions_name_only_the_branchs_own_subjects() -> None:
    perms = branch_permissions(TENANT, A)
    own = [event_subject(TENANT, A), heartbeat_subject(TENANT, A), direct_get_subject(TENANT, A),
           staff_subject(TENANT, A), bookings_subject(TENANT, A), alerts_subject(TENANT, A)]  # fmt: skip
    assert perms["publish"] == {"allow": own}
    assert perms["subscribe"] == {"allow": [f"_INBOX_{TENANT}_{A}.>", command_subject(TENANT, A)]}
    assert perms["allow_responses"] is True  # it answers HQ's interventions on the requester's inbox, nothing else


async def test_a_branch_publishes_its_own_events(secured: Secured) -> None:
    errors: list[str] = []
    nc = await connect_as(secured, secured.a, A, errors)
    ack = await nc.jetstream().publish(event_subject(TENANT, A), b"{}", headers={"Nats-Msg-Id": f"{A}:1"}, timeout=5)
    assert ack.stream == STREAM
    await nc.close()
    assert errors == []


async def test_a_forged_publish_with_another_branchs_credentials_is_refused(secured: Secured) -> None:
    errors: list[str] = []
    nc = await connect_as(secured, secured.a, A, errors)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.jetstream().publish(event_subject(TENANT, B), b"{}", headers={"Nats-Msg-Id": f"{B}:1"}, timeout=1)
    await nc.close()
    assert any("permissions violation for publish" in e.lower() and B in e for e in errors), errors
    info = await secured.hub.jetstream().stream_info(STREAM, subjects_filter=event_subject(TENANT, B))
    assert not info.state.subjects


async def test_a_branch_reads_only_its_own_config_key(secured: Secured) -> None:
    errors: list[str] = []
    nc = await connect_as(secured, secured.a, A, errors)
    own = await fetch_config(nc, TENANT, A)
    assert own is not None
    assert own.value == b'{"for": "A"}'
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(direct_get_subject(TENANT, B), b"", timeout=1)
    await nc.close()
    assert any("permissions violation for publish" in e.lower() for e in errors), errors


async def test_a_branch_cannot_eavesdrop_on_events(secured: Secured) -> None:
    errors: list[str] = []
    nc = await connect_as(secured, secured.a, A, errors)
    await nc.subscribe(f"{event_subject(TENANT, B)}")
    await nc.flush()
    await asyncio.sleep(0)  # let the server's -ERR reach the error callback
    for _ in range(100):
        if errors:
            break
        await asyncio.sleep(0.02)
    await nc.close()
    assert any("permissions violation for subscription" in e.lower() for e in errors), errors


async def test_anonymous_and_unknown_keys_are_refused(secured: Secured, tmp_path: Path) -> None:
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        await nats.connect(secured.server.url, allow_reconnect=False, max_reconnect_attempts=1,
                           reconnect_time_wait=0.05, connect_timeout=2)  # fmt: skip


async def test_the_relay_ships_with_branch_credentials_and_cannot_pose_as_another(
    secured: Secured, tmp_path: Path
) -> None:
    events = await asyncio.to_thread(make_branch_events, tmp_path / "edge", A, 5)
    own = ListSource(events)
    relay = Relay(LinkSettings(servers=(secured.server.url,), tenant=TENANT, branch_id=A,
                               nkey_seed_file=str(secured.a.seed_file)), own, cursor=0)  # fmt: skip
    posing = ListSource(events)
    impostor = Relay(LinkSettings(servers=(secured.server.url,), tenant=TENANT, branch_id=B,
                                  nkey_seed_file=str(secured.a.seed_file)), posing, cursor=0,
                     ack_timeout=1.0, backoff_max=0.5)  # fmt: skip
    relay.start()
    impostor.start()
    try:
        for _ in range(500):
            if own.cursor == len(events) and impostor.status.last_error:
                break
            await asyncio.sleep(0.02)
    finally:
        await relay.stop()
        await impostor.stop()
    assert own.cursor == len(events)
    assert posing.cursor == 0
    js = secured.hub.jetstream()
    info = await js.stream_info(STREAM, subjects_filter="qms.evt.>")
    assert info.state.subjects == {event_subject(TENANT, A): len(events)}
