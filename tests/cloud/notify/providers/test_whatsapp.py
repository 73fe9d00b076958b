"""The WhatsApp Cloud API adapter against a local Graph API stand-in: template sends, error codes the dispatcher
falls back on, the verification handshake and signed status webhooks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cloud.notify.providers import whatsapp
from cloud.notify.providers.base import InvalidWebhook, OutgoingMessage, WhatsAppTemplate
from tests.cloud.notify.providers.conftest import PHONE, as_webhook
from tests.support.providers.stand_in import WebhookSink
from tests.support.providers.whatsapp import WhatsAppStandIn


@pytest.fixture
def stand_in() -> Iterator[WhatsAppStandIn]:
    with WhatsAppStandIn() as server:
        yield server


def settings(stand_in: WhatsAppStandIn, **over: str) -> dict[str, str]:
    return {"base_url": stand_in.base_url, "phone_number_id": stand_in.phone_number_id,
            "access_token": stand_in.access_token, "app_secret": stand_in.app_secret,
            "verify_token": "verify-me"} | over  # fmt: skip


def called() -> OutgoingMessage:
    template = WhatsAppTemplate("antrean_dipanggil", "id", ("A012", "Loket 3"))
    return OutgoingMessage(key="t1:ticket.called:whatsapp", channel="whatsapp", to=PHONE, text="", template=template)


async def test_template_sent_then_delivered_by_a_signed_webhook(stand_in: WhatsAppStandIn, sink: WebhookSink,
                                                                client: httpx.AsyncClient) -> None:  # fmt: skip
    config = settings(stand_in)
    result = await whatsapp.build(config, client).send(called())
    assert result.provider_message_id is not None
    assert result.outcome == "sent"
    assert result.provider_message_id == stand_in.sent[0]["id"]
    template = stand_in.sent[0]["template"]
    assert stand_in.sent[0]["to"] == PHONE.removeprefix("+")
    assert (template["name"], template["language"]["code"]) == ("antrean_dipanggil", "id")
    assert [p["text"] for p in template["components"][0]["parameters"]] == ["A012", "Loket 3"]
    stand_in.report(sink.url("/hooks/whatsapp"), result.provider_message_id, "delivered")
    stand_in.report(sink.url("/hooks/whatsapp"), result.provider_message_id, "failed", error_code=131026)
    delivered, failed = (whatsapp.parse_webhook(as_webhook(sink, r), config) for r in sink.requests)
    assert [(u.provider_message_id, u.status) for u in delivered] == [(result.provider_message_id, "delivered")]
    assert (failed[0].status, failed[0].code) == ("failed", whatsapp.NOT_ON_WHATSAPP)


async def test_tampered_webhook_is_refused(stand_in: WhatsAppStandIn, sink: WebhookSink,
                                           client: httpx.AsyncClient) -> None:  # fmt: skip
    config = settings(stand_in)
    result = await whatsapp.build(config, client).send(called())
    assert result.provider_message_id is not None
    stand_in.report(sink.url("/hooks/whatsapp"), result.provider_message_id, "failed", tamper=True)
    with pytest.raises(InvalidWebhook):
        whatsapp.parse_webhook(as_webhook(sink, sink.requests[0]), config)
    stand_in.report(sink.url("/hooks/whatsapp"), result.provider_message_id, "sent")
    with pytest.raises(InvalidWebhook):
        whatsapp.parse_webhook(as_webhook(sink, sink.requests[1]), config | {"app_secret": "another"})


def test_verification_handshake(stand_in: WhatsAppStandIn, sink: WebhookSink) -> None:
    stand_in.verify(sink.url("/hooks/whatsapp"), "verify-me")
    stand_in.verify(sink.url("/hooks/whatsapp"), "guess")
    good, bad = (dict(httpx.URL(sink.base_url + r.path).params) for r in sink.requests)
    assert whatsapp.verify_subscription(good, settings(stand_in)) == "1158201444"
    with pytest.raises(InvalidWebhook):
        whatsapp.verify_subscription(bad, settings(stand_in))


async def test_not_on_whatsapp_and_template_errors_are_permanent_with_the_code(
    stand_in: WhatsAppStandIn, client: httpx.AsyncClient
) -> None:
    provider = whatsapp.build(settings(stand_in), client)
    stand_in.then("permanent", "template")
    not_on_whatsapp, no_template = await provider.send(called()), await provider.send(called())
    assert (not_on_whatsapp.outcome, not_on_whatsapp.code) == ("permanent", "131026")
    assert (no_template.outcome, no_template.code) == ("permanent", "132001")
    expired = await whatsapp.build(settings(stand_in, access_token="expired"), client).send(called())
    assert (expired.outcome, expired.code) == ("permanent", "190")
    plain = OutgoingMessage(key="k", channel="whatsapp", to=PHONE, text="free text")
    assert (await provider.send(plain)).code == "no_template"


async def test_rate_limit_server_error_and_hang_are_retries(stand_in: WhatsAppStandIn,
                                                            client: httpx.AsyncClient) -> None:  # fmt: skip
    provider = whatsapp.build(settings(stand_in), client)
    stand_in.then("429", "500", "hang").retry_after = "60"
    limited, failing, hung = [await provider.send(called()) for _ in range(3)]
    assert (limited.outcome, limited.retry_after, limited.code) == ("retry", 60.0, "130429")
    assert (failing.outcome, failing.code) == ("retry", "131000")
    assert (hung.outcome, hung.code) == ("retry", "timeout")
