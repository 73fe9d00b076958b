"""OpenID Connect sign-in (authorisation code + PKCE) against a tenant's IdP: discovery, the JWKS cached by key id
and fetched again when an unknown `kid` appears (key rotation), and an ID token accepted only with the right
signature, `iss`, `aud`, an unexpired `exp` and the `nonce` of this sign-in. Blocking httpx: run in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ["RS256", "ES256", "PS256"]  # asymmetric only: the client secret must never verify a token
TIMEOUT = httpx.Timeout(10.0)


class SsoRefused(ValueError):
    """A sign-in the IdP's answer does not prove (bad signature, issuer, audience, nonce, expiry, mapping)."""


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(sha256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class OidcClient:
    """One per hub process: discovery documents and key sets cached per issuer (rotation refetches)."""

    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=TIMEOUT))
    discovered: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, KeySet] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def discovery(self, issuer: str) -> dict[str, Any]:
        """The IdP's `/.well-known/openid-configuration` (cached); its issuer must be the configured one."""
        with self.lock:
            if issuer in self.discovered:
                return self.discovered[issuer]
        try:
            answer = self.http.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
            answer.raise_for_status()
            document: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoRefused(f"the identity provider cannot be reached: {type(exc).__name__}") from None
        if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
            raise SsoRefused("the identity provider's discovery names another issuer")
        with self.lock:
            self.discovered[issuer] = document
        return document

    def authorization_url(
        self, issuer: str, client_id: str, redirect_uri: str, scopes: str, state: str, nonce: str, verifier: str
    ) -> str:
        """Where to send the browser: the IdP's authorisation endpoint with state, nonce and the PKCE challenge."""
        endpoint = self.discovery(issuer)["authorization_endpoint"]
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scopes,
                 "state": state, "nonce": nonce, "code_challenge": pkce_challenge(verifier),
                 "code_challenge_method": "S256"}  # fmt: skip
        return f"{endpoint}?{urlencode(query)}"

    def exchange(self, issuer: str, client_id: str, secret: str, code: str, redirect_uri: str, verifier: str) -> str:
        """Trade the authorisation code (with the PKCE verifier) for the ID token at the token endpoint."""
        endpoint = self.discovery(issuer)["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "client_id": client_id}  # fmt: skip
        try:
            answer = self.http.post(endpoint, data=form, auth=(client_id, secret))
        except httpx.HTTPError as exc:
            raise SsoRefused(f"the token endpoint cannot be reached: {type(exc).__name__}") from None
        if answer.status_code != httpx.codes.OK:
            raise SsoRefused(f"the token endpoint refused the code ({answer.status_code})")
        token = answer.json().get("id_token")
        if not isinstance(token, str):
            raise SsoRefused("the token endpoint sent no ID token")
        return token

    def key_set(self, issuer: str, refresh: bool = False) -> KeySet:
        """The IdP's signing keys (cached; `refresh` fetches them again after a rotation)."""
        with self.lock:
            cached = self.keys.get(issuer)
        if cached is not None and not refresh:
            return cached
        try:
            answer = self.http.get(self.discovery(issuer)["jwks_uri"])
            answer.raise_for_status()
            keys = KeySet.import_key_set(answer.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise SsoRefused(f"the identity provider's keys cannot be read: {type(exc).__name__}") from None
        with self.lock:
            self.keys[issuer] = keys
        return keys

    def verify(self, issuer: str, client_id: str, id_token: str, nonce: str, now: datetime) -> dict[str, Any]:
        """The ID token's claims once signature, iss, aud, exp and nonce hold; raises SsoRefused."""
        try:
            token = self._decode(issuer, id_token)
        except JoseError as exc:
            raise SsoRefused(f"the ID token's signature does not verify ({type(exc).__name__})") from None
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()), leeway=60,
            iss={"essential": True, "value": issuer.rstrip("/")}, aud={"essential": True, "value": client_id},
            exp={"essential": True}, nonce={"essential": True, "value": nonce}, sub={"essential": True},
        )  # fmt: skip
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise SsoRefused(f"the ID token is not for this sign-in: {exc.description or type(exc).__name__}") from None
        return dict(token.claims)

    def _decode(self, issuer: str, id_token: str) -> jwt.Token:
        try:
            return jwt.decode(id_token, self.key_set(issuer), algorithms=ALGORITHMS)
        except (JoseError, ValueError):  # an unknown kid after the IdP rotated its keys: fetch them once more
            return jwt.decode(id_token, self.key_set(issuer, refresh=True), algorithms=ALGORITHMS)
