"""Each provider stand-in calls the hub's real webhook route (`/api/v1/notify/webhooks/<provider>/<tenant>`, uvicorn)
with the provider's own signature: accepted when it verifies, 400 when tampered; WhatsApp's GET handshake echoes the
challenge only for the tenant's verify token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.notify import policy
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import OutgoingMessage, SendResult, WhatsAppTemplate
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.providers.conftest import PHONE, sms
from tests.support.providers.hub import served
from tests.support.providers.infobip import InfobipStandIn
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn

TENANT = "acme"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """The hub's app on a free port over a SQLite store."""
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


def _send(provider: str, settings: dict[str, Any], message: OutgoingMessage) -> SendResult:
    async def send() -> SendResult:
        async with httpx.AsyncClient(timeout=5) as client:
            result: SendResult = await REGISTRY[provider].build(settings, client).send(message)
            return result

    with ThreadPoolExecutor(1) as pool:  # the stand-ins and the hub run in threads; the send has a loop of its own
        return pool.submit(asyncio.run, send()).result()


def test_twilio_status_callback_through_the_hub(hub: tuple[str, sa.Engine]) -> None:
    base, engine = hub
    with TwilioStandIn() as twilio:
        hook = f"{base}/api/v1/notify/webhooks/twilio/{TENANT}"
        settings = {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": "+15005550006",
                    "base_url": twilio.base_url, "webhook_url": hook}  # fmt: skip
        _configure(engine, "sms", "twilio", settings)
        result = _send("twilio", settings, sms())
        assert result.provider_message_id is not None
        accepted = twilio.report(result.provider_message_id, "delivered")
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["updates"] == 1
        tampered = twilio.report(result.provider_message_id, "failed", tamper=True)
        assert tampered.status_code == 400


def test_infobip_delivery_report_through_the_hub(hub: tuple[str, sa.Engine]) -> None:
    base, engine = hub
    with InfobipStandIn() as infobip:
        hook = f"{base}/api/v1/notify/webhooks/infobip/{TENANT}"
        settings = {"base_url": infobip.base_url, "api_key": infobip.api_key, "sender": "BANKQ", "webhook_url": hook,
                    "webhook_secret": "w-secret"}  # fmt: skip
        _configure(engine, "sms", "infobip", settings)
        result = _send("infobip", settings, sms())
        assert result.provider_message_id is not None
        accepted = infobip.report(result.provider_message_id, "DELIVERED")
        assert accepted.status_code == 200, accepted.text
        assert infobip.report(result.provider_message_id, "DELIVERED", tamper=True).status_code == 400


def test_whatsapp_handshake_and_status_webhook_through_the_hub(hub: tuple[str, sa.Engine]) -> None:
    base, engine = hub
    hook = f"{base}/api/v1/notify/webhooks/whatsapp/{TENANT}"
    with WhatsAppStandIn() as meta:
        settings = {"base_url": meta.base_url, "phone_number_id": meta.phone_number_id,
                    "access_token": meta.access_token, "app_secret": meta.app_secret,
                    "verify_token": "verify-me"}  # fmt: skip
        _configure(engine, "whatsapp", "whatsapp", settings)
        handshake = meta.verify(hook, "verify-me")
        assert (handshake.status_code, handshake.text) == (200, "1158201444")
        assert meta.verify(hook, "a guess").status_code == 403
        template = WhatsAppTemplate("antrean_dipanggil", "id", ("A012", "Loket 3"))
        message = OutgoingMessage(key="k", channel="whatsapp", to=PHONE, text="", template=template)
        result = _send("whatsapp", settings, message)
        assert result.provider_message_id is not None
        accepted = meta.report(hook, result.provider_message_id, "failed", error_code=131026)
        assert accepted.status_code == 200, accepted.text
        assert meta.report(hook, result.provider_message_id, "sent", tamper=True).status_code == 400
