"""Triggers → outbox → dispatcher → a real SMTP server (STARTTLS, test CA), on SQLite and PostgreSQL: the e-mail
carries the ticket number, branch and service; "3 to go" once even as positions jump; called; no contact → skipped;
a stale "to go" → superseded; the relay down → retries then sent; a permanent refusal → dead, replayed → sent;
redelivery of the whole log changes nothing."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.notify import contacts, outbox
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.metrics import registry_for
from cloud.store import create_store_engine
from edge.engine import commands as c
from sync.observability import event_correlations
from tests.cloud.notify.branch import TENANT, Branch, rows, use_email
from tests.cloud.notify.smtp_server import SmtpServer


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


@pytest.fixture
def branch(tmp_path: Path, engine: sa.Engine) -> Iterator[Branch]:
    """The demo branch shipping to that store."""
    found = Branch(tmp_path / "edge", engine)
    yield found
    found.stop()


class Clock:
    """A settable clock for the dispatcher (retries are due in the future)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=5)  # after the rows the test writes next

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def drain(dispatcher: Dispatcher) -> int:
    """Run rounds until nothing is due; how many attempts were made."""
    total = 0
    while n := await dispatcher.run_once():
        total += n
    return total


async def test_created_called_and_to_go_once(branch: Branch, engine: sa.Engine, smtp_server: SmtpServer) -> None:
    use_email(engine, smtp_server.settings)
    first = branch.enqueue("teller", email="andi@example.com", lang="id")
    others = [branch.enqueue("teller") for _ in range(5)]
    mine = branch.enqueue("teller", email="budi@example.com", lang="en", phone="0812-3456-7890")
    branch.ship()
    dispatcher = Dispatcher(engine)
    try:
        assert await drain(dispatcher) == 2  # two created messages; tickets without contact are skipped
        got = smtp_server.wait_for(2)
        by_to = {m.recipients[0]: m for m in got}
        created, text = by_to["budi@example.com"].message, by_to["budi@example.com"].text
        assert "A007" in created["Subject"]
        assert "Bank Demo - KCP Sudirman" in text
        assert "Teller" in text
        assert "6 people ahead" in text
        assert {r["status"] for r in rows(engine, ticket_id=others[0])} == {"skipped"}
        # the queue moves: 3 called in one batch (6 ahead -> 3 ahead)
        for counter in ("1", "2", "3"):
            branch.call_next(counter)
        branch.ship()
        await drain(dispatcher)
        to_go = rows(engine, ticket_id=mine, trigger="ticket.to_go")
        assert [r["status"] for r in to_go] == ["sent"]
        for counter in ("2", "3"):  # 3 -> 1 ahead: no second "to go"
            branch.call_next(counter)
        branch.ship()
        await drain(dispatcher)
        assert len(rows(engine, ticket_id=mine, trigger="ticket.to_go")) == 1
        assert sum("to go" in (m.message["Subject"] or "") for m in smtp_server.messages) == 1
        # the first ticket: created and called messages went; its "to go" was near the front at creation
        first_rows = {r["trigger"]: r["status"] for r in rows(engine, ticket_id=first)}
        assert first_rows["ticket.created"] == "sent"
        assert first_rows["ticket.called"] == "sent"
        assert first_rows["ticket.to_go"] == "skipped"
        branch.call_next("1")
        assert branch.call_next("2") == mine
        branch.ship()
        await drain(dispatcher)
        called = [m for m in smtp_server.messages if m.recipients == ["budi@example.com"]][-1]
        assert "Number A007 is called" in called.message["Subject"]
        assert "Loket 2" in called.text
        before = len(smtp_server.messages)
        branch.ship(from_seq=0)  # NATS redelivers everything: nothing is owed twice
        assert await drain(dispatcher) == 0
        assert len(smtp_server.messages) == before
        ids = [m.message["Message-ID"] for m in smtp_server.messages]
        assert len(ids) == len(set(ids))
        exposition = registry_for(engine).collect()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in exposition for s in m.samples}
        assert samples[("qms_notify_messages", (("channel", "email"), ("status", "sent")))] == len(ids)
    finally:
        await dispatcher.stop()


async def test_stale_to_go_is_superseded(branch: Branch, engine: sa.Engine, smtp_server: SmtpServer) -> None:
    use_email(engine, smtp_server.settings)
    for _ in range(5):
        branch.enqueue("teller")
    mine = branch.enqueue("teller", email="c@example.com")
    branch.ship()
    for _ in range(2):
        branch.call_next("1")
    branch.ship()  # "3 to go" owed, not yet sent
    for _ in range(4):
        branch.call_next("2")
    branch.ship()  # and now it is called
    dispatcher = Dispatcher(engine)
    try:
        await drain(dispatcher)
    finally:
        await dispatcher.stop()
    states = {r["trigger"]: (r["status"], r["reason"]) for r in rows(engine, ticket_id=mine)}
    assert states["ticket.to_go"] == ("superseded", "ticket is called")
    assert states["ticket.created"] == ("superseded", "ticket is called")
    assert states["ticket.called"][0] == "sent"
    assert len(smtp_server.messages) == 1  # only the called message


async def test_retries_then_dead_then_replay(branch: Branch, engine: sa.Engine, smtp_server: SmtpServer) -> None:
    use_email(engine, smtp_server.settings)
    clock = Clock()
    mine = branch.enqueue("teller", email="d@example.com")
    branch.ship()
    dispatcher = Dispatcher(engine, clock=clock)
    try:
        smtp_server.stop()  # the relay is down for a while
        assert await dispatcher.run_once() == 1
        (row,) = rows(engine, ticket_id=mine, trigger="ticket.created")
        assert (row["status"], row["attempts"], row["code"]) == ("failed", 1, "connect")
        assert await dispatcher.run_once() == 0  # not due yet
        smtp_server.start()
        smtp_server.fail_with("451 4.3.0 try later")
        clock.advance(700)
        assert await dispatcher.run_once() == 1
        assert rows(engine, ticket_id=mine, trigger="ticket.created")[0]["status"] == "failed"
        smtp_server.fail_with(None)
        clock.advance(700)
        assert await dispatcher.run_once() == 1
        assert rows(engine, ticket_id=mine, trigger="ticket.created")[0]["status"] == "sent"
        # a permanent refusal goes to the DLQ at once
        other = branch.enqueue("teller", email="e@example.com")
        branch.ship()
        smtp_server.fail_with("550 5.1.1 no such mailbox")
        await dispatcher.run_once()
        (dead,) = rows(engine, ticket_id=other, trigger="ticket.created")
        assert (dead["status"], dead["code"]) == ("dead", "550")
        assert "e@example.com" not in (dead["reason"] or "")
        smtp_server.fail_with(None)
        with engine.begin() as conn:
            assert outbox.replay(conn, TENANT, dead["id"], clock())
        assert await dispatcher.run_once() == 1
        assert rows(engine, ticket_id=other, trigger="ticket.created")[0]["status"] == "sent"
        assert [m.recipients for m in smtp_server.messages] == [["d@example.com"], ["e@example.com"]]
    finally:
        await dispatcher.stop()


async def test_lost_lease_is_recovered_with_the_same_key(
    branch: Branch, engine: sa.Engine, smtp_server: SmtpServer
) -> None:
    """A dispatcher that died after claiming (row `sending`): after the lease another one sends it, once."""
    use_email(engine, smtp_server.settings)
    clock = Clock()
    mine = branch.enqueue("teller", email="f@example.com")
    branch.ship()
    (job,) = outbox.claim(engine, clock())  # claimed, then the process "dies" before sending
    assert rows(engine, ticket_id=mine, trigger="ticket.created")[0]["status"] == "sending"
    dispatcher = Dispatcher(engine, clock=clock)
    try:
        assert await dispatcher.run_once() == 0  # its lease still holds
        clock.advance(outbox.LEASE.total_seconds() + 1)
        assert await dispatcher.run_once() == 1
        (row,) = rows(engine, ticket_id=mine, trigger="ticket.created")
        assert (row["status"], row["attempts"]) == ("sent", 2)
        # the dead dispatcher's late answer does not overwrite the newer attempt's record
        assert outbox.record(engine, job, outbox.SendResult("retry"), clock()) == "lost_lease"
        assert rows(engine, ticket_id=mine, trigger="ticket.created")[0]["status"] == "sent"
    finally:
        await dispatcher.stop()
    assert len(smtp_server.messages) == 1


def test_backoff_grows_with_full_jitter_and_honours_retry_after() -> None:
    assert outbox.backoff(1, None, lambda: 1.0) == 2.0
    assert outbox.backoff(4, None, lambda: 1.0) == 16.0
    assert outbox.backoff(30, None, lambda: 1.0) == outbox.BACKOFF_CAP
    assert outbox.backoff(3, 120.0, lambda: 0.5) == 120.0
    rng = random.Random(1)
    assert all(0 <= outbox.backoff(n, None, rng.random) <= 2.0 * 2 ** (n - 1) for n in range(1, 8))


async def test_recall_once_opt_out_and_purge(branch: Branch, engine: sa.Engine, smtp_server: SmtpServer) -> None:
    """A recall is told once (two recalls, one message); a customer who declined gets nothing (rows `skipped`,
    `opted_out`); contacts past their retention are purged and an owed message is then skipped, not sent."""
    use_email(engine, smtp_server.settings)
    mine = branch.enqueue("teller", email="g@example.com", lang="en")
    declined = branch.enqueue("teller", email="h@example.com", notify_opt_in=False)
    branch.ship()
    branch.call_next("1")
    for _ in range(2):
        branch.do(c.Recall(ticket_id=mine, counter_id="1"))
    branch.ship()
    dispatcher = Dispatcher(engine)
    try:
        await drain(dispatcher)
        subjects = [m.message["Subject"] for m in smtp_server.messages]
        assert sum(s.startswith("Second call") for s in subjects) == 1
        assert {r["status"] for r in rows(engine, ticket_id=declined)} == {"skipped"}
        assert {r["reason"] for r in rows(engine, ticket_id=declined)} >= {"opted_out"}
        assert all(m.recipients != ["h@example.com"] for m in smtp_server.messages)
        # retention over: the contacts go, the message still owed for the next call is skipped
        later = datetime.now(UTC) + timedelta(days=31)
        with engine.begin() as conn:
            assert contacts.purge(conn, later) == 2
            assert contacts.read(conn, TENANT, branch.branch_id, mine) is None
        assert branch.call_next("2") == declined
        branch.ship()
        await drain(dispatcher)
        assert {r["status"] for r in rows(engine, ticket_id=declined, trigger="ticket.called")} == {"skipped"}
    finally:
        await dispatcher.stop()


async def test_the_event_correlation_id_reaches_the_provider(
    branch: Branch, engine: sa.Engine, smtp_server: SmtpServer
) -> None:
    """The id the consumer read from the event's NATS header is kept on the outbox row and sent with the message
    (X-Request-ID), whenever the dispatcher gets to it; "to go" rows take the id of the event that moved the queue."""
    use_email(engine, smtp_server.settings)
    mine = branch.enqueue("teller", email="budi@example.com")
    for _ in range(4):
        branch.enqueue("teller")
    ids = {(TENANT, branch.branch_id, seq): f"req-{seq}" for seq in range(1, 200)}
    dispatcher = Dispatcher(engine)
    try:
        with event_correlations(ids):
            branch.ship()
        await drain(dispatcher)
        branch.call_next("1")
        with event_correlations(ids):
            branch.ship()
        await drain(dispatcher)
    finally:
        await dispatcher.stop()
    created = rows(engine, ticket_id=mine, trigger="ticket.created")[0]
    assert created["correlation_id"].startswith("req-")
    called = rows(engine, ticket_id=mine, trigger="ticket.called")[0]
    assert called["correlation_id"].startswith("req-")
    assert called["correlation_id"] != created["correlation_id"]
    sent = {m.message["X-Request-ID"] for m in smtp_server.wait_for(2)}
    assert sent == {created["correlation_id"], called["correlation_id"]}


async def test_a_committed_batch_wakes_the_dispatcher(
    branch: Branch, engine: sa.Engine, smtp_server: SmtpServer
) -> None:
    """The consumer's commit wakes the dispatcher (not its poll): with a 60 s poll the message still goes at once."""
    use_email(engine, smtp_server.settings)
    dispatcher = Dispatcher(engine, poll=60.0)
    dispatcher.start()
    try:
        await asyncio.sleep(0.2)  # the first (empty) round is over; the loop now waits on its 60 s poll
        branch.enqueue("teller", email="budi@example.com")
        started = time.monotonic()
        await asyncio.to_thread(branch.ship)
        await asyncio.to_thread(smtp_server.wait_for, 1, 10.0)
        assert time.monotonic() - started < 10
    finally:
        await dispatcher.stop()
