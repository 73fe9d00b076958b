"""Signed board URLs: a board (a TV in kiosk mode) proves it may show an area with a key bound to that area.

The key is an HMAC-SHA256 over the branch and the board's scope, with the appliance's token key
(`<data-dir>/token.key`). It grants read-only access to what the board shows (ticket numbers, counters, audio,
signage) and nothing else; it does not expire, so a TV survives restarts and holidays. Rotating `token.key`
revokes every board URL (and every token) at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """What a board shows: one area, or one service."""

    kind: str  # "area" | "service"
    id: str

    @property
    def query(self) -> str:
        """The scope as the page's query string part."""
        return f"{self.kind}={self.id}"


def board_key(secret: bytes, branch_id: str, scope: Scope) -> str:
    """The key of a board URL (22 URL-safe characters, 128 bits)."""
    mac = hmac.new(secret, f"board|{branch_id}|{scope.kind}|{scope.id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def key_valid(secret: bytes, branch_id: str, scope: Scope, key: str | None) -> bool:
    """Constant-time check of a board key."""
    if not key:
        return False
    return hmac.compare_digest(board_key(secret, branch_id, scope), key)


def board_path(secret: bytes, branch_id: str, scope: Scope, lang: str | None = None) -> str:
    """The path and query a board opens (prefix it with the appliance's address)."""
    suffix = f"&lang={lang}" if lang else ""
    return f"/board?{scope.query}&key={board_key(secret, branch_id, scope)}{suffix}"
