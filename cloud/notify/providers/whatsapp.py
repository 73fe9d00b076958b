"""WhatsApp Cloud API template messages: `POST {base}/{version}/{phone_number_id}/messages` with a Bearer token and
`{"messaging_product": "whatsapp", "to", "type": "template", "template": {"name", "language": {"code"},
"components": [{"type": "body", "parameters": [{"type": "text", "text"}, …]}]}}`. Business-initiated messages must
be approved templates (free text only inside the customer's 24-hour window, which a queue never has).

Status webhooks (`entry[].changes[].value.statuses[]`: sent, delivered, read, failed with `errors[].code`) are signed
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`; Meta first checks the URL with a GET carrying
`hub.mode=subscribe`, `hub.verify_token` and `hub.challenge` (`verify_subscription`).

Error codes (graph API `error.code`): 131026 (recipient not on WhatsApp / cannot receive) and 132xxx (template
missing, not approved, paused, wrong parameters) are permanent and carried in `code`, so the dispatcher can fall back
to SMS or e-mail. Rate limits (4, 80007, 130429, 131048, 131056) and service errors (1, 2, 131000, 131016) retry.

Settings: `phone_number_id`, `access_token` (secret), `app_secret` (secret), `verify_token` (secret), `api_version`
(default v21.0), `base_url` (default the Graph API; tests point it at a local stand-in)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from cloud.notify.providers.http_outcome import (
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    correlation_headers,
    parse_retry_after,
    same,
    transport_failure,
)

CHANNEL: Channel = "whatsapp"
SECRETS = ("access_token", "app_secret", "verify_token")
BASE_URL = "https://graph.facebook.com"
API_VERSION = "v21.0"
NOT_ON_WHATSAPP = "131026"
RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056})
_STATUS = {"sent": "sent", "delivered": "delivered", "read": "delivered", "failed": "failed"}


class _Error(msgspec.Struct):
    code: int
    title: str = ""


class _Status(msgspec.Struct):
    id: str
    status: str
    errors: list[_Error] = []


class _Value(msgspec.Struct):
    statuses: list[_Status] = []


class _Change(msgspec.Struct):
    value: _Value
    field: str = "messages"


class _Entry(msgspec.Struct):
    changes: list[_Change] = []


class _Notification(msgspec.Struct):
    object: str
    entry: list[_Entry]


_notification = msgspec.json.Decoder(_Notification)


def body_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with a webhook body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def template_payload(message: OutgoingMessage) -> dict[str, Any]:
    """The template message for one recipient (WhatsApp wants the number without '+')."""
    assert message.template is not None
    template: dict[str, Any] = {"name": message.template.name, "language": {"code": message.template.language}}
    if message.template.body_parameters:
        parameters = [{"type": "text", "text": p} for p in message.template.body_parameters]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.to.removeprefix("+"),
            "type": "template", "template": template}  # fmt: skip


@dataclass
class WhatsAppProvider:
    """One tenant's WhatsApp Business phone number."""

    settings: Mapping[str, Any]
    client: httpx.AsyncClient
    name: str = "whatsapp"
    channel: Channel = "whatsapp"

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send one template message; the answer's `messages[0].id` (a wamid) links the status webhooks."""
        if message.template is None:
            return SendResult("permanent", code="no_template", reason="WhatsApp needs an approved template")
        base = str(self.settings.get("base_url") or BASE_URL).rstrip("/")
        version = str(self.settings.get("api_version") or API_VERSION)
        try:
            response = await self.client.post(
                f"{base}/{version}/{self.settings.get('phone_number_id', '')}/messages",
                json=template_payload(message),
                headers={
                    "Authorization": f"Bearer {self.settings.get('access_token', '')}",
                    **correlation_headers(message),
                },
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return _outcome(response)


def _outcome(response: httpx.Response) -> SendResult:
    """A Graph API answer as a SendResult, by the error's code first (Meta answers rate limits as 400 or 429)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    messages = body.get("messages")
    if response.is_success and isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return SendResult("sent", provider_message_id=str(messages[0].get("id")))
    error = body["error"] if isinstance(body.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if (
        code in RETRY_CODES
        or response.status_code == TOO_MANY_REQUESTS
        or response.status_code >= SERVER_ERROR
        or response.is_success
    ):
        return SendResult("retry", retry_after=retry_after, code=str(code or response.status_code),
                          reason=f"WhatsApp HTTP {response.status_code}, error {code}")  # fmt: skip
    return SendResult("permanent", code=str(code or response.status_code),
                      reason=f"WhatsApp refused the message (HTTP {response.status_code}, error {code})")  # fmt: skip


def build(settings: Mapping[str, Any], client: httpx.AsyncClient) -> WhatsAppProvider:
    """A WhatsApp provider for one tenant's settings."""
    return WhatsAppProvider(settings, client)


def verify_subscription(query: Mapping[str, str], settings: Mapping[str, Any]) -> str:
    """Meta's GET verification handshake: the `hub.challenge` to echo when `hub.mode` is `subscribe` and
    `hub.verify_token` is the tenant's; InvalidWebhook otherwise (answer 403)."""
    token = str(settings.get("verify_token") or "")
    if query.get("hub.mode") != "subscribe" or not token or not same(token, query.get("hub.verify_token")):
        raise InvalidWebhook("WhatsApp verification token does not match")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise InvalidWebhook("WhatsApp verification without hub.challenge")
    return challenge


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:
    """Status updates of a signed webhook (inbound messages and other fields are ignored)."""
    given = {k.lower(): v for k, v in request.headers.items()}.get("x-hub-signature-256")
    secret = str(settings.get("app_secret") or "")
    if not secret or not same(body_signature(secret, request.body), given):
        raise InvalidWebhook("WhatsApp signature does not verify")
    try:
        notification = _notification.decode(request.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidWebhook("not a WhatsApp webhook notification") from exc
    if notification.object != "whatsapp_business_account":
        raise InvalidWebhook("not a WhatsApp Business Account notification")
    updates = []
    for change in (c for e in notification.entry for c in e.changes if c.field == "messages"):
        for status in change.value.statuses:
            if (mapped := _STATUS.get(status.status)) is None:
                continue  # e.g. "deleted", "warning": not a delivery state
            code = str(status.errors[0].code) if status.errors else None
            reason = f"WhatsApp failed ({status.errors[0].title or code})" if mapped == "failed" and code else None
            updates.append(DeliveryUpdate(status.id, mapped, code=code, reason=reason))  # type: ignore[arg-type]
    return updates
