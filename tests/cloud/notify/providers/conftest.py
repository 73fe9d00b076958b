"""Provider adapter fixtures: an httpx client with a short timeout (so a hung stand-in is a quick `timeout`), a
webhook sink standing in for the hub's delivery-report URL, and each provider's stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from cloud.notify.providers.base import OutgoingMessage, WebhookRequest
from tests.support.providers.stand_in import Recorded, WebhookSink

CLIENT_TIMEOUT = 1.0
PHONE = "+6281234567890"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The client the adapters are built with (the dispatcher's would time out later)."""
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        yield http


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    """Our webhook URL: records what the stand-ins call back."""
    with WebhookSink() as server:
        yield server


def sms(key: str = "t1:ticket.called:sms", text: str = "A012 dipanggil ke Loket 3") -> OutgoingMessage:
    """An SMS to the test phone."""
    return OutgoingMessage(key=key, channel="sms", to=PHONE, text=text)


def as_webhook(sink: WebhookSink, recorded: Recorded) -> WebhookRequest:
    """A recorded callback as the hub's webhook route hands it to `parse_webhook`."""
    return WebhookRequest(url=sink.base_url + recorded.path, headers=recorded.headers, body=recorded.body)
