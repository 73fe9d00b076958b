"""A failed delivery report owes the message on the channel's configured fallback, on SQLite and PostgreSQL: a
WhatsApp template accepted and then reported `failed` (any code, here 131049) is sent again by SMS; that SMS reported
undelivered in turn falls back to e-mail, which the ticket already has (one e-mail, never two); the dead rows' reasons
say what the fallback did. Real dispatcher, provider stand-ins (Graph API, Twilio) and SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloud.notify import outbox, policy
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import DeliveryUpdate
from cloud.store import create_store_engine
from tests.cloud.notify.branch import TENANT, Branch, rows, use_email
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


def _configure(engine: sa.Engine, channel: str, provider: str, settings: dict[str, Any]) -> None:
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, channel, provider, settings, REGISTRY[provider].SECRETS)


def _report(engine: sa.Engine, provider: str, row: dict[str, Any], code: str) -> int:
    """The provider's webhook said the message never arrived (parsing and signatures are tested per provider)."""
    update = DeliveryUpdate(row["provider_message_id"], "failed", code=code, reason=f"error {code}")
    with engine.begin() as conn:
        return outbox.apply_deliveries(conn, TENANT, provider, [update], datetime.now(UTC))


def _one(engine: sa.Engine, ticket: str, channel: str) -> dict[str, Any]:
    [row] = rows(engine, ticket_id=ticket, trigger="ticket.created", channel=channel)
    return row


async def test_failed_reports_fall_back(engine: sa.Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    dispatcher = Dispatcher(engine)
    branch = Branch(tmp_path / "edge", engine)
    with WhatsAppStandIn() as wa, TwilioStandIn() as twilio:
        try:
            _configure(engine, "whatsapp", "whatsapp", {
                "base_url": wa.base_url, "phone_number_id": wa.phone_number_id, "access_token": wa.access_token,
                "app_secret": wa.app_secret, "verify_token": "vt"})  # fmt: skip
            _configure(engine, "sms", "twilio", {
                "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
                "base_url": twilio.base_url, "webhook_url": "https://hq.example.com/hook"})  # fmt: skip
            use_email(engine, smtp_server.settings)
            ticket = branch.enqueue("teller", phone="081234567890", email="budi@example.com", lang="id")
            branch.ship()
            while await dispatcher.run_once():
                pass
            sent = _one(engine, ticket, "whatsapp")
            assert sent["status"] == "sent"
            assert rows(engine, ticket_id=ticket, channel="sms") == []
            smtp_server.wait_for(1)

            assert _report(engine, "whatsapp", sent, "131049") == 1  # not a send-time fallback code: any failure
            dead = _one(engine, ticket, "whatsapp")
            assert (dead["status"], dead["code"]) == ("dead", "131049")
            assert dead["reason"] == "delivery failed: error 131049; fallback: sms"
            while await dispatcher.run_once():
                pass
            sms = _one(engine, ticket, "sms")
            assert (sms["status"], sms["fallback_of"]) == ("sent", dead["id"])
            assert [f["To"] for f in twilio.sent] == ["+6281234567890"]

            assert _report(engine, "twilio", sms, "30003") == 1  # undelivered (unreachable handset)
            undelivered = _one(engine, ticket, "sms")
            assert undelivered["status"] == "dead"
            assert undelivered["reason"] == "delivery failed: error 30003; fallback: email (already owed)"
            while await dispatcher.run_once():
                pass
            assert _one(engine, ticket, "email")["fallback_of"] is None  # the e-mail owed from the start, once
            assert len(smtp_server.messages) == 1
        finally:
            await dispatcher.stop()
            branch.stop()


async def test_a_permanent_sms_refusal_falls_back_to_email_unless_off(engine: sa.Engine, tmp_path: Path) -> None:
    """Twilio refuses the number (21211) at send time: e-mail is owed; with `sms_fallback` = none nothing is."""
    dispatcher = Dispatcher(engine)
    branch = Branch(tmp_path / "edge", engine)
    with TwilioStandIn() as twilio:
        try:
            _configure(engine, "sms", "twilio", {
                "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
                "base_url": twilio.base_url, "webhook_url": "https://hq.example.com/hook"})  # fmt: skip
            with engine.begin() as conn:
                policy.save(conn, TENANT, policy.TenantPolicy(sms_fallback="none"))
            twilio.then("permanent", "permanent")
            first = branch.enqueue("teller", phone="081234567890", lang="id")
            branch.ship()
            while await dispatcher.run_once():
                pass
            assert (_one(engine, first, "sms")["status"], _one(engine, first, "sms")["code"]) == ("dead", "21211")
            assert rows(engine, ticket_id=first, channel="email") == []
            with engine.begin() as conn:
                policy.save(conn, TENANT, policy.TenantPolicy())  # the default: e-mail
            second = branch.enqueue("teller", phone="081234567891", lang="id")
            branch.ship()
            while await dispatcher.run_once():
                pass
            dead = _one(engine, second, "sms")
            assert dead["reason"].endswith("; fallback: email"), dead
            email = _one(engine, second, "email")  # no address and no e-mail provider: recorded, not sent
            assert (email["fallback_of"], email["status"]) == (dead["id"], "skipped")
        finally:
            await dispatcher.stop()
            branch.stop()
