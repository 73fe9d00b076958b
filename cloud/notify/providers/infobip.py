"""Infobip SMS (widely used in Indonesia): `POST {base}/sms/2/text/advanced` with `Authorization: App <api key>` and
`{"messages": [{"destinations": [{"to", "messageId"}], "from", "text", "notifyUrl", "notifyContentType"}]}`;
delivery reports are JSON POSTs of `{"results": [{"messageId", "status": {"groupName", "name"}, "error": {…}}]}` to
the message's `notifyUrl`.

Infobip does not sign those reports, so each message's `notifyUrl` carries `sig` = hex HMAC-SHA256(webhook secret,
messageId): a report is accepted only for the message whose URL it came to, and nobody without the secret can forge
one. We choose the `messageId` (derived from the outbox key) so retries of one message keep one id.

Settings: `base_url` (the account's own `https://xxxxx.api.infobip.com`), `api_key` (secret), `sender`,
`webhook_url` (the hub's public delivery-report URL for this tenant), `webhook_secret` (secret, any long random
string)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec

from cloud.notify.providers.base import (
    Channel,
    DeliveryUpdate,
    InvalidWebhook,
    OutgoingMessage,
    SendResult,
    WebhookRequest,
)
from cloud.notify.providers.http_outcome import correlation_headers, message_ref, same, transient, transport_failure

CHANNEL: Channel = "sms"
SECRETS = ("api_key", "webhook_secret")
# Infobip status groups (send answer and delivery report) → our delivery status; REJECTED at send is permanent
_GROUPS = {"PENDING": "sent", "DELIVERED": "delivered", "UNDELIVERABLE": "failed", "EXPIRED": "failed",
           "REJECTED": "failed"}  # fmt: skip


class _Status(msgspec.Struct):
    groupName: str
    name: str = ""


class _Error(msgspec.Struct):
    name: str = ""
    groupName: str = ""


class _Result(msgspec.Struct):
    messageId: str
    status: _Status
    error: _Error | None = None


class _Report(msgspec.Struct):
    results: list[_Result]


_report = msgspec.json.Decoder(_Report)


def report_signature(secret: str, message_id: str) -> str:
    """The `sig` a message's notifyUrl carries: hex HMAC-SHA256 of its messageId under the webhook secret."""
    return hmac.new(secret.encode(), message_id.encode(), hashlib.sha256).hexdigest()


def notify_url(webhook_url: str, secret: str, message_id: str) -> str:
    """The hub's report URL for one message, bound to it by `sig`."""
    joiner = "&" if urlsplit(webhook_url).query else "?"
    return webhook_url + joiner + urlencode({"sig": report_signature(secret, message_id)})


@dataclass
class InfobipProvider:
    """One tenant's Infobip account."""

    settings: Mapping[str, Any]
    client: httpx.AsyncClient
    name: str = "infobip"
    channel: Channel = "sms"

    def _payload(self, message: OutgoingMessage, message_id: str) -> dict[str, Any]:
        """The advanced-text request for one destination (Infobip numbers are international without '+')."""
        sms: dict[str, Any] = {
            "destinations": [{"to": message.to.removeprefix("+"), "messageId": message_id}],
            "from": str(self.settings.get("sender", "")),
            "text": message.text,
        }
        if (url := self.settings.get("webhook_url")) and (secret := self.settings.get("webhook_secret")):
            sms |= {"notifyUrl": notify_url(str(url), str(secret), message_id), "notifyContentType": "application/json"}
        return {"messages": [sms]}

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send one SMS; the answer's per-message status says accepted (PENDING) or REJECTED."""
        base = str(self.settings.get("base_url", "")).rstrip("/")
        message_id = message_ref(message.key)
        try:
            response = await self.client.post(
                f"{base}/sms/2/text/advanced",
                json=self._payload(message, message_id),
                headers={
                    "Authorization": f"App {self.settings.get('api_key', '')}",
                    "Accept": "application/json",
                    **correlation_headers(message),
                },
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return _outcome(response, message_id)


def _outcome(response: httpx.Response, message_id: str) -> SendResult:
    """An answer as a SendResult: 200 with a PENDING message → sent, REJECTED_* → permanent (its name is the code);
    429/5xx → retry; other 4xx → permanent with `requestError.serviceException.messageId` (e.g. UNAUTHORIZED)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    error = body.get("requestError")
    exception = error.get("serviceException") if isinstance(error, dict) else None
    code = str(exception["messageId"]) if isinstance(exception, dict) and exception.get("messageId") else None
    if (retry := transient(response, code)) is not None:
        return retry
    if not response.is_success:
        return SendResult("permanent", code=code or str(response.status_code),
                          reason=f"Infobip refused the request (HTTP {response.status_code}, {code})")  # fmt: skip
    messages = body.get("messages")
    first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
    status: dict[str, Any] = first["status"] if isinstance(first.get("status"), dict) else {}
    group = status.get("groupName")
    if group in ("PENDING", "DELIVERED"):
        return SendResult("sent", provider_message_id=str(first.get("messageId") or message_id))
    if group in ("REJECTED", "UNDELIVERABLE", "EXPIRED"):
        name = str(status.get("name") or group)
        return SendResult("permanent", code=name, reason=f"Infobip rejected the message ({name})")
    return SendResult("retry", code="shape", reason="Infobip answered without a message status")


def build(settings: Mapping[str, Any], client: httpx.AsyncClient) -> InfobipProvider:
    """An Infobip provider for one tenant's settings."""
    return InfobipProvider(settings, client)


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:
    """A delivery report's updates, each checked against the `sig` of the notifyUrl it was posted to."""
    try:
        report = _report.decode(request.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidWebhook("not an Infobip delivery report") from exc
    given = parse_qs(urlsplit(request.url).query).get("sig", [None])[0]
    secret = str(settings.get("webhook_secret") or "")
    if not secret or not report.results:
        raise InvalidWebhook("Infobip report without results, or no webhook secret configured")
    updates = []
    for result in report.results:
        if not same(report_signature(secret, result.messageId), given):
            raise InvalidWebhook("Infobip report signature does not verify")
        mapped = _GROUPS.get(result.status.groupName)
        if mapped is None:
            raise InvalidWebhook("Infobip report with an unknown status group")
        failed = mapped == "failed"
        code = (result.error.name if result.error and result.error.name not in ("", "NO_ERROR") else None) or (
            result.status.name if failed else None
        )
        updates.append(DeliveryUpdate(result.messageId, mapped, code=code,  # type: ignore[arg-type]
                                      reason=f"Infobip {result.status.name}" if failed else None))  # fmt: skip
    return updates
