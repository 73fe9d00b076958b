"""Switching a tenant's SMS provider from Twilio to Zenziva is configuration only, on SQLite and PostgreSQL: the same
real dispatcher and branch send the first ticket's SMS through a Twilio stand-in, then — after one settings change,
nothing else — the next ticket's through a Zenziva stand-in (its row keeps Zenziva's messageId and stays `sent`:
Zenziva has no delivery reports); a number Zenziva refuses goes `dead` with the code `invalid_number`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloud.notify import policy
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.providers import REGISTRY
from cloud.store import create_store_engine
from tests.cloud.notify.branch import TENANT, Branch, rows
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.zenziva import ZenzivaStandIn


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


def _use_sms(engine: sa.Engine, provider: str, settings: dict[str, Any]) -> None:
    with engine.begin() as conn:
        policy.save_provider(conn, TENANT, "sms", provider, settings, REGISTRY[provider].SECRETS)


def _sms(engine: sa.Engine, ticket: str) -> dict[str, Any]:
    [row] = rows(engine, ticket_id=ticket, trigger="ticket.created", channel="sms")
    return row


async def test_twilio_to_zenziva_is_configuration_only(engine: sa.Engine, tmp_path: Path) -> None:
    dispatcher = Dispatcher(engine)
    branch = Branch(tmp_path / "edge", engine)

    async def deliver(phone: str) -> str:
        ticket = branch.enqueue("teller", phone=phone, lang="id")
        branch.ship()
        while await dispatcher.run_once():
            pass
        return ticket

    with TwilioStandIn() as twilio, ZenzivaStandIn() as zz:
        try:
            _use_sms(engine, "twilio", {
                "account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
                "base_url": twilio.base_url, "webhook_url": "https://hq.example.com/hook"})  # fmt: skip
            first = await deliver("081234567890")
            assert [f["To"] for f in twilio.sent] == ["+6281234567890"]
            assert (_sms(engine, first)["status"], _sms(engine, first)["provider"]) == ("sent", "twilio")

            _use_sms(engine, "zenziva", {"userkey": zz.userkey, "passkey": zz.passkey, "base_url": zz.base_url})
            second = await deliver("081234567891")
            assert len(twilio.sent) == 1
            assert [s["to"] for s in zz.sent] == ["6281234567891"]
            assert "A00" in zz.sent[0]["message"]
            row = _sms(engine, second)
            assert (row["status"], row["provider"]) == ("sent", "zenziva")
            assert row["provider_message_id"] == zz.sent[0]["messageId"]

            zz.then("permanent")
            third = await deliver("081234567892")
            dead = _sms(engine, third)
            assert (dead["status"], dead["code"]) == ("dead", "invalid_number")
            assert "81234567892" not in dead["reason"]
        finally:
            await dispatcher.stop()
            branch.stop()
