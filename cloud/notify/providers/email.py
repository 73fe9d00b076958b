"""The SMTP e-mail provider: `cloud.notify.mail.send_email` behind the provider seam, with SMTP errors translated into
retry/permanent at this one boundary. SMTP has no idempotency key: the outbox key becomes the Message-ID so a rare
duplicate after a crash mid-send is at least recognisable as the same message."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import httpx

from cloud.notify.mail import SECRETS as MAIL_SECRETS
from cloud.notify.mail import MailSettingsError, SmtpPool, SmtpSettings, build_message, raw_message
from cloud.notify.providers.base import (
    Channel,
    DeliveryUpdate,
    InvalidWebhook,
    OutgoingMessage,
    SendResult,
    WebhookRequest,
)
from sync.observability import REQUEST_ID_HEADER

CHANNEL: Channel = "email"
SECRETS = MAIL_SECRETS
ACCEPTS_IDEMPOTENCY_KEY = False


def _temporary(code: int) -> bool:
    """SMTP 4xx: a transient condition (RFC 5321 §4.2.1)."""
    return 400 <= code < 500  # noqa: PLR2004  # the RFC's reply classes


def classify(exc: BaseException) -> SendResult:
    """An SMTP failure as a SendResult: 4xx replies, timeouts and connection errors are worth a retry; 5xx replies
    (bad recipient, refused sender, authentication) and bad settings are permanent. Reasons carry codes, not
    addresses."""
    if isinstance(exc, MailSettingsError):
        return SendResult("permanent", code="settings", reason=str(exc))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendResult("permanent", code=str(exc.code), reason="SMTP authentication failed")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        temporary = all(_temporary(c) for c in codes)
        code = str(codes[0]) if codes else None
        return SendResult("retry" if temporary else "permanent", code=code, reason=f"recipient refused ({code})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        temporary = _temporary(exc.code)
        return SendResult("retry" if temporary else "permanent", code=str(exc.code), reason=f"SMTP {exc.code}")
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return SendResult("retry", code="timeout", reason="SMTP timeout")
    if isinstance(exc, (aiosmtplib.SMTPException, OSError)):
        return SendResult("retry", code="connect", reason=f"SMTP connection: {type(exc).__name__}")
    raise exc


@dataclass
class EmailProvider:
    """One tenant's SMTP relay."""

    settings: SmtpSettings
    pool: SmtpPool
    name: str = "email"
    channel: Channel = "email"

    async def send(self, message: OutgoingMessage) -> SendResult:
        """One SMTP transaction over a pooled connection; the outbox key (hashed) is the Message-ID. The relay's
        log names the kiosk request that caused the message (`X-Request-ID`)."""
        message_id = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        headers = [(REQUEST_ID_HEADER, message.correlation_id)] if message.correlation_id else []
        try:
            if message.attachments or not (message.to.isascii() and self.settings.sender.isascii()):
                msg = build_message(self.settings.sender, message.to, message.subject or "", message.text,
                                    message.html, message.attachments, message_id)  # fmt: skip
                for name, value in headers:
                    msg[name] = value
                await self.pool.send(msg)
            else:  # the notices: serialised directly (the email package's generator was most of the CPU)
                data = raw_message(self.settings.sender, message.to, message.subject or "", message.text,
                                   message.html, message_id, headers)  # fmt: skip
                await self.pool.send_raw(self.settings.sender, message.to, data)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, MailSettingsError) as exc:
            return classify(exc)
        return SendResult("sent", provider_message_id=message_id)

    async def close(self) -> None:
        """Quit the pooled connections (the dispatcher stops, or the tenant's settings changed)."""
        await self.pool.close()


def build(settings: Mapping[str, Any], client: httpx.AsyncClient | None = None) -> EmailProvider:
    """The provider for these settings (the httpx client is unused: SMTP is its own protocol)."""
    del client
    smtp = SmtpSettings.from_mapping(settings)
    return EmailProvider(smtp, SmtpPool(smtp))


def parse_webhook(request: WebhookRequest, settings: Mapping[str, Any]) -> list[DeliveryUpdate]:
    """SMTP has no delivery reports: a relay accepting the message is as far as e-mail status goes (`sent`)."""
    del request, settings
    raise InvalidWebhook("the e-mail provider has no webhook")
