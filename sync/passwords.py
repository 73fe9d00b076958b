"""Password hashing shared by the appliance and the hub: argon2id, with the same work for unknown accounts."""

from __future__ import annotations

from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """Hash and check passwords with one argon2id parameter set (each side picks its own cost)."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher

    @cached_property
    def dummy(self) -> str:
        """Checked against when there is no account; made on first use, not at import (start-up time on a Pi)."""
        return self.hasher.hash("not-a-password-of-anyone")

    def hash(self, password: str) -> str:
        """An argon2id hash of the password."""
        return self.hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> bool:
        """Whether the password matches; an unknown account costs the same argon2 work (no enumeration by timing)."""
        try:
            self.hasher.verify(stored_hash or self.dummy, password)  # raises on mismatch
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None
