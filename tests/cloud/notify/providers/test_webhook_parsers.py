"""Every provider's webhook parser refuses anything that is not its provider's signed report with `InvalidWebhook`
(answered 400), never another exception (a 500): Hypothesis feeds arbitrary bodies, headers and URLs, and correctly
signed bodies of arbitrary JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cloud.notify.providers import REGISTRY, infobip, whatsapp
from cloud.notify.providers.base import InvalidWebhook, WebhookRequest

SETTINGS: dict[str, Any] = {"auth_token": "t", "webhook_secret": "s", "app_secret": "a", "verify_token": "v"}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)  # fmt: skip


def _refused_or_parsed(provider: str, request: WebhookRequest) -> None:
    try:
        updates = REGISTRY[provider].parse_webhook(request, SETTINGS)
    except InvalidWebhook:
        return
    assert all(u.status in ("sent", "delivered", "failed") for u in updates)


@given(st.sampled_from(["twilio", "infobip", "whatsapp", "webpush"]), st.binary(max_size=300),
       st.dictionaries(st.sampled_from(["x-twilio-signature", "x-hub-signature-256", "content-type"]),
                       st.text(max_size=40)), st.text(max_size=60))  # fmt: skip
def test_arbitrary_requests_are_refused_cleanly(
    provider: str, body: bytes, headers: dict[str, str], query: str
) -> None:
    _refused_or_parsed(provider, WebhookRequest(f"https://hub.example/hook?{query}", headers, body))


@given(JSON)
def test_signed_whatsapp_bodies_of_any_shape_are_parsed_or_refused_cleanly(doc: Any) -> None:
    body = json.dumps(doc).encode()
    signature = "sha256=" + hmac.new(b"a", body, hashlib.sha256).hexdigest()
    _refused_or_parsed("whatsapp", WebhookRequest("https://hub.example/hook", {"X-Hub-Signature-256": signature}, body))
    assert whatsapp.body_signature("a", body) == signature


@given(JSON, st.text(max_size=20))
def test_infobip_reports_of_any_shape_are_parsed_or_refused_cleanly(doc: Any, message_id: str) -> None:
    url = infobip.notify_url("https://hub.example/hook", "s", message_id)
    _refused_or_parsed("infobip", WebhookRequest(url, {}, json.dumps(doc).encode()))
