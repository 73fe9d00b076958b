"""Staff single sign-on at the appliance through the hub: the two signed messages both sides share.

1. The **request** (appliance -> hub, server to server): "start a sign-in for my branch, send the browser back to
   `return_to`, bind it to `nonce`". Signed with the branch's NKey (the one its NATS credentials use), so the hub sends
   an assertion only to an address the branch itself named.
2. The **assertion** (hub -> appliance, through the browser): "`username` of `tenant`/`branch_id` signed in with the
   tenant's IdP, for the sign-in with `nonce`". Signed by the hub (Ed25519), valid at most `MAX_SECONDS`, one `jti`.

Both are `base64url(JSON).base64url(signature)`; each signature covers a context prefix of its own, so neither a
request nor any other message signed by the same key verifies as an assertion.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import msgspec
import nkeys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ASSERTION_CONTEXT = b"qms-staff-sso-assertion/1\n"
REQUEST_CONTEXT = b"qms-staff-sso-request/1\n"
MAX_SECONDS = 120  # an assertion's lifetime at most (issued -> expires)
REQUEST_SECONDS = 300  # a signed request is accepted this long after it was made
MAX_TEXT = 4096
SKEW_SECONDS = 60  # clocks of hub and appliance may differ this much
NKEY_LENGTH = 35  # prefix byte, 32-byte key, CRC16
RefusalCode = Literal["malformed", "signature", "wrong_branch", "expired", "nonce"]


class SsoMessageRefused(ValueError):
    """A request or assertion that does not verify; `code` says why (shown to nobody but the log and the audit)."""

    def __init__(self, code: RefusalCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class StaffSsoRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the appliance asks the hub for."""

    tenant: str
    branch_id: str
    return_to: str  # the appliance's callback URL (`…/staff/sso/callback`)
    nonce: str  # bound to the browser's pending sign-in at the appliance
    issued_at: int  # unix seconds


class StaffAssertion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the hub vouches for."""

    tenant: str
    branch_id: str
    username: str
    role: str
    counters: list[str]
    nonce: str
    jti: str
    iat: int
    exp: int
    idp: str  # oidc | saml


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(text: str) -> tuple[bytes, bytes]:
    if len(text) > MAX_TEXT or text.count(".") != 1:
        raise SsoMessageRefused("malformed", "not a signed message")
    body, signature = text.split(".")
    try:
        return _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError):
        raise SsoMessageRefused("malformed", "not base64url") from None


def sign_request(request: StaffSsoRequest, seed: bytes) -> str:
    """The request signed with the branch's NKey seed (`SU…`)."""
    body = msgspec.json.encode(request)
    pair = nkeys.from_seed(bytearray(seed.strip()))
    return f"{_b64(body)}.{_b64(pair.sign(REQUEST_CONTEXT + body))}"


def nkey_public(public: str) -> Ed25519PublicKey:
    """The Ed25519 key inside an NKey public key (`U…`: base32 of prefix byte, key, CRC16), checksum checked."""
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except (binascii.Error, ValueError):
        raise ValueError("not an NKey public key") from None
    if len(raw) != NKEY_LENGTH or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise ValueError("not an NKey public key")
    return Ed25519PublicKey.from_public_bytes(raw[1:33])


def request_claims(text: str) -> StaffSsoRequest:
    """The request's claims, unverified (to find the branch whose key must verify it)."""
    body, _signature = _split(text)
    try:
        return msgspec.json.decode(body, type=StaffSsoRequest)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise SsoMessageRefused("malformed", "not a staff sign-in request") from None


def verify_request(text: str, branch_nkey: str, now: int) -> StaffSsoRequest:
    """The request once the branch's NKey signature and its age hold; raises SsoMessageRefused."""
    claims = request_claims(text)
    body, signature = _split(text)
    try:
        nkey_public(branch_nkey).verify(signature, REQUEST_CONTEXT + body)
    except (InvalidSignature, ValueError):
        raise SsoMessageRefused("signature", "the request is not signed by the branch") from None
    if not -SKEW_SECONDS <= now - claims.issued_at <= REQUEST_SECONDS:
        raise SsoMessageRefused("expired", "the request is too old")
    return claims


def sign_assertion(assertion: StaffAssertion, key: Ed25519PrivateKey) -> str:
    """The assertion signed with the hub's staff sign-in key."""
    if assertion.exp - assertion.iat > MAX_SECONDS:
        raise ValueError(f"an assertion lives {MAX_SECONDS} s at most")
    body = msgspec.json.encode(assertion)
    return f"{_b64(body)}.{_b64(key.sign(ASSERTION_CONTEXT + body))}"


def verify_assertion(
    text: str, public_key: bytes, *, tenant: str, branch_id: str, nonce: str, now: int
) -> StaffAssertion:
    """The assertion once signature, audience (tenant and branch), nonce and expiry hold; raises SsoMessageRefused.

    Single use is the caller's part: the nonce belongs to one pending sign-in, taken when it is checked."""
    body, signature = _split(text)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, ASSERTION_CONTEXT + body)
    except (InvalidSignature, ValueError):
        raise SsoMessageRefused("signature", "the assertion's signature does not verify") from None
    try:
        claims = msgspec.json.decode(body, type=StaffAssertion)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise SsoMessageRefused("malformed", "not a staff assertion") from None
    if (claims.tenant, claims.branch_id) != (tenant, branch_id):
        raise SsoMessageRefused("wrong_branch", f"the assertion is for {claims.tenant}/{claims.branch_id}")
    if claims.nonce != nonce:
        raise SsoMessageRefused("nonce", "the assertion belongs to another sign-in")
    if claims.exp - claims.iat > MAX_SECONDS or not claims.iat - SKEW_SECONDS <= now < claims.exp:
        raise SsoMessageRefused("expired", "the assertion has expired")
    return claims


__all__ = ["MAX_SECONDS", "SsoMessageRefused", "StaffAssertion", "StaffSsoRequest", "nkey_public", "request_claims",
           "sign_assertion", "sign_request", "verify_assertion", "verify_request"]  # fmt: skip
