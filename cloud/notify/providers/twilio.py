"""Twilio Programmable Messaging (SMS): `POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, HTTP Basic
(account SID : auth token); delivery reports come back as form POSTs to `StatusCallback`, signed with
`X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted by name)).

Settings: `account_sid`, `auth_token` (secret), `from_number` or `messaging_service_sid`, `webhook_url` (the hub's
public delivery-report URL for this tenant, sent as `StatusCallback`), `base_url` (default Twilio's; tests point it
at a local stand-in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from cloud.notify.providers.base import (
    Channel,
    DeliveryUpdate,
    InvalidWebhook,
    OutgoingMessage,
    SendResult,
    WebhookRequest,
)
from cloud.notify.providers.http_outcome import correlation_headers, same, transient, transport_failure

CHANNEL: Channel = "sms"
SECRETS = ("auth_token",)
BASE_URL = "https://api.twilio.com"
# Twilio's MessageStatus values → our delivery status (queued…sent are all 'accepted, not yet on the handset')
_STATUS = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "delivered",
    "undelivered": "failed", "failed": "failed", "canceled": "failed",
}  # fmt: skip


def signature(auth_token: str, url: str, params: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 over the URL followed by every parameter's name and value,
    sorted by name (and value, for repeated names)."""
    pairs = sorted(params.items() if isinstance(params, Mapping) else params)
    data = url + "".join(k + v for k, v in pairs)
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class TwilioProvider:
    """One tenant's Twilio account."""

    settings: Mapping[str, Any]
    client: httpx.AsyncClient
    name: str = "twilio"
    channel: Channel = "sms"

    def _form(self, message: OutgoingMessage) -> dict[str, str]:
        """The Messages resource's form: recipient, body, sender (number or messaging service), callback."""
        form = {"To": message.to, "Body": message.text}
        if sender := self.settings.get("messaging_service_sid"):
            form["MessagingServiceSid"] = str(sender)
        else:
            form["From"] = str(self.settings.get("from_number", ""))
        if callback := self.settings.get("webhook_url"):
            form["StatusCallback"] = str(callback)
        return form

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Create one Message; Twilio answers 201 with its `sid`, or an error body with a numeric `code`."""
        sid = str(self.settings.get("account_sid", ""))
        base = str(self.settings.get("base_url") or BASE_URL).rstrip("/")
        try:
            response = await self.client.post(
                f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
                data=self._form(message),
                auth=(sid, str(self.settings.get("auth_token", ""))),
                headers=correlation_headers(message),
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return _outcome(response)


def _outcome(response: httpx.Response) -> SendResult:
    """A Messages answer as a SendResult: 2xx with a sid → sent; 429/5xx → retry; other 4xx → permanent with
    Twilio's error code (20003 authentication, 21211 invalid 'To', 21610 unsubscribed recipient, …)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body["code"]) if body.get("code") is not None else None
    if response.is_success and isinstance(body.get("sid"), str):
        return SendResult("sent", provider_message_id=body["sid"])
    if (retry := transient(response, code)) is not None:
        return retry
    if response.is_success:
        return SendResult("retry", code="shape", reason="Twilio answered without a message sid")
    return SendResult("permanent", code=code or str(response.status_code),
                      reason=f"Twilio refused the message (HTTP {response.status_code}, error {code})")  # fmt: skip


def build(settings: Mapping[str, Any], client: httpx.AsyncClient) -> TwilioProvider:
    """A Twilio provider for one tenant's settings."""
    return TwilioProvider(settings, client)


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:
    """A status callback's delivery update, after checking `X-Twilio-Signature` against the URL it was posted to."""
    try:
        params = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=bool(request.body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook("Twilio callback is not form-encoded") from exc
    given = {k.lower(): v for k, v in request.headers.items()}.get("x-twilio-signature")
    expected = signature(str(settings.get("auth_token", "")), request.url, params)
    if not settings.get("auth_token") or not same(expected, given):
        raise InvalidWebhook("Twilio signature does not verify")
    form = dict(params)
    sid, status = form.get("MessageSid") or form.get("SmsSid"), form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or status not in _STATUS:
        raise InvalidWebhook("Twilio callback without MessageSid and a known MessageStatus")
    code = form.get("ErrorCode") or None
    mapped = _STATUS[status]
    return [DeliveryUpdate(sid, mapped, code=code, reason=f"Twilio {status}" if mapped == "failed" else None)]  # type: ignore[arg-type]
