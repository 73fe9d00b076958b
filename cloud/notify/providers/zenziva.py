"""Zenziva SMS (Indonesian gateway), the console.zenziva.net "SMS Reguler" API: `POST {base}/reguler/api/sendsms/`
with the JSON body `{"userkey", "passkey", "to", "message"}`; the answer is JSON `{"messageId", "to", "status",
"text"}` with `status` "1" and `text` "Success" when accepted, `status` "0" and a text (e.g. "Userkey atau Passkey
Salah") when refused.

Where these shapes come from (Zenziva publishes its documentation on zenziva.id/dokumentasi behind the account
console; nothing there was reachable from here, so the shapes are the ones public client libraries code against):
the endpoint, JSON fields and the success answer from kevinpurwito/laravel-zenziva (src/Zenziva.php and README:
`/reguler/api/sendsms/`, `{"messageId":"157365","to":…,"status":"1","text":"Success"}`, HTTP 201), the refusal from
ziswapp/ZenzivaClientApi (tests/stubs/error-request.json: `{"status":"0","text":"Userkey atau Passkey Salah"}`, HTTP
400); many applications post the same four fields to that URL.

What the API does not have, and what follows from it:
- no delivery-report webhook (Zenziva offers only a status query by messageId): a Zenziva message ends at `sent`;
  `parse_webhook` refuses every callback.
- no idempotency key or client reference: a retry after a timeout whose request did reach Zenziva sends the SMS a
  second time; retries of answered failures (429, 5xx, refusals) cannot.
- no correlation field: the request carries `X-Request-ID` like the other providers (Zenziva ignores headers it does
  not know; it is there for proxies and our own request logs).

Outcomes: 429 and 5xx (with `Retry-After`), timeouts and connection errors retry; `status` "0" is permanent — wrong
userkey/passkey (`auth`), an invalid number (`invalid_number`), an exhausted or expired balance (`balance`, replay
from the dead letters after topping up), anything else (`refused`). Reasons never carry Zenziva's text (it may echo
the number) nor the keys.

Settings: `userkey`, `passkey` (secret), `base_url` (default `https://console.zenziva.net`; tests point it at a local
stand-in). Numbers go out as international digits without '+' (62812…)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from cloud.notify.providers.base import (
    Channel,
    DeliveryUpdate,
    InvalidWebhook,
    OutgoingMessage,
    SendResult,
    WebhookRequest,
)
from cloud.notify.providers.http_outcome import correlation_headers, transient, transport_failure

CHANNEL: Channel = "sms"
SECRETS = ("passkey",)
BASE_URL = "https://console.zenziva.net"
SEND_PATH = "/reguler/api/sendsms/"
ACCEPTED = "1"
# Words in Zenziva's refusal text → our code (Indonesian and English texts; lower-cased)
_REFUSALS = (
    (("userkey", "passkey", "password", "api key", "apikey", "unauthori", "autentikasi"), "auth"),
    (("nomor", "number", "tujuan", "destination", "msisdn"), "invalid_number"),
    (("saldo", "kredit", "credit", "balance", "expired", "kadaluarsa", "kedaluwarsa", "masa aktif"), "balance"),
)


def refusal_code(text: str) -> str:
    """Our code for a refusal's text: `auth`, `invalid_number`, `balance` or `refused`."""
    lowered = text.lower()
    for words, code in _REFUSALS:
        if any(word in lowered for word in words):
            return code
    return "refused"


@dataclass
class ZenzivaProvider:
    """One tenant's Zenziva account."""

    settings: Mapping[str, Any]
    client: httpx.AsyncClient
    name: str = "zenziva"
    channel: Channel = "sms"

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send one SMS; Zenziva's `status` says accepted ("1") or refused ("0")."""
        base = str(self.settings.get("base_url") or BASE_URL).rstrip("/")
        payload = {
            "userkey": str(self.settings.get("userkey", "")),
            "passkey": str(self.settings.get("passkey", "")),
            "to": message.to.removeprefix("+"),
            "message": message.text,
        }
        try:
            response = await self.client.post(
                base + SEND_PATH,
                json=payload,
                headers={"Accept": "application/json", **correlation_headers(message)},
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return _outcome(response)


def _outcome(response: httpx.Response) -> SendResult:
    """An answer as a SendResult: `status` "1" → sent (its messageId); 429/5xx → retry; `status` "0" → permanent
    with the refusal's code; a 2xx without a status → retry (`shape`); another 4xx without one → permanent."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    status = str(body["status"]) if body.get("status") is not None else None
    if response.is_success and status == ACCEPTED:
        message_id = body.get("messageId")
        return SendResult("sent", provider_message_id=str(message_id) if message_id not in (None, "") else None)
    if (retry := transient(response)) is not None:
        return retry
    if status is not None:
        code = refusal_code(str(body.get("text") or ""))
        return SendResult("permanent", code=code,
                          reason=f"Zenziva refused the message (HTTP {response.status_code}, {code})")  # fmt: skip
    if response.is_success:
        return SendResult("retry", code="shape", reason="Zenziva answered without a status")
    return SendResult("permanent", code=str(response.status_code),
                      reason=f"Zenziva refused the request (HTTP {response.status_code})")  # fmt: skip


def build(settings: Mapping[str, Any], client: httpx.AsyncClient) -> ZenzivaProvider:
    """A Zenziva provider for one tenant's settings."""
    return ZenzivaProvider(settings, client)


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:
    """Zenziva sends no delivery reports: any callback claiming to be one is refused."""
    del request, settings
    raise InvalidWebhook("Zenziva has no delivery-report webhook")
