"""The Zenziva adapter against a local stand-in speaking Zenziva's console API (`POST /reguler/api/sendsms/`, JSON
userkey/passkey/to/message, answers `{"messageId", "status", "text"}`): accepted → sent with its messageId; 429, 5xx
and a hung request → retry; wrong keys, an invalid number and an exhausted balance → permanent, with reasons that
carry neither the number nor the keys. Zenziva has no delivery reports: every callback is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from cloud.notify.providers import REGISTRY, zenziva
from cloud.notify.providers.base import InvalidWebhook, OutgoingMessage, WebhookRequest, secret_fields
from tests.support.providers.zenziva import PATH, ZenzivaStandIn

PHONE = "+6281234567890"
CLIENT_TIMEOUT = 1.0  # a hung stand-in is a quick `timeout`


@pytest.fixture
def stand_in() -> Iterator[ZenzivaStandIn]:
    with ZenzivaStandIn() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        yield http


def settings(stand_in: ZenzivaStandIn, **over: str) -> dict[str, str]:
    return {"userkey": stand_in.userkey, "passkey": stand_in.passkey, "base_url": stand_in.base_url} | over


def sms(key: str = "t1:ticket.called:sms", correlation_id: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(key=key, channel="sms", to=PHONE, text="A012 dipanggil ke Loket 3",
                           correlation_id=correlation_id)  # fmt: skip


async def test_accepted_is_sent_with_zenzivas_message_id(stand_in: ZenzivaStandIn, client: httpx.AsyncClient) -> None:
    result = await zenziva.build(settings(stand_in), client).send(sms(correlation_id="kiosk-req-1"))
    assert result.outcome == "sent"
    [request] = stand_in.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-request-id"] == "kiosk-req-1"
    body = json.loads(request.body)
    assert body == {"userkey": stand_in.userkey, "passkey": stand_in.passkey, "to": "6281234567890",
                    "message": "A012 dipanggil ke Loket 3"}  # fmt: skip
    assert result.provider_message_id == stand_in.sent[0]["messageId"] == "157365"


async def test_429_500_and_hang_are_retries(stand_in: ZenzivaStandIn, client: httpx.AsyncClient) -> None:
    provider = zenziva.build(settings(stand_in), client)
    stand_in.then("429", "500", "hang").retry_after = "3"
    limited, failing, hung = [await provider.send(sms()) for _ in range(3)]
    assert (limited.outcome, limited.retry_after, limited.code) == ("retry", 3.0, "429")
    assert (failing.outcome, failing.code) == ("retry", "500")
    assert (hung.outcome, hung.code) == ("retry", "timeout")
    assert stand_in.sent == []


async def test_bad_keys_invalid_number_and_no_balance_are_permanent(stand_in: ZenzivaStandIn,
                                                                    client: httpx.AsyncClient) -> None:  # fmt: skip
    wrong = await zenziva.build(settings(stand_in, passkey="wrong-passkey"), client).send(sms())
    assert (wrong.outcome, wrong.code) == ("permanent", "auth")
    provider = zenziva.build(settings(stand_in), client)
    stand_in.then("permanent", "balance")
    number, balance = await provider.send(sms()), await provider.send(sms())
    assert (number.outcome, number.code) == ("permanent", "invalid_number")
    assert (balance.outcome, balance.code) == ("permanent", "balance")
    for result in (wrong, number, balance):
        assert "81234567890" not in (result.reason or "")
        assert "passkey" not in (result.reason or "").lower()


def test_refusal_texts_map_to_codes() -> None:
    assert zenziva.refusal_code("Userkey atau Passkey Salah") == "auth"
    assert zenziva.refusal_code("Nomor tujuan tidak valid") == "invalid_number"
    assert zenziva.refusal_code("Saldo tidak mencukupi") == "balance"
    assert zenziva.refusal_code("Masa aktif habis") == "balance"
    assert zenziva.refusal_code("Gagal") == "refused"


def test_no_delivery_reports_and_the_passkey_is_write_only() -> None:
    with pytest.raises(InvalidWebhook):
        zenziva.parse_webhook(WebhookRequest("https://hub.example/hook", {}, b'{"messageId": "1"}'), {})
    assert REGISTRY["zenziva"] is zenziva
    assert REGISTRY["zenziva"].CHANNEL == "sms"
    shown = secret_fields({"userkey": "u", "passkey": "p", "base_url": ""}, zenziva.SECRETS)
    assert shown == {"userkey": "u", "passkey": "••••", "base_url": ""}
