"""The check-in QR and the bookings document: the contract between the hub (which books and signs) and the appliance
(which verifies offline and checks people in).

The QR text is `Q1` + unpadded RFC 4648 base32 of `payload || Ed25519 signature`: only characters of the QR
alphanumeric mode (A-Z, 2-7), so the symbol stays small, and a USB scanner typing it as a keyboard cannot mistype
case. The payload is `version (1) | booking id (10) | day (2: days since 2020-01-01) | branch id (utf-8)`; the tenant
is implicit in the key (one Ed25519 key per tenant, the private half never leaves the hub).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "Q1"
VERSION = 1
EPOCH = date(2020, 1, 1)
ID_BYTES = 10
SIGNATURE_BYTES = 64
MAX_BRANCH = 64
HEADER_BYTES = 13  # version, booking id, day
MAX_TEXT = 400  # a QR text longer than this is not ours (a branch id is at most 64 characters)
BOOKINGS_BUCKET = "qms_bookings"  # NATS KV bucket: key `<tenant>.<branch>`, value a BookingsDocument


def bookings_subject(tenant: str, branch_id: str) -> str:
    """`$JS.API.DIRECT.GET.KV_qms_bookings.$KV.qms_bookings.<tenant>.<branch>`: the branch's one allowed read of it
    (`tenant` and `branch_id` are checked tokens: see sync.relay.config_key)."""
    return f"$JS.API.DIRECT.GET.KV_{BOOKINGS_BUCKET}.$KV.{BOOKINGS_BUCKET}.{tenant}.{branch_id}"


class QrInvalid(ValueError):
    """The text is not a check-in code signed by this tenant (malformed, or forged/tampered)."""


@dataclass(frozen=True)
class CheckinCode:
    """What a valid QR says: which booking, at which branch, on which (branch-local) day."""

    booking_id: str
    branch_id: str
    day: date


def booking_id_text(raw: bytes) -> str:
    """A booking id as 16 base32 characters (what staff see and what the QR carries in binary)."""
    return base64.b32encode(raw).decode()


def _payload(code: CheckinCode) -> bytes:
    try:
        raw_id = base64.b32decode(code.booking_id)
    except binascii.Error:
        raise ValueError("a booking id is 16 base32 characters") from None
    if len(raw_id) != ID_BYTES:
        raise ValueError("a booking id is 16 base32 characters")
    days = (code.day - EPOCH).days
    branch = code.branch_id.encode()
    if not 0 <= days < 1 << 16 or not 1 <= len(branch) <= MAX_BRANCH:
        raise ValueError("day or branch out of range")
    return struct.pack(">B10sH", VERSION, raw_id, days) + branch


def sign(code: CheckinCode, key: Ed25519PrivateKey) -> str:
    """The QR text for `code`, signed with the tenant's private key (at the hub)."""
    body = _payload(code)
    return PREFIX + base64.b32encode(body + key.sign(body)).decode().rstrip("=")


def verify(text: str, public_key: bytes) -> CheckinCode:
    """The code a QR text carries, after checking its signature against the tenant's raw 32-byte public key.

    Raises QrInvalid for anything else (garbage, truncation, another tenant's or a forged signature) without saying
    which: the kiosk shows one safe message for all of them."""
    text = text.strip().upper()
    if not text.startswith(PREFIX) or len(text) > MAX_TEXT:
        raise QrInvalid("not a check-in code")
    encoded = text[len(PREFIX) :]
    try:
        raw = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    except (binascii.Error, ValueError):
        raise QrInvalid("not a check-in code") from None
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    if len(body) <= HEADER_BYTES or body[0] != VERSION:
        raise QrInvalid("not a check-in code")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        raise QrInvalid("signature does not verify") from None
    _, raw_id, days = struct.unpack(">B10sH", body[:HEADER_BYTES])
    try:
        branch = body[HEADER_BYTES:].decode()
    except UnicodeDecodeError:
        raise QrInvalid("not a check-in code") from None
    return CheckinCode(booking_id_text(raw_id), branch, EPOCH + timedelta(days=days))


class BookedVisit(msgspec.Struct, frozen=True, kw_only=True):
    """One booking as the appliance needs it to check someone in: no name, phone or e-mail travel to the branch."""

    booking_id: str
    service_id: str
    starts_at: datetime  # UTC
    day: str  # branch-local date, YYYY-MM-DD
    status: str  # booked | cancelled
    priority: int = 0


class BookingsDocument(msgspec.Struct, frozen=True, kw_only=True):
    """Today's and tomorrow's bookings of one branch, with the tenant's public key and the check-in policy."""

    branch_id: str
    generated_at: datetime
    public_key: str  # hex of the raw Ed25519 public key
    checkin_before_minutes: int = 30
    checkin_after_minutes: int = 15
    late_policy: str = "walk_in"  # walk_in | refuse
    visits: list[BookedVisit] = msgspec.field(default_factory=list)


bookings_decoder = msgspec.json.Decoder(BookingsDocument)
