"""Sealing an appliance backup to the hub's backup key (issue 16, E-PLAT-03): the appliance encrypts, only the hub's
private key opens.

Format `QMSSEAL1` (all integers big-endian), a public-key envelope in the manner of age's X25519 recipient and its
STREAM payload, built from `cryptography` primitives:

    header  = b"QMSSEAL1" (8) || key_id (8) || ephemeral X25519 public key (32)          -- 48 bytes
    key_id  = SHA-256(the recipient's raw public key)[:8]       (names which hub key opens it; rotation-friendly)
    key     = HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral || recipient, info = b"qms-backup-seal v1")
    payload = chunk_0 || chunk_1 || … ; each chunk = AES-256-GCM(key, nonce, plaintext[64 KiB], aad = header)
    nonce   = chunk counter (11 bytes) || 0x01 for the last chunk, 0x00 for every other

Every plaintext chunk is 64 KiB but the last (which may be empty); the last flag makes truncation at a chunk boundary
detectable, the counter makes reordering detectable, the header bound as AAD makes swapping headers detectable. The
key is fresh per file (a new ephemeral key each time), so counter nonces never repeat under one key.
Keys: the hub's private key is a PKCS#8 PEM file (`qms-cloud backups keygen`), its public half a SubjectPublicKeyInfo
PEM that appliances receive at enrolment.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"QMSSEAL1"
HEADER_BYTES = 48
CHUNK = 64 * 1024
TAG = 16
INFO = b"qms-backup-seal v1"
SUFFIX = ".qmsseal"


class SealError(Exception):
    """A sealed file that cannot be opened: not ours, another key, damaged or cut short."""


def generate_key() -> tuple[bytes, bytes]:
    """A new hub backup key pair: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, public_pem(key)


def public_pem(key: X25519PrivateKey) -> bytes:
    """The public half of a private key, as appliances keep it."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(pem: bytes) -> X25519PublicKey:
    """A recipient (the hub's public backup key) from PEM; ValueError when it is not an X25519 key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, X25519PublicKey):
        raise ValueError("not an X25519 public key")  # noqa: TRY004 - a wrong file, as a parse error is
    return key


def load_private(pem: bytes) -> X25519PrivateKey:
    """The hub's private backup key from PEM; ValueError when it is not an X25519 key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError("not an X25519 private key")  # noqa: TRY004 - a wrong file, as a parse error is
    return key


def key_id(public: X25519PublicKey) -> bytes:
    """The 8 bytes naming a recipient in a header."""
    return hashlib.sha256(_raw(public)).digest()[:8]


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=INFO).derive(shared)
    return AESGCM(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal_stream(src: BinaryIO, out: BinaryIO, recipient: X25519PublicKey) -> None:
    """Encrypt everything read from `src` to `recipient`, writing the sealed form to `out`."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    header = MAGIC + key_id(recipient) + eph_raw
    aead = _derive(ephemeral.exchange(recipient), eph_raw, _raw(recipient))
    out.write(header)
    counter = 0
    chunk = src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        out.write(aead.encrypt(_nonce(counter, last), chunk, header))
        if last:
            return
        counter += 1
        chunk = following


def open_stream(src: BinaryIO, out: BinaryIO, private: X25519PrivateKey) -> None:
    """Decrypt a sealed stream into `out`; SealError (and possibly some plaintext already written) when it does not
    open completely: callers write to a scratch file and keep it only on success."""
    header = src.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise SealError("not a sealed QMS backup (QMSSEAL1)")
    recipient = private.public_key()
    if header[8:16] != key_id(recipient):
        raise SealError(f"sealed to another key (key id {header[8:16].hex()}, this key is {key_id(recipient).hex()})")
    eph_raw = header[16:]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
    except ValueError as exc:
        raise SealError(f"damaged header: {exc}") from None
    aead = _derive(shared, eph_raw, _raw(recipient))
    counter = 0
    block = src.read(CHUNK + TAG)
    while True:
        following = src.read(CHUNK + TAG) if len(block) == CHUNK + TAG else b""
        last = not following
        try:
            out.write(aead.decrypt(_nonce(counter, last), block, header))
        except InvalidTag:
            where = "cut short or damaged at its end" if last else f"damaged at chunk {counter}"
            raise SealError(f"the sealed backup does not open: {where}") from None
        if last:
            return
        counter += 1
        block = following


def seal_file(src: Path, dest: Path, recipient: X25519PublicKey) -> None:
    """Seal `src` into a new file `dest` (0600, never overwriting)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with src.open("rb") as inp, os.fdopen(fd, "wb") as out:
            seal_stream(inp, out, recipient)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def open_file(src: Path, dest: Path, private: X25519PrivateKey) -> None:
    """Open `src` into a new file `dest` (0600); nothing is left at `dest` when it does not open."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with src.open("rb") as inp, os.fdopen(fd, "wb") as out:
            open_stream(inp, out, private)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


# ---- shipping: what an appliance signs (its NKey) to upload a sealed backup, and the hub checks ----------------------

SIGNATURE_HEADER = "Qms-Signature"  # base64 Ed25519 signature (the branch's NKey) over `upload_message`
TIMESTAMP_HEADER = "Qms-Timestamp"  # POSIX seconds; the hub accepts a few minutes of skew
SHA256_HEADER = "Qms-Content-Sha256"  # hex digest of the sealed file


def upload_message(tenant: str, branch_id: str, name: str, size: int, sha256: str, timestamp: int) -> bytes:
    """The bytes an appliance signs to upload one sealed backup (the hub rebuilds them from the request)."""
    return "\n".join(["qms-backup-upload v1", tenant, branch_id, name, str(size), sha256, str(timestamp)]).encode()


# ---- names: when a backup was taken and until when anyone may keep it (issue 16, crypto-shredding) -----------------

NAME_STAMP = "%Y%m%dT%H%M%S%fZ"
UNTIL_STAMP = "%Y%m%dT%H%M%SZ"
_UNTIL = re.compile(r"-until-(\d{8}T\d{6}Z)")
_TAKEN = re.compile(r"^qms-(\d{8}T\d{6})(\d{6})?Z")


def backup_name(taken: datetime, expires: datetime) -> str:
    """`qms-<taken>-until-<expires>.tar.gz`: every holder (the appliance, the hub, an S3 bucket) reads the expiry
    from the name (signed with the upload) and deletes the backup by then."""
    start, until = taken.astimezone(UTC).strftime(NAME_STAMP), expires.astimezone(UTC).strftime(UNTIL_STAMP)
    return f"qms-{start}-until-{until}.tar.gz"


def expires_of(name: str) -> datetime | None:
    """The expiry a backup's name carries (None for names from before expiries)."""
    found = _UNTIL.search(name)
    return datetime.strptime(found.group(1), UNTIL_STAMP).replace(tzinfo=UTC) if found else None


def taken_of(name: str) -> datetime | None:
    """When a backup named `qms-<stamp>…` was taken (None when the name has no stamp)."""
    found = _TAKEN.match(name)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def expired(name: str, now: datetime, max_age: timedelta, fallback: datetime | None = None) -> bool:
    """True when a backup must be gone: past the expiry in its name, or older than `max_age` (from the stamp in its
    name, else `fallback`, e.g. when it arrived); the earlier of the two wins."""
    until = expires_of(name)
    taken = taken_of(name) or fallback
    deadlines = [d for d in (until, taken + max_age if taken else None) if d is not None]
    return bool(deadlines) and now >= min(deadlines)
