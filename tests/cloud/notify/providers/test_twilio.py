"""The Twilio adapter against a local Twilio stand-in: send outcomes and signed status callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from cloud.notify.providers import REGISTRY, twilio
from cloud.notify.providers.base import InvalidWebhook
from tests.cloud.notify.providers.conftest import PHONE, as_webhook, sms
from tests.support.providers.stand_in import WebhookSink
from tests.support.providers.twilio import TwilioStandIn


@pytest.fixture
def stand_in() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as server:
        yield server


def settings(stand_in: TwilioStandIn, sink: WebhookSink, **over: str) -> dict[str, str]:
    return {"account_sid": stand_in.account_sid, "auth_token": stand_in.auth_token, "from_number": "+15005550006",
            "base_url": stand_in.base_url, "webhook_url": sink.url("/hooks/twilio?tenant=acme")} | over  # fmt: skip


async def test_sent_then_delivered_by_a_signed_callback(stand_in: TwilioStandIn, sink: WebhookSink,
                                                        client: httpx.AsyncClient) -> None:  # fmt: skip
    config = settings(stand_in, sink)
    result = await REGISTRY["twilio"].build(config, client).send(sms())
    assert result.outcome == "sent"
    assert result.provider_message_id == stand_in.sent[0]["sid"]
    assert stand_in.sent[0]["To"] == PHONE
    assert stand_in.sent[0]["Body"] == "A012 dipanggil ke Loket 3"
    assert stand_in.sent[0]["StatusCallback"] == config["webhook_url"]
    assert stand_in.report(result.provider_message_id, "delivered").status_code == 200
    stand_in.report(result.provider_message_id, "undelivered", error_code="30003")
    delivered, failed = (twilio.parse_webhook(as_webhook(sink, r), config) for r in sink.requests)
    assert [(u.provider_message_id, u.status) for u in delivered] == [(result.provider_message_id, "delivered")]
    assert failed[0].status == "failed"
    assert failed[0].code == "30003"


async def test_tampered_or_unsigned_callback_is_refused(stand_in: TwilioStandIn, sink: WebhookSink,
                                                        client: httpx.AsyncClient) -> None:  # fmt: skip
    config = settings(stand_in, sink)
    result = await twilio.build(config, client).send(sms())
    assert result.provider_message_id is not None
    stand_in.report(result.provider_message_id, "failed", tamper=True)
    with pytest.raises(InvalidWebhook):
        twilio.parse_webhook(as_webhook(sink, sink.requests[0]), config)
    stand_in.report(result.provider_message_id, "delivered")
    with pytest.raises(InvalidWebhook):  # signed with another tenant's token
        twilio.parse_webhook(as_webhook(sink, sink.requests[1]), config | {"auth_token": "other"})
    unsigned = as_webhook(sink, sink.requests[1])
    with pytest.raises(InvalidWebhook):
        twilio.parse_webhook(type(unsigned)(unsigned.url, {}, unsigned.body), config)


async def test_429_is_a_retry_after_the_providers_delay(stand_in: TwilioStandIn, sink: WebhookSink,
                                                        client: httpx.AsyncClient) -> None:  # fmt: skip
    stand_in.then("429").retry_after = "7"
    result = await twilio.build(settings(stand_in, sink), client).send(sms())
    assert (result.outcome, result.retry_after, result.code) == ("retry", 7.0, "20429")


async def test_500_and_a_hang_are_retries(stand_in: TwilioStandIn, sink: WebhookSink,
                                          client: httpx.AsyncClient) -> None:  # fmt: skip
    provider = twilio.build(settings(stand_in, sink), client)
    stand_in.then("500", "hang")
    assert (await provider.send(sms())).outcome == "retry"
    timed_out = await provider.send(sms())
    assert (timed_out.outcome, timed_out.code) == ("retry", "timeout")
    assert (await provider.send(sms())).outcome == "sent"  # the stand-in is fine again


async def test_invalid_number_is_permanent_with_twilios_code_and_no_number(
    stand_in: TwilioStandIn, sink: WebhookSink, client: httpx.AsyncClient
) -> None:
    stand_in.then("permanent")
    result = await twilio.build(settings(stand_in, sink), client).send(sms())
    assert (result.outcome, result.code) == ("permanent", "21211")
    assert PHONE not in (result.reason or "")
    assert "81234567890" not in (result.reason or "")


async def test_wrong_credentials_are_permanent(stand_in: TwilioStandIn, sink: WebhookSink,
                                               client: httpx.AsyncClient) -> None:  # fmt: skip
    result = await twilio.build(settings(stand_in, sink, auth_token="wrong"), client).send(sms())
    assert (result.outcome, result.code) == ("permanent", "20003")
    assert "wrong" not in (result.reason or "")


async def test_unreachable_provider_is_a_retry(sink: WebhookSink, client: httpx.AsyncClient) -> None:
    stand_in = TwilioStandIn()
    stand_in.start()
    stand_in.stop()
    result = await twilio.build(settings(stand_in, sink), client).send(sms())
    assert (result.outcome, result.code) == ("retry", "connection")


async def test_retry_after_as_an_http_date(
    stand_in: TwilioStandIn, sink: WebhookSink, client: httpx.AsyncClient
) -> None:
    stand_in.then("429").retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    result = await twilio.build(settings(stand_in, sink), client).send(sms())
    assert result.outcome == "retry"
    assert result.retry_after is not None
    assert 80 <= result.retry_after <= 90
