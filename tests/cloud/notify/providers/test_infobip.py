"""The Infobip adapter against a local Infobip stand-in: send outcomes and delivery reports bound to their message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cloud.notify.providers import infobip
from cloud.notify.providers.base import InvalidWebhook
from tests.cloud.notify.providers.conftest import PHONE, as_webhook, sms
from tests.support.providers.infobip import InfobipStandIn
from tests.support.providers.stand_in import WebhookSink


@pytest.fixture
def stand_in() -> Iterator[InfobipStandIn]:
    with InfobipStandIn() as server:
        yield server


def settings(stand_in: InfobipStandIn, sink: WebhookSink, **over: str) -> dict[str, str]:
    return {"base_url": stand_in.base_url, "api_key": stand_in.api_key, "sender": "BANKQ",
            "webhook_url": sink.url("/hooks/infobip"), "webhook_secret": "s3cret-webhook"} | over  # fmt: skip


async def test_sent_then_delivered_by_a_report(stand_in: InfobipStandIn, sink: WebhookSink,
                                               client: httpx.AsyncClient) -> None:  # fmt: skip
    config = settings(stand_in, sink)
    provider = infobip.build(config, client)
    result = await provider.send(sms())
    assert result.outcome == "sent"
    sent = stand_in.sent[0]
    assert sent["to"] == PHONE.removeprefix("+")
    assert sent["from"] == "BANKQ"
    assert sent["notifyContentType"] == "application/json"
    assert result.provider_message_id == sent["messageId"]
    again = await provider.send(sms())  # a retry of the same outbox row keeps its messageId
    assert again.provider_message_id == result.provider_message_id
    assert stand_in.report(sent["messageId"], "DELIVERED").status_code == 200
    stand_in.report(sent["messageId"], "UNDELIVERABLE")
    delivered, failed = (infobip.parse_webhook(as_webhook(sink, r), config) for r in sink.requests)
    assert [(u.provider_message_id, u.status) for u in delivered] == [(sent["messageId"], "delivered")]
    assert (failed[0].status, failed[0].code) == ("failed", "EC_ABSENT_SUBSCRIBER")


async def test_report_for_another_message_or_without_the_secret_is_refused(
    stand_in: InfobipStandIn, sink: WebhookSink, client: httpx.AsyncClient
) -> None:
    config = settings(stand_in, sink)
    await infobip.build(config, client).send(sms())
    stand_in.report(stand_in.sent[0]["messageId"], "DELIVERED", tamper=True)
    with pytest.raises(InvalidWebhook):
        infobip.parse_webhook(as_webhook(sink, sink.requests[0]), config)
    stand_in.report(stand_in.sent[0]["messageId"], "DELIVERED")
    with pytest.raises(InvalidWebhook):
        infobip.parse_webhook(as_webhook(sink, sink.requests[1]), config | {"webhook_secret": "another"})
    request = as_webhook(sink, sink.requests[1])
    with pytest.raises(InvalidWebhook):
        infobip.parse_webhook(type(request)(request.url, request.headers, b"{not json"), config)


async def test_429_500_and_hang_are_retries(stand_in: InfobipStandIn, sink: WebhookSink,
                                            client: httpx.AsyncClient) -> None:  # fmt: skip
    provider = infobip.build(settings(stand_in, sink), client)
    stand_in.then("429", "500", "hang").retry_after = "3"
    limited, failing, hung = [await provider.send(sms()) for _ in range(3)]
    assert (limited.outcome, limited.retry_after, limited.code) == ("retry", 3.0, "TOO_MANY_REQUESTS")
    assert (failing.outcome, failing.code) == ("retry", "GENERAL_ERROR")
    assert (hung.outcome, hung.code) == ("retry", "timeout")


async def test_rejected_destination_and_bad_key_are_permanent(stand_in: InfobipStandIn, sink: WebhookSink,
                                                              client: httpx.AsyncClient) -> None:  # fmt: skip
    stand_in.then("permanent")
    rejected = await infobip.build(settings(stand_in, sink), client).send(sms())
    assert (rejected.outcome, rejected.code) == ("permanent", "REJECTED_DESTINATION")
    unauthorized = await infobip.build(settings(stand_in, sink, api_key="wrong"), client).send(sms())
    assert (unauthorized.outcome, unauthorized.code) == ("permanent", "UNAUTHORIZED")
    assert "wrong" not in (unauthorized.reason or "")
    assert "81234567890" not in (rejected.reason or "")
