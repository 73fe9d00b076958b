"""Provider adapters, one module per provider; `REGISTRY` maps a provider name to its module, which defines
`build(settings: dict, client: httpx.AsyncClient) -> Provider`, `parse_webhook(request: WebhookRequest, settings) ->
list[DeliveryUpdate]`, `SECRETS` (settings fields never shown or logged) and `CHANNEL`."""

from __future__ import annotations

from types import ModuleType

from cloud.notify.providers import email, infobip, twilio, webpush, whatsapp, zenziva

REGISTRY: dict[str, ModuleType] = {}
REGISTRY["email"] = email
REGISTRY["twilio"] = twilio
REGISTRY["infobip"] = infobip
REGISTRY["zenziva"] = zenziva
REGISTRY["whatsapp"] = whatsapp
REGISTRY["webpush"] = webpush
