"""Every provider call carries the correlation id of the event that caused it (issue 16, E-PLAT-01): HTTP providers
as `X-Request-ID`, e-mail as an `X-Request-ID` header of the message, so one customer's ticket can be followed from
the kiosk to the provider's own request log."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from cloud.notify import push_store
from cloud.notify.providers import REGISTRY, email, webpush
from cloud.notify.providers.base import OutgoingMessage, WhatsAppTemplate
from tests.cloud.notify.providers.conftest import PHONE, sms
from tests.cloud.notify.providers.test_infobip import settings as infobip_settings
from tests.cloud.notify.providers.test_twilio import settings as twilio_settings
from tests.cloud.notify.providers.test_whatsapp import settings as whatsapp_settings
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.providers.infobip import InfobipStandIn
from tests.support.providers.push_service import PushServiceStandIn
from tests.support.providers.stand_in import StandIn, WebhookSink
from tests.support.providers.twilio import TwilioStandIn
from tests.support.providers.whatsapp import WhatsAppStandIn

CID = "kiosk-7f3a9c21-req"


@pytest.mark.parametrize("kind", ["twilio", "infobip", "whatsapp"])
async def test_sms_and_whatsapp_send_the_request_id(kind: str, sink: WebhookSink, client: httpx.AsyncClient) -> None:
    server: StandIn
    if kind == "twilio":
        twilio = TwilioStandIn().start()
        server, message, config = twilio, sms(), twilio_settings(twilio, sink)
    elif kind == "infobip":
        infobip = InfobipStandIn().start()
        server, message, config = infobip, sms(), infobip_settings(infobip, sink)
    else:
        template = WhatsAppTemplate("antrean_dipanggil", "id", ("A012", "Loket 3"))
        whatsapp = WhatsAppStandIn().start()
        server, config = whatsapp, whatsapp_settings(whatsapp)
        message = OutgoingMessage(key="k", channel="whatsapp", to=PHONE, text="", template=template)
    try:
        result = await REGISTRY[kind].build(config, client).send(dataclasses.replace(message, correlation_id=CID))
        assert result.outcome == "sent"
        assert server.requests[-1].headers["x-request-id"] == CID
    finally:
        server.stop()


async def test_web_push_sends_the_request_id(client: httpx.AsyncClient) -> None:
    with PushServiceStandIn() as service:
        provider = webpush.build({"vapid_private_key": push_store.new_key_pair()[1]}, client)
        message = OutgoingMessage(key="acme/b1/t1/ticket.called/push", channel="push",
                                  to=json.dumps(service.subscribe()), text="A012", correlation_id=CID)  # fmt: skip
        assert (await provider.send(message)).outcome == "sent", service.refused
        [push] = service.received
        assert push.headers["x-request-id"] == CID
        assert push.payload["tag"] == "acme/b1/t1"  # per ticket: a newer notice replaces the older


async def test_email_carries_the_request_id(smtp_server: SmtpServer) -> None:
    provider = email.build(smtp_server.settings)
    try:
        message = OutgoingMessage(key="k", channel="email", to="nasabah@example.com", text="A012", subject="A012",
                                  correlation_id=CID)  # fmt: skip
        assert (await provider.send(message)).outcome == "sent"
    finally:
        await provider.close()
    (got,) = smtp_server.wait_for(1)
    assert got.message["X-Request-ID"] == CID
