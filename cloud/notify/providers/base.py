"""The seam between the dispatcher and the providers: what a provider is given, what it answers, and what its
delivery-report webhook yields. Provider modules (one per provider, thin over httpx/SMTP with a configurable base URL)
implement `Provider` and `parse_webhook`; the dispatcher (cloud.notify) never knows a provider's wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Channel = Literal["email", "sms", "whatsapp", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "whatsapp", "push")


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail (a report's CSV, a booking's QR)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class WhatsAppTemplate:
    """An approved WhatsApp template: its name, language code (`id`, `en`) and body parameters in order."""

    name: str
    language: str
    body_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one recipient. `to` is an E.164 number (sms, whatsapp), an address (email) or the JSON array
    of a ticket's push subscriptions (push; one subscription object is accepted too). `key` is the outbox idempotency
    key; providers that accept one pass it on."""

    key: str
    channel: Channel
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    template: WhatsAppTemplate | None = None
    correlation_id: str | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """What one attempt did: `sent` (accepted; `provider_message_id` links later delivery reports), `retry` (429,
    5xx, timeout, connection error; `retry_after` seconds when the provider said so) or `permanent` (auth,
    validation, unknown recipient: retrying cannot help). `reason` is for operators: never a contact or secret."""

    outcome: Literal["sent", "retry", "permanent"]
    provider_message_id: str | None = None
    retry_after: float | None = None
    code: str | None = None  # the provider's own error code (e.g. WhatsApp 131026), for fallback rules
    reason: str | None = None
    gone: tuple[str, ...] = ()  # web push: endpoints of subscriptions their push service called expired (404/410)


@dataclass(frozen=True)
class DeliveryUpdate:
    """One delivery report from a provider's webhook."""

    provider_message_id: str
    status: Literal["sent", "delivered", "failed"]
    code: str | None = None
    reason: str | None = None


class InvalidWebhook(Exception):
    """A webhook whose signature does not verify, or whose body is not the provider's shape (answered 401/400)."""


class Provider(Protocol):
    """A configured provider for one tenant and channel."""

    name: str
    channel: Channel

    async def send(self, message: OutgoingMessage) -> SendResult:
        """One attempt; never raises for provider or network failures (they are `retry`/`permanent`)."""
        ...


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider's callback brought: the full URL it was sent to (signatures cover it), headers, raw body."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, str] = field(default_factory=dict)


def secret_fields(settings: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`settings` with the named secret fields replaced by `"••••"` when set: what the console may show."""
    return {k: ("••••" if k in names and v else v) for k, v in settings.items()}
