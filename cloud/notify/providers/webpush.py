"""Web push (RFC 8030) to a ticket status page's subscriptions (every browser the customer asked on): the payload
encrypted for each browser (RFC 8291, `aes128gcm`, by pywebpush) and the request signed with the tenant's VAPID key
(RFC 8292, py-vapid), POSTed with httpx to the subscription's endpoint (the browser vendor's push service).

`message.to` is the JSON array of the ticket's subscriptions (each `{"endpoint", "keys": {"p256dh", "auth"}}`; one
object alone is accepted too), sent to concurrently. A 404 or 410 means a subscription is gone for good: its endpoint
is listed in the result's `gone` and the dispatcher deletes it (`cloud.notify.push_store.forget_endpoint`); when every
subscription is gone the result is permanent with code `gone`. `Topic` is per ticket so a newer notice replaces an
unread older one.

Settings (the tenant's `push` provider): `vapid_subject` (`mailto:` or `https:` contact the push services may use),
`vapid_private_key` (secret, base64url raw P-256; made on first use by `cloud.notify.push_store.vapid_public_key`),
`ttl` seconds (default 15 min)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from cloud.notify.providers.base import (
    Channel,
    DeliveryUpdate,
    InvalidWebhook,
    OutgoingMessage,
    SendResult,
    WebhookRequest,
)
from cloud.notify.providers.http_outcome import correlation_headers, message_ref, transient, transport_failure

CHANNEL: Channel = "push"
SECRETS = ("vapid_private_key",)
GONE = "gone"
DEFAULT_TTL = 900  # a queue notice older than 15 minutes is no longer news


def payload(message: OutgoingMessage) -> bytes:
    """What the service worker shows: title, body and a tag (a newer notice for the ticket replaces the older)."""
    body = {"title": message.subject or "", "body": message.text, "tag": ticket_tag(message)}
    return json.dumps(body, ensure_ascii=False).encode()


def ticket_tag(message: OutgoingMessage) -> str:
    """The ticket's part of the outbox key (`tenant/branch/ticket`): one tag and Topic per ticket, so the called
    notice replaces an unread "3 to go" on the customer's screen."""
    parts = message.key.split("/")
    return "/".join(parts[:3]) if len(parts) == 5 else message.key  # noqa: PLR2004  # the key's five parts


def vapid_headers(private_key: str, endpoint: str, subject: str, now: float | None = None) -> dict[str, str]:
    """`Authorization: vapid t=<ES256 JWT>,k=<public key>` for one push service (the JWT's audience is its origin)."""
    parts = urlsplit(endpoint)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}", "exp": int((now or time.time()) + 12 * 3600), "sub": subject}
    signed: dict[str, str] = Vapid.from_string(private_key).sign(claims)
    return signed


@dataclass
class WebPushProvider:
    """One tenant's VAPID identity."""

    settings: Mapping[str, Any]
    client: httpx.AsyncClient
    name: str = "webpush"
    channel: Channel = "push"

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one notice to every subscription of the ticket at once: `sent` when any push service took it;
        expired subscriptions (404/410) are named in `gone` for the dispatcher to delete."""
        try:
            found = json.loads(message.to)
        except ValueError as exc:
            return SendResult("permanent", code="subscription", reason=f"unusable subscription ({type(exc).__name__})")
        subscriptions = found if isinstance(found, list) else [found]
        if not subscriptions:
            return SendResult("permanent", code="subscription", reason="no subscription")
        results = await asyncio.gather(*(self._send_one(message, s) for s in subscriptions))
        return combined(results)

    async def _send_one(self, message: OutgoingMessage, subscription: Any) -> SendResult:
        """Encrypt and deliver the notice to one subscription's push service."""
        try:
            endpoint = str(subscription["endpoint"])
            encoded = WebPusher(subscription).encode(payload(message), content_encoding="aes128gcm")
            auth = vapid_headers(str(self.settings["vapid_private_key"]), endpoint,
                                 str(self.settings.get("vapid_subject") or "mailto:admin@localhost"))  # fmt: skip
        except (ValueError, KeyError, TypeError, WebPushException) as exc:
            return SendResult("permanent", code="subscription", reason=f"unusable subscription ({type(exc).__name__})")
        headers = {**auth, "TTL": str(int(self.settings.get("ttl") or DEFAULT_TTL)), "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream", "Urgency": "high",
                   "Topic": message_ref(ticket_tag(message)), **correlation_headers(message)}  # fmt: skip
        try:
            response = await self.client.post(endpoint, content=encoded["body"], headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        if response.status_code in (404, 410):
            return SendResult("permanent", code=GONE, reason=f"subscription expired (HTTP {response.status_code})",
                              gone=(endpoint,))  # fmt: skip
        if (retry := transient(response)) is not None:
            return retry
        if not response.is_success:
            return SendResult("permanent", code=str(response.status_code),
                              reason=f"push service refused (HTTP {response.status_code})")  # fmt: skip
        return SendResult("sent", provider_message_id=response.headers.get("location") or message_ref(message.key))


def combined(results: list[SendResult]) -> SendResult:
    """One outcome for a ticket's subscriptions: `sent` when any took the notice (the customer was told; a retry
    would repeat it on the others), else a retry when any may still work, else the first refusal (`gone` only when
    every subscription is gone). Expired subscriptions are carried in `gone` whatever the outcome."""
    gone = tuple(endpoint for r in results for endpoint in r.gone)
    if sent := [r for r in results if r.outcome == "sent"]:
        return replace(sent[0], gone=gone)
    if retries := [r for r in results if r.outcome == "retry"]:
        waits = [r.retry_after for r in retries if r.retry_after is not None]
        return replace(retries[0], retry_after=max(waits) if waits else None, gone=gone)
    refusal = next((r for r in results if r.code != GONE), results[0])
    return replace(refusal, gone=gone)


def build(settings: Mapping[str, Any], client: httpx.AsyncClient) -> WebPushProvider:
    """A web push provider for one tenant's VAPID settings."""
    return WebPushProvider(settings, client)


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:  # noqa: ARG001
    """Push services send no delivery reports: any callback is refused."""
    raise InvalidWebhook("web push has no delivery-report webhook")
