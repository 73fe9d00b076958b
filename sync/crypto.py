"""Sealing a ticket's contact for the append-only log (crypto-shredding, issue 16, UU PDP 27/2022).

The appliance's event log is hash-chained and never rewritten, so a phone number written into it could never be
erased. Instead `ticket.created` carries `contact_sealed`: the contact (phone, e-mail, customer reference) encrypted
with AES-256-GCM under a random key of that ticket alone, the ticket id bound in as associated data (a sealed contact
copied onto another ticket does not open). The key is kept outside the chain and erased when the retention period
ends; from then on the ciphertext in the log, at the hub and in every later backup is noise, and the chain still
verifies because the log itself never changed. Both sides use this module: the appliance seals, the hub opens with the
key the relay sends beside the event (`CONTACT_KEY_HEADER`), never inside it.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTACT_KEY_HEADER = "Qms-Contact-Key"  # NATS header of a ticket.created message: the ticket's key (base64url)
SEALED_FIELDS = ("phone", "email", "customer_ref")
_VERSION = "v1."  # the format's version, so a later algorithm can be told apart
_NONCE_BYTES = 12


def new_key() -> bytes:
    """A fresh random 256-bit key for one ticket."""
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    """The key as header-safe text (base64url, no padding)."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def decode_key(text: str | None) -> bytes | None:
    """A key from `encode_key`'s text; None when absent or not a 256-bit key (input from the wire is checked)."""
    if not text:
        return None
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None  # noqa: PLR2004  # AES-256


def seal_contact(key: bytes, ticket_id: str, contact: dict[str, Any]) -> str:
    """`v1.<base64url(nonce | ciphertext+tag)>` of the contact's JSON, bound to the ticket id."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, msgspec.json.encode(contact), ticket_id.encode())
    return _VERSION + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


def open_contact(key: bytes, ticket_id: str, sealed: str) -> dict[str, Any] | None:
    """The contact sealed for this ticket, or None when the key, the ticket or the text does not match."""
    if not sealed.startswith(_VERSION):
        return None
    text = sealed[len(_VERSION) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], ticket_id.encode())
        contact = msgspec.json.decode(plain)
    except (binascii.Error, ValueError, InvalidTag, msgspec.DecodeError):
        return None
    if not isinstance(contact, dict):
        return None
    return {name: contact.get(name) if isinstance(contact.get(name), str) else None for name in SEALED_FIELDS}
