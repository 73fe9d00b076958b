"""Two tenants with the same branch id replicate side by side without touching each other: each branch has its own
NKey (`<tenant>.<branch>.nk`) limited to its own subject, the relays ship through a real nats-server with those
credentials, and the hub (SQLite and PostgreSQL) keeps two independent branches keyed by `(tenant_id, branch_id)`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa

from cloud.console import overview
from cloud.credentials import HUB_KEY, authorization_block, branch_permissions, issue
from cloud.store import create_store_engine, tickets
from cloud.ticket_status import status_of
from sync import links
from sync.relay import STREAM, LinkSettings, Relay, event_subject
from tests.cloud.branch_events import make_branch_events
from tests.support.cloud_hub import CloudHub, wait_until
from tests.support.nats_server import NatsServer
from tests.support.relay_source import ListSource

pytestmark = pytest.mark.slow
BRANCH = "jkt-sudirman"
TENANTS = {"acme": 20, "beta": 7}  # tickets each appliance issues: two different logs under one branch id


async def test_two_tenants_with_the_same_branch_id_replicate_side_by_side(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    keys = tmp_path / "keys"
    issued = {tenant: issue(engine, keys, tenant, BRANCH) for tenant in TENANTS}  # `qms-cloud branch add` twice
    assert {i.seed_file.name for i in issued.values()} == {"acme.jkt-sudirman.nk", "beta.jkt-sudirman.nk"}
    assert issued["acme"].public_key != issued["beta"].public_key
    assert event_subject("beta", BRANCH) not in str(branch_permissions("acme", BRANCH))
    listed = {(b.tenant, b.branch_id): b.link for b in overview(engine)["branches"]}
    assert listed == {("acme", BRANCH): "never_connected", ("beta", BRANCH): "never_connected"}
    logs = {t: await asyncio.to_thread(make_branch_events, tmp_path / t, BRANCH, n) for t, n in TENANTS.items()}

    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys))
    await asyncio.to_thread(server.start)
    hub = CloudHub(store_url, server.url, connect_options={"nkeys_seed": str(keys / HUB_KEY)}, fetch_timeout=0.1)
    await asyncio.to_thread(hub.start)
    sources = {t: ListSource(logs[t]) for t in TENANTS}
    relays = [
        Relay(LinkSettings(servers=(server.url,), tenant=t, branch_id=BRANCH, nkey_seed_file=str(issued[t].seed_file)),
              sources[t], cursor=0)
        for t in TENANTS
    ]  # fmt: skip
    try:
        for relay in relays:
            relay.start()

        def replicated() -> bool:
            return all(hub.seqs(BRANCH, t) == list(range(1, len(logs[t]) + 1)) for t in TENANTS)

        await asyncio.to_thread(wait_until, replicated, 60.0, 0.05, "both tenants' logs at the hub")
        # beta's credentials cannot publish as acme's branch of the same id
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        beta = await nats.connect(server.url, nkeys_seed=str(issued["beta"].seed_file), error_cb=on_error,
                                  inbox_prefix=b"_INBOX_beta_jkt-sudirman")  # fmt: skip
        with pytest.raises(nats.errors.TimeoutError):
            await beta.jetstream().publish(event_subject("acme", BRANCH), logs["beta"][0].payload, timeout=1)
        await beta.close()
        assert any("permissions violation for publish" in e.lower() for e in errors), errors
        hub_nc = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
        info = await hub_nc.jetstream().stream_info(STREAM, subjects_filter="qms.evt.>")
        await hub_nc.close()
        assert info.state.subjects == {event_subject(t, BRANCH): len(logs[t]) for t in TENANTS}
        assert [r.status.duplicates for r in relays] == [0, 0]  # one stream, no de-dup id shared by the tenants
    finally:
        for relay in relays:
            await relay.stop()
        await asyncio.to_thread(hub.stop)
        await asyncio.to_thread(server.stop)

    views = {b.tenant: b for b in overview(engine)["branches"]}
    for tenant, log in logs.items():
        assert (views[tenant].link, views[tenant].events, views[tenant].problem) == ("ok", len(log), None)
    with engine.connect() as conn:
        query = sa.select(tickets.c.tenant_id, sa.func.count()).group_by(tickets.c.tenant_id)
        per_tenant = dict(conn.execute(query).all())
    assert per_tenant == TENANTS
    # A status link is signed with its branch's own key: each tenant's link finds its own ticket, never the other's.
    for tenant in TENANTS:
        created = [json.loads(o.payload) for o in logs[tenant] if b'"ticket.created"' in o.payload]
        last = created[-1]  # beta has no ticket of this id: only acme's key and rows can answer acme's link
        token = links.sign(links.seed_link_key(issued[tenant].seed_file), BRANCH, f"t:{last['ticket_id']}")
        page = status_of(engine, keys, token)
        assert page is not None
        assert page["ticket"]["ticket_number"] == last["ticket_number"]
    engine.dispose()
