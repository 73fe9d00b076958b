"""WhatsApp Cloud API stand-in: checks `POST /{version}/{phone_number_id}/messages` (Bearer token, a template message
with name, language code and body parameters), answers like the Graph API (`{"messaging_product", "contacts",
"messages": [{"id": "wamid…"}]}` or `{"error": {"message", "type", "code", "fbtrace_id"}}`), runs the GET
verification handshake against our webhook, and posts status notifications signed with `X-Hub-Signature-256`."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx

from tests.support.providers.stand_in import Answer, Recorded, StandIn

# behaviour → (HTTP status, error code, title) of the Graph API's error answer
ERRORS = {"429": (429, 130429, "Rate limit hit"), "500": (500, 131000, "Something went wrong"),
          "permanent": (400, 131026, "Message undeliverable"), "template": (400, 132001, "Template name does not exist"
          " in the translation"), "auth": (401, 190, "Invalid OAuth access token")}  # fmt: skip


class WhatsAppStandIn(StandIn):
    """One WhatsApp Business phone number (`phone_number_id`, `access_token`, `app_secret`)."""

    def __init__(
        self,
        phone_number_id: str = "106540352242922",
        access_token: str = "wa-test-token",  # noqa: S107 (a stand-in's own test credentials)
        app_secret: str = "wa-app-secret",  # noqa: S107
        version: str = "v21.0",
    ) -> None:
        super().__init__()
        self.phone_number_id, self.access_token, self.app_secret = phone_number_id, access_token, app_secret
        self.version = version
        self.sent: list[dict[str, Any]] = []

    def _error(self, kind: str) -> Answer:
        status, code, title = ERRORS[kind]
        body = {"error": {"message": f"({code}) {title}", "type": "OAuthException", "code": code,
                          "error_data": {"messaging_product": "whatsapp", "details": title},
                          "fbtrace_id": "A" + secrets.token_hex(8)}}  # fmt: skip
        headers = {"Content-Type": "application/json"} | ({"Retry-After": self.retry_after} if kind == "429" else {})
        return Answer(status, json.dumps(body).encode(), headers)

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Validate like the Graph API, then answer per the behaviour."""
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return self._error("auth")
        if request.path != f"/{self.version}/{self.phone_number_id}/messages":
            return Answer(404, b'{"error":{"message":"Unknown path","code":100}}')
        try:
            message = json.loads(request.body)
            assert message["messaging_product"] == "whatsapp"
            assert message["type"] == "template"
            template = message["template"]
            assert isinstance(template["name"], str)
            assert isinstance(template["language"]["code"], str)
            for component in template.get("components", []):
                assert component["type"] == "body"
                assert all(p["type"] == "text" and isinstance(p["text"], str) for p in component["parameters"])
        except (ValueError, KeyError, TypeError, AssertionError):
            return Answer(400, b'{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}')
        if kind in ERRORS:
            return self._error(kind)
        wamid = "wamid.HBgN" + secrets.token_hex(12).upper()
        self.sent.append({**message, "id": wamid})
        body = {"messaging_product": "whatsapp", "contacts": [{"input": message["to"], "wa_id": message["to"]}],
                "messages": [{"id": wamid, "message_status": "accepted"}]}  # fmt: skip
        return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def verify(self, webhook_url: str, verify_token: str) -> httpx.Response:
        """Meta's subscription check: GET with hub.mode, hub.verify_token and hub.challenge."""
        params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "1158201444"}
        return httpx.get(webhook_url, params=params)

    def report(self, webhook_url: str, wamid: str, status: str, error_code: int | None = None,
               tamper: bool = False, via: httpx.Client | None = None) -> httpx.Response:  # fmt: skip
        """POST a status notification for a sent message, signed with the app secret (tampered: altered after);
        through `via` (e.g. an app's TestClient) when given."""
        message = next(m for m in self.sent if m["id"] == wamid)
        entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                                 "recipient_id": message["to"]}  # fmt: skip
        if error_code:
            title = "Message undeliverable"
            entry["errors"] = [{"code": error_code, "title": title, "message": title, "error_data": {"details": title}}]
        body = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550783881", "phone_number_id": self.phone_number_id},
                      "statuses": [entry]}, "field": "messages"}]}]}  # fmt: skip
        raw = json.dumps(body).encode()
        signature = "sha256=" + hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        if tamper:
            raw = raw.replace(status.encode(), b"delivered", 1) if status != "delivered" else raw + b" "
        post = httpx.post if via is None else via.post
        return post(webhook_url, content=raw, headers={"X-Hub-Signature-256": signature,
                                                       "Content-Type": "application/json"})  # fmt: skip
