"""Zenziva's console API stand-in ("SMS Reguler"): checks `POST /reguler/api/sendsms/` with the JSON body
`{"userkey", "passkey", "to", "message"}` and answers like Zenziva: `{"messageId", "to", "status": "1", "text":
"Success"}` when accepted, `{"status": "0", "text": …}` when refused (wrong keys: "Userkey atau Passkey Salah", HTTP
400). Zenziva has no delivery-report callback, so this stand-in sends none. Where the shapes come from: the docstring
of cloud/notify/providers/zenziva.py. Behaviours: `ok`, `429`, `500`, `hang`, `permanent` (the number refused) and
`balance` (credit exhausted)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.support.providers.stand_in import Answer, Recorded, StandIn

PATH = "/reguler/api/sendsms/"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


class ZenzivaStandIn(StandIn):
    """One Zenziva account (`userkey`, `passkey`)."""

    def __init__(self, userkey: str = "zz-userkey", passkey: str = "zz-passkey-secret") -> None:
        super().__init__()
        self.userkey, self.passkey = userkey, passkey
        self.sent: list[dict[str, Any]] = []  # accepted requests, with their messageId
        self._ids = itertools.count(157365)

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Validate like Zenziva, then answer per the behaviour."""
        if request.method != "POST" or request.path != PATH:
            return _json(404, {"status": "0", "text": "Not Found"})
        try:
            body = json.loads(request.body)
            assert isinstance(body, dict)
            assert all(isinstance(body.get(k), str) for k in ("userkey", "passkey", "to", "message"))
        except (ValueError, AssertionError):
            return _json(400, {"status": "0", "text": "Parameter tidak lengkap"})
        if (body["userkey"], body["passkey"]) != (self.userkey, self.passkey):
            return _json(400, {"status": "0", "text": "Userkey atau Passkey Salah"})
        if kind == "429":
            return _json(429, {"status": "0", "text": "Too Many Requests"}, {"Retry-After": self.retry_after})
        if kind == "500":
            return Answer(500, b"<html><body>Internal Server Error</body></html>", {"Content-Type": "text/html"})
        if kind == "permanent":  # the refusal names the number: the adapter must not pass it on
            return _json(400, {"status": "0", "to": body["to"], "text": f"Nomor tujuan {body['to']} tidak valid"})
        if kind == "balance":
            return _json(400, {"status": "0", "text": "Saldo tidak mencukupi"})
        message_id = str(next(self._ids))
        self.sent.append({**body, "messageId": message_id})
        return _json(201, {"messageId": message_id, "to": body["to"], "status": "1", "text": "Success"})
