"""A delivery report that arrives before the send was recorded is kept in the store and applied when it is: provider
stand-ins that post their `delivered` report to the hub's webhook *before* they answer the send (the hub cannot have
recorded the message id yet).

* one hub (the app: webhook route and dispatcher in one process, as `qms-cloud serve` runs);
* two replicas on one PostgreSQL: the report reaches replica B (a `qms-cloud serve` process) while A sends;
* a hub that received the report and died before recording the send (killed): the next hub sends the message again
  once its lease has run out (Infobip's message id is ours, derived from the outbox key, so it is the same id) and
  applies the report the dead hub parked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.notify import policy
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.outbox import LEASE
from cloud.notify.providers import infobip, twilio
from cloud.notify.tables import parked_reports
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
from tests.support.providers.infobip import InfobipStandIn
from tests.support.providers.stand_in import Answer, Recorded
from tests.support.providers.twilio import TwilioStandIn


class EagerTwilio(TwilioStandIn):
    """Twilio that reports `delivered` to the StatusCallback before its 201 reaches the sender."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[httpx.Response] = []

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Accept as Twilio does, call back at once, then answer."""
        answer = super().answer(kind, request)
        if answer.status == 201:  # Twilio's "created"
            self.callbacks.append(self.report(self.sent[-1]["sid"], "delivered"))
        return answer


class DyingInfobip(InfobipStandIn):
    """Infobip that posts the first message's DELIVERED report to its notifyUrl before answering the send, then never
    answers it (the hub that sent dies waiting); later sends are answered as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[httpx.Response] = []

    def handle(self, request: Recorded) -> Answer | None:
        """Accept, call back and hang the first time."""
        answer = super().handle(request)
        if answer is not None and answer.status == 200 and not self.callbacks:
            self.callbacks.append(self.report(self.sent[0]["messageId"], "DELIVERED"))
            return None
        return answer


@contextmanager
def hub_process(store_url: str, port: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`qms-cloud serve` on the store (no NATS: its webhooks and dispatcher are what count here), healthy; stopped."""
    log = tmp_path / f"hub-{port}.log"
    with log.open("wb") as out:
        hub = subprocess.Popen(
            [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url", store_url, "--port",
             str(port), "--keys-dir", str(tmp_path / "keys"), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return hub.poll() is not None  # died: asserted below

    try:
        wait_until(healthy, timeout=60, what="qms-cloud serve")
        assert hub.poll() is None, log.read_text()
        yield hub
    finally:
        if hub.poll() is None:
            hub.terminate()
        hub.wait(timeout=15)


def parked(engine: sa.Engine) -> list[tuple[str, str]]:
    """The parked reports: (provider, status)."""
    with engine.connect() as conn:
        return [(r.provider, r.status) for r in conn.execute(sa.select(parked_reports))]


def use_twilio(engine: sa.Engine, provider: TwilioStandIn, webhook_url: str) -> None:
    """The tenant's SMS through the Twilio stand-in, status callbacks to `webhook_url`."""
    settings = {"account_sid": provider.account_sid, "auth_token": provider.auth_token,
                "from_number": "+15005550006", "base_url": provider.base_url, "webhook_url": webhook_url}  # fmt: skip
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, "sms", "twilio", settings, twilio.SECRETS)


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


def test_a_report_before_the_send_is_recorded_is_applied_when_it_is(
    tmp_path: Path, store_url: str, engine: sa.Engine
) -> None:
    branch = Branch(tmp_path / "edge", engine)
    try:
        with (
            EagerTwilio() as provider,
            served(create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as base,
        ):
            use_twilio(engine, provider, f"{base}/api/v1/notify/webhooks/twilio/{TENANT}")
            branch.enqueue("teller", phone="081234567890")
            assert branch.call_next("1") is not None
            branch.ship()  # the app's dispatcher is woken by its poll: another process's consumer wrote the rows

            called = wait_until(lambda: rows(engine, trigger="ticket.called", status="delivered"), 20, 0.05,
                                "the called message delivered")  # fmt: skip
            assert called[0]["delivered_at"]
            assert called[0]["sent_at"]
            # the callback came before the send was recorded (the provider had not even answered): the webhook
            # matched no row then, so the report was parked and applied when the dispatcher recorded the send
            assert [(r.status_code, r.json()["applied"]) for r in provider.callbacks] == [(200, 0)]
            assert rows(engine, trigger="ticket.created")[0]["status"] == "superseded"  # shipped after the call
            assert parked(engine) == []  # taken by the record
    finally:
        branch.stop()


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_a_report_reaching_another_replica_is_applied_by_the_one_that_sends(
    tmp_path: Path, store_url: str, engine: sa.Engine
) -> None:
    branch = Branch(tmp_path / "edge", engine)
    sender = Dispatcher(engine, tmp_path / "keys")  # replica A, in this process
    port = free_port()
    try:
        with EagerTwilio() as provider:
            use_twilio(engine, provider, f"http://127.0.0.1:{port}/api/v1/notify/webhooks/twilio/{TENANT}")
            branch.enqueue("teller", phone="081234567890")
            assert branch.call_next("1") is not None
            branch.ship()
            jobs = await sender.claim()  # A holds the messages' leases before replica B is up
            assert {j.trigger for j in jobs} == {"ticket.called"}
            with hub_process(store_url, port, tmp_path):  # replica B: the provider's callbacks reach it
                await sender.deliver(jobs)  # Twilio calls B back before it answers A
            # B matched no row (A had not recorded the send), parked the report in the store; A's record took it
            assert [(r.status_code, r.json()["applied"]) for r in provider.callbacks] == [(200, 0)]
            called = rows(engine, trigger="ticket.called")
            assert [(r["status"], bool(r["delivered_at"])) for r in called] == [("delivered", True)]
            assert parked(engine) == []
    finally:
        await sender.stop()
        branch.stop()


@pytest.mark.slow
async def test_a_report_parked_by_a_hub_that_died_before_recording_is_applied_after_the_restart(
    tmp_path: Path, store_url: str, engine: sa.Engine
) -> None:
    branch = Branch(tmp_path / "edge", engine)
    port = free_port()
    with DyingInfobip() as provider:
        settings = {"base_url": provider.base_url, "api_key": provider.api_key, "sender": "QMS",
                    "webhook_url": f"http://127.0.0.1:{port}/api/v1/notify/webhooks/infobip/{TENANT}",
                    "webhook_secret": "a-long-random-webhook-secret"}  # fmt: skip
        with engine.begin() as conn:
            policy.save_provider(conn, TENANT, "sms", "infobip", settings, infobip.SECRETS)
        try:
            with hub_process(store_url, port, tmp_path) as hub:  # it sends and receives
                branch.enqueue("teller", phone="081234567890")
                assert branch.call_next("1") is not None
                branch.ship()
                wait_until(lambda: provider.callbacks, timeout=30, what="the early report")
                assert [(r.status_code, r.json()["applied"]) for r in provider.callbacks] == [(200, 0)]
                hub.kill()  # dies waiting for Infobip's answer: the send is never recorded
                hub.wait(timeout=15)
            assert parked(engine) == [("infobip", "delivered")]  # in the store, not in the dead process
            assert [r["status"] for r in rows(engine, trigger="ticket.called")] == ["sending"]
            later = datetime.now(UTC) + LEASE + LEASE / 60  # the dead hub's lease has run out
            restarted = Dispatcher(engine, tmp_path / "keys", clock=lambda: later)
            try:
                assert await restarted.run_once() == 1  # the same message again, under the same Infobip id
            finally:
                await restarted.stop()
            assert [m["messageId"] for m in provider.sent] == [provider.sent[0]["messageId"]] * 2
            (called,) = rows(engine, trigger="ticket.called")
            assert (called["status"], called["attempts"]) == ("delivered", 2)
            assert parked(engine) == []
        finally:
            branch.stop()
