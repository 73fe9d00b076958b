"""HTTP answers and transport failures as `SendResult`s, shared by the HTTP providers (Twilio, Infobip, WhatsApp, web
push): one place that says 429/5xx/timeouts/connection errors are worth a retry and parses `Retry-After`. Reasons
name status codes and error classes only: never a body (providers echo phone numbers and addresses in theirs)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from cloud.notify.providers.base import OutgoingMessage, SendResult
from sync.observability import REQUEST_ID_HEADER

TOO_MANY_REQUESTS = 429
SERVER_ERROR = 500


def correlation_headers(message: OutgoingMessage) -> dict[str, str]:
    """`X-Request-ID` with the message's correlation id (issue 16): the provider's request log then names the
    kiosk request that caused it. Empty when the message has none."""
    return {REQUEST_ID_HEADER: message.correlation_id} if message.correlation_id else {}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait (RFC 9110: delay-seconds or an HTTP date); None when absent or unreadable.
    A date in the past is 0 s."""
    if value is None or not (text := value.strip()):
        return None
    if text.isascii() and text.isdigit():  # str.isdigit alone accepts '¹' and other non-ASCII digits
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def transport_failure(exc: httpx.HTTPError) -> SendResult:
    """A request that got no answer: a timeout or a connection failure; both are worth a retry."""
    if isinstance(exc, httpx.TimeoutException):
        return SendResult("retry", code="timeout", reason=f"timeout ({type(exc).__name__})")
    return SendResult("retry", code="connection", reason=f"connection failed ({type(exc).__name__})")


def transient(response: httpx.Response, code: str | None = None) -> SendResult | None:
    """A retry for 429 and 5xx answers (with `Retry-After` when given), else None: the provider decides the rest."""
    if response.status_code == TOO_MANY_REQUESTS or response.status_code >= SERVER_ERROR:
        return SendResult(
            "retry",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            code=code or str(response.status_code),
            reason=f"HTTP {response.status_code}",
        )
    return None


def message_ref(key: str) -> str:
    """A provider-side reference derived from the outbox key (stable across retries, not the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a computed signature with the one a request carried."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
