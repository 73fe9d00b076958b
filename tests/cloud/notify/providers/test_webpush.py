"""The web push adapter against a local push service that checks VAPID and decrypts the RFC 8291 payload; the
subscription store and the tenant's VAPID keys on a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa

from cloud.notify import policy, push_store
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.providers import webpush
from cloud.notify.providers.base import OutgoingMessage, SendResult
from cloud.store import create_store_engine
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.support.providers.push_service import PushServiceStandIn


@pytest.fixture
def push_service() -> Iterator[PushServiceStandIn]:
    with PushServiceStandIn() as server:
        yield server


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """The hub's store on SQLite and on PostgreSQL."""
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def web_push_on(conn: sa.Connection, tenant: str) -> dict[str, Any]:
    """Turn web push on for a tenant (provider `webpush` on the `push` channel) and return its settings with the
    VAPID key made on first use."""
    policy.save_provider(conn, tenant, "push", "webpush", {"vapid_subject": "mailto:hq@example.com"}, webpush.SECRETS)
    assert push_store.vapid_public_key(conn, tenant) is not None
    settings = push_store.push_settings(conn, tenant)
    assert settings is not None
    return settings


def notice(subscription: dict[str, object], key: str = "t1:ticket.called:push") -> OutgoingMessage:
    return OutgoingMessage(key=key, channel="push", to=json.dumps(subscription), subject="A012",
                           text="Dipanggil ke Loket 3", correlation_id="t1")  # fmt: skip


async def test_push_is_signed_and_decrypts(push_service: PushServiceStandIn, engine: sa.Engine,
                                           client: httpx.AsyncClient) -> None:  # fmt: skip
    with engine.begin() as conn:
        assert push_store.vapid_public_key(conn, "acme") is None  # no web push before the tenant turns it on
        settings = web_push_on(conn, "acme")
        public = push_store.vapid_public_key(conn, "acme")
        assert push_store.vapid_public_key(conn, "acme") == public  # made once, then kept
        assert public == push_store.public_key_of(settings["vapid_private_key"])
    result = await webpush.build(settings, client).send(notice(push_service.subscribe()))
    assert result.outcome == "sent", push_service.refused
    [push] = push_service.received
    assert push.payload == {"title": "A012", "body": "Dipanggil ke Loket 3", "tag": "t1:ticket.called:push"}
    assert push.vapid_key == public
    assert push.headers["urgency"] == "high"
    assert int(push.headers["ttl"]) > 0


async def test_gone_subscription_is_permanent_and_forgotten(push_service: PushServiceStandIn, engine: sa.Engine,
                                                            client: httpx.AsyncClient) -> None:  # fmt: skip
    sub = push_service.subscribe()
    stored = push_store.validate(msgspec.convert(sub, push_store.Subscription), (push_service.base_url,))
    with engine.begin() as conn:
        assert push_store.save(conn, "acme", "b1", "t1", stored, "id")
        settings = web_push_on(conn, "acme")
        [to] = push_store.for_ticket(conn, "acme", "b1", "t1")
    push_service.gone.add(sub["endpoint"].rsplit("/", 1)[1])
    result = await webpush.build(settings, client).send(notice(json.loads(to)))
    assert (result.outcome, result.code) == ("permanent", webpush.GONE)
    with engine.begin() as conn:
        assert push_store.forget(conn, "acme", to) == 1
        assert push_store.for_ticket(conn, "acme", "b1", "t1") == []


async def test_429_500_and_hang_are_retries(push_service: PushServiceStandIn, engine: sa.Engine,
                                            client: httpx.AsyncClient) -> None:  # fmt: skip
    with engine.begin() as conn:
        provider = webpush.build(web_push_on(conn, "acme"), client)
    sub = push_service.subscribe()
    push_service.then("429", "500", "hang").retry_after = "30"
    limited, failing, hung = [await provider.send(notice(sub)) for _ in range(3)]
    assert (limited.outcome, limited.retry_after) == ("retry", 30.0)
    assert (failing.outcome, hung.outcome, hung.code) == ("retry", "retry", "timeout")


async def test_malformed_subscription_is_permanent(client: httpx.AsyncClient) -> None:
    provider = webpush.build({"vapid_private_key": push_store.new_key_pair()[1]}, client)
    bad = OutgoingMessage(key="k", channel="push", to='{"endpoint": "https://fcm.googleapis.com/x"}', text="x")
    assert (await provider.send(bad)).outcome == "permanent"


def test_subscriptions_only_to_known_push_services(push_service: PushServiceStandIn) -> None:
    sub = msgspec.convert(push_service.subscribe(), push_store.Subscription)
    with pytest.raises(push_store.InvalidSubscription):
        push_store.validate(sub)  # a local endpoint is not a browser's push service
    push_store.validate(msgspec.convert({**msgspec.to_builtins(sub), "endpoint": "https://fcm.googleapis.com/fcm/send/x"},
                                        push_store.Subscription))  # fmt: skip
    internal = {**msgspec.to_builtins(sub), "endpoint": "https://169.254.169.254/latest"}
    with pytest.raises(push_store.InvalidSubscription):
        push_store.validate(msgspec.convert(internal, push_store.Subscription))
    broken = {**msgspec.to_builtins(sub), "keys": {"p256dh": "AAAA", "auth": "AAAA"}}
    with pytest.raises(push_store.InvalidSubscription):
        push_store.validate(msgspec.convert(broken, push_store.Subscription), (push_service.base_url,))


def test_subscriptions_per_ticket_are_capped_and_updated_in_place(engine: sa.Engine,
                                                                 push_service: PushServiceStandIn) -> None:  # fmt: skip
    origins = (push_service.base_url,)
    subs = [push_store.validate(msgspec.convert(push_service.subscribe(), push_store.Subscription), origins)
            for _ in range(push_store.MAX_PER_TICKET + 1)]  # fmt: skip
    with engine.begin() as conn:
        assert all(push_store.save(conn, "acme", "b1", "t1", sub, "id") for sub in subs[:-1])
        assert not push_store.save(conn, "acme", "b1", "t1", subs[-1], "id")  # one device too many
        assert push_store.save(conn, "acme", "b1", "t1", subs[0], "en")  # the same browser again: an update
        assert push_store.save(conn, "other", "b1", "t1", subs[-1], "id")  # another tenant's ticket
        assert len(push_store.for_ticket(conn, "acme", "b1", "t1")) == push_store.MAX_PER_TICKET
        push_store.remove(conn, "acme", "b1", "t1", subs[0].endpoint)
        push_store.purge_ticket(conn, "other", "b1", "t1")
        assert len(push_store.for_ticket(conn, "acme", "b1", "t1")) == push_store.MAX_PER_TICKET - 1
        assert push_store.for_ticket(conn, "other", "b1", "t1") == []
        assert web_push_on(conn, "acme")["vapid_private_key"] != web_push_on(conn, "other")["vapid_private_key"]


async def test_the_dispatcher_forgets_a_gone_subscription(push_service: PushServiceStandIn, engine: sa.Engine,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """A push service answering 404/410 ends that subscription: the row is dead (`gone`) and the subscription is
    deleted, so no later trigger tries it again."""
    branch = Branch(tmp_path / "edge", engine)
    dispatcher = Dispatcher(engine)
    try:
        ticket = branch.enqueue("teller")
        sub = push_service.subscribe()
        stored = push_store.validate(msgspec.convert(sub, push_store.Subscription), (push_service.base_url,))
        with engine.begin() as conn:
            web_push_on(conn, TENANT)
            assert push_store.save(conn, TENANT, branch.branch_id, ticket, stored, "id")
        push_service.gone.add(sub["endpoint"].rsplit("/", 1)[1])
        branch.ship()
        while await dispatcher.run_once():
            pass
        [row] = rows(engine, ticket_id=ticket, channel="push", trigger="ticket.created")
        assert (row["status"], row["code"]) == ("dead", webpush.GONE)
        with engine.connect() as conn:
            assert push_store.for_ticket(conn, TENANT, branch.branch_id, ticket) == []
    finally:
        await dispatcher.stop()
        branch.stop()


async def test_every_subscription_of_a_ticket_is_told_and_the_gone_one_forgotten(
    push_service: PushServiceStandIn, engine: sa.Engine, tmp_path: Path
) -> None:
    """A customer who asked on a phone and a tablet gets the notice on both; a third browser that unsubscribed
    (410) is deleted; the message is `sent` once (one row, one key) because the customer was told."""
    branch = Branch(tmp_path / "edge", engine)
    dispatcher = Dispatcher(engine)
    try:
        ticket = branch.enqueue("teller")
        subs = [push_service.subscribe() for _ in range(3)]
        with engine.begin() as conn:
            web_push_on(conn, TENANT)
            for sub in subs:
                stored = push_store.validate(msgspec.convert(sub, push_store.Subscription), (push_service.base_url,))
                assert push_store.save(conn, TENANT, branch.branch_id, ticket, stored, "id")
        ids = [sub["endpoint"].rsplit("/", 1)[1] for sub in subs]
        push_service.gone.add(ids[1])
        branch.ship()
        while await dispatcher.run_once():
            pass
        [row] = rows(engine, ticket_id=ticket, channel="push", trigger="ticket.created")
        assert row["status"] == "sent", row
        assert sorted(p.subscription_id for p in push_service.received) == sorted([ids[0], ids[2]])
        with engine.connect() as conn:
            left = [json.loads(s)["endpoint"] for s in push_store.for_ticket(conn, TENANT, branch.branch_id, ticket)]
        assert left == [subs[0]["endpoint"], subs[2]["endpoint"]]
    finally:
        await dispatcher.stop()
        branch.stop()


def test_one_outcome_for_a_tickets_subscriptions() -> None:
    """Any delivery is `sent`; otherwise a retry wins over refusals (with the longest Retry-After); `gone` is the
    code only when every subscription is gone; gone endpoints are carried whatever the outcome."""
    sent = SendResult("sent", provider_message_id="m1")
    gone = SendResult("permanent", code=webpush.GONE, gone=("https://p/1",))
    later = [SendResult("retry", retry_after=5.0, code="429"), SendResult("retry", retry_after=30.0, code="429")]
    refused = SendResult("permanent", code="400")
    assert webpush.combined([gone, sent]) == SendResult("sent", provider_message_id="m1", gone=("https://p/1",))
    assert webpush.combined([*later, gone]) == SendResult("retry", retry_after=30.0, code="429", gone=("https://p/1",))
    assert webpush.combined([gone, refused]).code == "400"
    assert webpush.combined([gone, gone]) == SendResult("permanent", code=webpush.GONE, gone=("https://p/1",) * 2)
