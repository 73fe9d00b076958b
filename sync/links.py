"""Ticket status links (`/t/<token>`), shared by the appliance and the cloud: the key, signing and verification.

A token is `<base64url body>.<base64url tag>`: the body names the branch and the ticket (`<branch_id>/t:<ticket_id>`,
or `<branch_id>/o:<temporary id>` for a ticket issued offline), the tag is a truncated HMAC-SHA256 of the body. The
branch in the body tells the cloud which key to check; it is covered by the tag, so it cannot be swapped.

The key of a branch with a cloud link is derived from its NKey seed, which the appliance (the seed file given as
`--nats-nkey`) and the cloud (`<keys_dir>/<tenant>.<branch>.nk`, written by `qms-cloud branch add`) both hold;
re-issuing the NKey changes the key, and links signed with the old one stop opening. A standalone appliance derives
it from its own secret (`token.key`). Either way the raw secret never signs a link: tokens and links never share a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SIG_BYTES = 12  # 96-bit tag: not guessable, short enough for a small QR code
MAX_TOKEN_CHARS = 400  # a real token is ~110 characters; anything longer is refused before decoding
LABEL = b"qms ticket status link v1"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a configuration `Ident`
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")  # a ticket id or `off-<lease_id>-<seq>`

Kind = Literal["t", "o"]


@dataclass(frozen=True)
class StatusRef:
    """What a verified token points at: a branch's ticket (`t`) or its offline ticket's temporary id (`o`)."""

    branch_id: str
    kind: Kind
    ident: str


def link_key(secret: bytes) -> bytes:
    """The status-link key derived from a secret (a branch's NKey seed, or an appliance's `token.key`)."""
    return hmac.new(secret, LABEL, hashlib.sha256).digest()


def seed_link_key(seed_file: Path) -> bytes:
    """The link key of a branch's NKey seed file (surrounding whitespace, like the trailing newline, ignored)."""
    return link_key(seed_file.read_bytes().strip())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:SIG_BYTES]


def sign(key: bytes, branch_id: str, ref: str) -> str:
    """A token for `ref` (`t:<ticket_id>` or `o:<temporary id>`) of a branch."""
    body = f"{branch_id}/{ref}".encode()
    return f"{_b64(body)}.{_b64(_tag(key, body))}"


def _split(token: str) -> tuple[bytes, bytes, StatusRef] | None:
    """(body, tag, the reference it names) of a well-formed token, unverified; None for anything else."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _TOKEN.match(token):
        return None
    body_part, _, tag_part = token.partition(".")
    try:
        body, tag = _unb64(body_part), _unb64(tag_part)
        text = body.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    branch_id, slash, ref = text.partition("/")
    kind, colon, ident = ref.partition(":")
    if not slash or not colon or kind not in ("t", "o") or not _BRANCH.match(branch_id) or not _IDENT.match(ident):
        return None
    return body, tag, StatusRef(branch_id=branch_id, kind="t" if kind == "t" else "o", ident=ident)


def branch_of(token: str) -> str | None:
    """The branch a token claims (NOT verified: only to pick the key to verify it with)."""
    parts = _split(token)
    return parts[2].branch_id if parts else None


def verify(key: bytes, token: str) -> StatusRef | None:
    """The reference a token was signed for with `key`, or None (malformed, forged, altered or another key's)."""
    parts = _split(token)
    if parts is None:
        return None
    body, tag, ref = parts
    return ref if len(tag) == SIG_BYTES and hmac.compare_digest(tag, _tag(key, body)) else None
