"""Unguessable ticket status links (`/t/<token>`): an HMAC-signed reference, and its QR code as inline SVG."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io

import segno

SIG_BYTES = 12  # 96-bit tag: not guessable, short enough for a small QR code


def _key(secret: bytes) -> bytes:
    """A key for status links only, derived from the appliance secret (tokens and links never share a key)."""
    return hmac.new(secret, b"qms ticket status link v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, ref: str) -> str:
    """A token for `ref` (`t:<ticket_id>` or `o:<temporary id>` of an offline ticket)."""
    body = ref.encode("utf-8")
    tag = hmac.new(_key(secret), body, hashlib.sha256).digest()[:SIG_BYTES]
    return f"{_b64(body)}.{_b64(tag)}"


def verify(secret: bytes, token: str) -> str | None:
    """The reference a token was signed for, or None if it was not signed here."""
    body_part, _, tag_part = token.partition(".")
    try:
        body, tag = _unb64(body_part), _unb64(tag_part)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()[:SIG_BYTES]
    if not tag or not hmac.compare_digest(tag, expected):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def qr_svg(data: str) -> str:
    """An inline SVG QR code (dark modules only; scales with CSS)."""
    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=1, border=2,
                                     svgclass="qrcode", omitsize=True, dark="#000", light="#fff")  # fmt: skip
    return out.getvalue().decode("utf-8")
