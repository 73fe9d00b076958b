"""Hypothesis: across any interleaving of branch events, NATS redeliveries (the log applied again from any point),
dispatch rounds, dispatcher restarts and crashes mid-dispatch (after claiming, before or after the provider call),
each (ticket, trigger, channel) is delivered at most once and nothing is sent after its row was superseded.

The provider is a stand-in that, like the providers that accept an idempotency key, delivers a key once however
often it is called; every call is recorded, so the test also shows where at-least-once shows through (only keys
whose dispatcher crashed after the provider call are ever called twice)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cloud.notify import outbox, policy
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import OutgoingMessage, SendResult
from cloud.notify.tables import outbox as outbox_table
from cloud.store import create_store_engine, tickets
from tests.cloud.notify.branch import TENANT, Branch

pytestmark = pytest.mark.slow


@dataclass
class Call:
    """One provider call: the key and the ticket's status at the hub at that moment."""

    key: str
    trigger: str
    ticket_status: str | None


class Recorder:
    """The provider stand-in: records every call, delivers each key once (an idempotency-key provider)."""

    name = "recorder"
    channel = "email"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.calls: list[Call] = []
        self.delivered: Counter[str] = Counter()

    async def send(self, message: OutgoingMessage) -> SendResult:
        tenant, branch_id, ticket_id, trigger, _channel = message.key.split("/")
        with self.engine.connect() as conn:
            status = conn.execute(
                sa.select(tickets.c.status).where(tickets.c.tenant_id == tenant, tickets.c.branch_id == branch_id,
                                                  tickets.c.ticket_id == ticket_id)
            ).scalar_one_or_none()  # fmt: skip
        self.calls.append(Call(message.key, trigger, status))
        if not self.delivered[message.key]:
            self.delivered[message.key] += 1
        return SendResult("sent", provider_message_id=message.key)


class RecorderModule:
    """What REGISTRY holds for a provider: `build`, `CHANNEL`, `SECRETS`."""

    CHANNEL = "email"
    SECRETS = ()

    def __init__(self) -> None:
        self.current: Recorder | None = None

    def build(self, settings: Any, client: Any) -> Recorder:
        del settings, client
        assert self.current is not None
        return self.current


MODULE = RecorderModule()


class OutboxMachine(RuleBasedStateMachine):
    """One branch, one hub store, one tenant sending e-mail through the recorder."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="notify-hyp-"))
        self.engine = create_store_engine(f"sqlite:///{self.dir / 'hub.sqlite3'}")
        self.branch = Branch(self.dir / "edge", self.engine)
        self.recorder = Recorder(self.engine)
        MODULE.current = self.recorder
        REGISTRY["recorder"] = MODULE  # type: ignore[assignment]
        with self.engine.begin() as conn:
            policy.save_provider(conn, TENANT, "email", "recorder", {}, ())
            policy.save(conn, TENANT, policy.TenantPolicy(to_go_threshold=1))  # short queues reach "to go" too
        self.now = datetime.now(UTC) + timedelta(seconds=5)
        self.crashed_after_send: set[str] = set()
        self.superseded_seen: set[str] = set()

    def teardown(self) -> None:
        REGISTRY.pop("recorder", None)
        self.branch.stop()
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(count=st.integers(1, 4), with_email=st.sampled_from([True, True, False]),
          service=st.sampled_from(["teller", "teller", "cs"]))  # fmt: skip
    def enqueue(self, count: int, with_email: bool, service: str) -> None:
        for _ in range(count):
            self.branch.enqueue(service, email="x@example.com" if with_email else None)

    @rule(counters=st.lists(st.sampled_from(["1", "2", "3", "4"]), min_size=1, max_size=3))
    def call_next(self, counters: list[str]) -> None:
        for counter in counters:
            self.branch.call_next(counter)

    @rule()
    def ship(self) -> None:
        self.branch.ship(batch=3)

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        if self.branch.shipped:
            self.branch.ship(from_seq=data.draw(st.integers(0, self.branch.shipped - 1)), batch=4)

    @rule()
    def dispatch(self) -> None:
        """A fresh dispatcher (a restart) runs one round."""
        dispatcher = Dispatcher(self.engine, clock=lambda: self.now)
        asyncio.run(self._round(dispatcher))

    async def _round(self, dispatcher: Dispatcher) -> None:
        try:
            await dispatcher.run_once()
        finally:
            await dispatcher.stop()

    @rule(after_send=st.booleans())
    def crash_mid_dispatch(self, after_send: bool) -> None:
        """A dispatcher claims rows and dies before recording (having called the provider, or not)."""
        for job in outbox.claim(self.engine, self.now, limit=3):
            if after_send:
                asyncio.run(self.recorder.send(job.message))
                self.crashed_after_send.add(job.message.key)

    @rule(seconds=st.sampled_from([1.0, 30.0, outbox.LEASE.total_seconds() + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @invariant()
    def delivered_at_most_once_and_never_after_superseded(self) -> None:
        assert all(n <= 1 for n in self.recorder.delivered.values())
        calls = Counter(c.key for c in self.recorder.calls)
        assert all(n == 1 or key in self.crashed_after_send for key, n in calls.items())
        for call in self.recorder.calls:
            assert call.key not in self.superseded_seen or call.key in self.crashed_after_send
            assert call.ticket_status in outbox.STILL[call.trigger], call
        with self.engine.connect() as conn:
            t = outbox_table.c
            rows = conn.execute(sa.select(t.tenant_id, t.branch_id, t.ticket_id, t.trigger, t.channel, t.status))
            for row in rows:
                key = "/".join(row[:5])
                if row.status == "superseded":
                    assert key not in self.recorder.delivered or key in self.crashed_after_send
                    self.superseded_seen.add(key)


OutboxMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
test_outbox_at_most_once = OutboxMachine.TestCase
