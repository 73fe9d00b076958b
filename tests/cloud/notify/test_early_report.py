"""A delivery report that arrives before the send was recorded is kept and applied when it is: a Twilio stand-in
that posts its `delivered` callback to the hub's webhook *before* it answers the send (the hub cannot have recorded
the message id yet), with the hub's app (webhook route and dispatcher in one process, as `qms-cloud serve` runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.notify import policy
from cloud.notify.providers import twilio
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
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
            settings = {"account_sid": provider.account_sid, "auth_token": provider.auth_token,
                        "from_number": "+15005550006", "base_url": provider.base_url,
                        "webhook_url": f"{base}/api/v1/notify/webhooks/twilio/{TENANT}"}  # fmt: skip
            with engine.begin() as conn:
                policy.save_provider(conn, TENANT, "sms", "twilio", settings, twilio.SECRETS)
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
    finally:
        branch.stop()
