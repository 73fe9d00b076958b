"""WhatsApp with its fallback, through the hub's dispatcher and webhook route (uvicorn) and the provider stand-ins
(Graph API, Twilio): a number that is not on WhatsApp (131026) goes dead and the message is owed by SMS instead; a
status webhook reporting that failure later does the same; a `delivered` report marks the row delivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa

from cloud.notify import policy
from cloud.notify.providers import REGISTRY
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = create_store_engine(url)
    try:
        with served(create_app(CloudSettings(db_url=url, keys_dir=tmp_path / "keys"))) as base:
            yield base, engine
    finally:
        engine.dispose()


def _configure(engine: sa.Engine, channel: str, provider: str, settings: dict[str, Any]) -> None:
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, channel, provider, settings, REGISTRY[provider].SECRETS)


def _status(engine: sa.Engine, ticket_id: str, trigger: str, channel: str) -> str | None:
    found = rows(engine, ticket_id=ticket_id, trigger=trigger, channel=channel)
    return str(found[0]["status"]) if found else None


def test_not_on_whatsapp_falls_back_to_sms(hub: tuple[str, sa.Engine], tmp_path: Path) -> None:
    base, engine = hub
    with WhatsAppStandIn() as wa, TwilioStandIn() as twilio:
        _configure(engine, "whatsapp", "whatsapp", {
            "base_url": wa.base_url, "phone_number_id": wa.phone_number_id, "access_token": wa.access_token,
            "app_secret": wa.app_secret, "verify_token": "vt"})  # fmt: skip
        _configure(engine, "sms", "twilio", {
            "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
            "base_url": twilio.base_url, "webhook_url": f"{base}/api/v1/notify/webhooks/twilio/{TENANT}"})  # fmt: skip
        branch = Branch(tmp_path / "edge", engine)
        try:
            wa.then("permanent")  # the first template message: 131026, the number is not on WhatsApp
            first = branch.enqueue("teller", phone="081234567890", lang="id")
            branch.ship()
            wait_until(lambda: _status(engine, first, "ticket.created", "sms") == "sent", what="the SMS fallback")
            (dead,) = rows(engine, ticket_id=first, trigger="ticket.created", channel="whatsapp")
            assert (dead["status"], dead["code"]) == ("dead", "131026")
            (sms,) = rows(engine, ticket_id=first, trigger="ticket.created", channel="sms")
            assert sms["fallback_of"] == dead["id"]
            body = dict(parse_qsl(twilio.requests[-1].body.decode()))
            assert body["To"] == "+6281234567890"
            assert "A001" in body["Body"]
            # a template message accepted, then reported failed by the status webhook: SMS again
            second = branch.enqueue("teller", phone="081298765432", lang="en")
            branch.ship()
            wait_until(lambda: _status(engine, second, "ticket.created", "whatsapp") == "sent", what="the template")
            sent = wa.sent[-1]
            assert sent["template"]["language"]["code"] == "en"
            hook = f"{base}/api/v1/notify/webhooks/whatsapp/{TENANT}"
            assert wa.report(hook, sent["id"], "failed", error_code=131026).status_code == 200
            wait_until(lambda: _status(engine, second, "ticket.created", "sms") == "sent", what="the second fallback")
            # and a delivered report marks a message delivered
            branch.call_next("1")
            branch.ship()
            wait_until(lambda: _status(engine, first, "ticket.called", "whatsapp") == "sent", what="the call")
            wamid = wa.sent[-1]["id"]
            assert wa.report(hook, wamid, "delivered").status_code == 200
            assert _status(engine, first, "ticket.called", "whatsapp") == "delivered"
            assert wa.report(hook, wamid, "sent").status_code == 200  # late, out of order: ignored
            assert _status(engine, first, "ticket.called", "whatsapp") == "delivered"
        finally:
            branch.stop()
