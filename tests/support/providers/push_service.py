"""A local web push service (RFC 8030) standing in for the browsers' (FCM, Mozilla autopush, Apple): it issues
subscriptions whose browser-side keys it holds, checks each push's VAPID `Authorization` (RFC 8292: ES256 JWT over
the endpoint's origin, signed by the key in `k`), decrypts the `aes128gcm` body (RFC 8291) with `http_ece`, and
answers 201, or 404/410 for subscriptions it was told are gone, or 429/500/hang from the script."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import http_ece  # type: ignore[import-untyped]
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.providers.stand_in import Answer, Recorded, StandIn


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """One delivered push: its decrypted payload and the headers that came with it."""

    subscription_id: str
    payload: dict[str, Any]
    headers: dict[str, str]
    vapid_key: str  # the `k` that signed it


class PushServiceStandIn(StandIn):
    """Subscriptions on `/push/<id>`; `received` holds every push it could verify and decrypt."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.gone: set[str] = set()
        self.received: list[Push] = []
        self.refused: list[str] = []  # why pushes were refused (bad VAPID, undecryptable)

    def subscribe(
        self, private_key: ec.EllipticCurvePrivateKey | None = None, auth: bytes | None = None
    ) -> dict[str, Any]:
        """A new subscription as `PushSubscription.toJSON()` gives it (keys made here unless a browser's are given)."""
        key = private_key or ec.generate_private_key(ec.SECP256R1())
        auth = auth or secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(12)
        self._keys[sub_id] = (key, auth)
        point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.base_url}/push/{sub_id}", "expirationTime": None,
                "keys": {"p256dh": _b64(point), "auth": _b64(auth)}}  # fmt: skip

    def _vapid(self, request: Recorded) -> str:
        """The VAPID public key of a correctly signed request; ValueError otherwise."""
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        fields = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        if scheme.lower() != "vapid" or "t" not in fields or "k" not in fields:
            raise ValueError("no VAPID authorization")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(fields["k"]))
        claims = jwt.decode(fields["t"], key=public, algorithms=["ES256"], audience=self.base_url)
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")) or claims["exp"] <= time.time():
            raise ValueError("VAPID claims without a contact or expired")
        return fields["k"]

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Verify, decrypt and record one push, or answer per the script."""
        sub_id = request.path.removeprefix("/push/")
        if sub_id not in self._keys or sub_id in self.gone:
            return Answer(410 if sub_id in self.gone else 404, b"")
        if kind in ("429", "500"):
            return Answer(int(kind), b"", {"Retry-After": self.retry_after} if kind == "429" else {})
        try:
            k = self._vapid(request)
        except (ValueError, jwt.PyJWTError) as exc:
            self.refused.append(f"vapid: {exc}")
            return Answer(401, b"")
        if request.headers.get("content-encoding") != "aes128gcm" or "ttl" not in request.headers:
            self.refused.append("headers")
            return Answer(400, b"")
        key, auth = self._keys[sub_id]
        try:
            plain = http_ece.decrypt(request.body, private_key=key, auth_secret=auth, version="aes128gcm")
        except Exception as exc:
            self.refused.append(f"decrypt: {type(exc).__name__}")
            return Answer(400, b"")
        self.received.append(Push(sub_id, json.loads(plain), request.headers, k))
        return Answer(201, b"", {"Location": f"{self.base_url}/message/{secrets.token_urlsafe(8)}"})
