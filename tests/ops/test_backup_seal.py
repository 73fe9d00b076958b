"""The sealed backup format (sync/backup_seal.py): what is sealed opens byte for byte with the hub's key, and nothing
else opens: another key, any flipped byte, any cut, a header from another file (Hypothesis over sizes around the
64 KiB chunk boundary)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import backup_seal

PRIVATE, PUBLIC = backup_seal.generate_key()
KEY = backup_seal.load_private(PRIVATE)
RECIPIENT = backup_seal.load_public(PUBLIC)
SIZES = st.sampled_from([0, 1, 1000, backup_seal.CHUNK - 1, backup_seal.CHUNK, backup_seal.CHUNK + 1,
                         2 * backup_seal.CHUNK, 2 * backup_seal.CHUNK + 7])  # fmt: skip


def seal(data: bytes) -> bytes:
    out = io.BytesIO()
    backup_seal.seal_stream(io.BytesIO(data), out, RECIPIENT)
    return out.getvalue()


def open_(sealed: bytes, key: backup_seal.X25519PrivateKey = KEY) -> bytes:
    out = io.BytesIO()
    backup_seal.open_stream(io.BytesIO(sealed), out, key)
    return out.getvalue()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=SIZES, seed=st.binary(min_size=1, max_size=16))
def test_what_is_sealed_opens_byte_for_byte(size: int, seed: bytes) -> None:
    data = (seed * (size // len(seed) + 1))[:size]
    sealed = seal(data)
    assert data not in sealed or size < 16  # a few bytes can occur in random ciphertext by chance (1 byte: ~1 in 3)
    assert open_(sealed) == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=SIZES, where=st.floats(min_value=0, max_value=1, exclude_max=True), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused(size: int, where: float, bit: int) -> None:
    sealed = bytearray(seal(b"q" * size))
    index = int(where * len(sealed))
    sealed[index] ^= 1 << bit
    with pytest.raises(backup_seal.SealError):
        open_(bytes(sealed))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=SIZES, cut=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_any_cut_is_refused(size: int, cut: float) -> None:
    sealed = seal(b"q" * size)
    with pytest.raises(backup_seal.SealError):
        open_(sealed[: int(cut * len(sealed))])


def test_a_whole_chunk_cut_off_at_a_boundary_is_refused() -> None:
    sealed = seal(b"q" * (2 * backup_seal.CHUNK + 5))
    boundary = backup_seal.HEADER_BYTES + 2 * (backup_seal.CHUNK + backup_seal.TAG)
    with pytest.raises(backup_seal.SealError, match="cut short"):
        open_(sealed[:boundary])


def test_another_key_is_named_and_a_swapped_header_does_not_open() -> None:
    other = backup_seal.load_private(backup_seal.generate_key()[0])
    with pytest.raises(backup_seal.SealError, match="sealed to another key"):
        open_(seal(b"data"), other)
    first, second = seal(b"a" * 100), seal(b"b" * 100)
    with pytest.raises(backup_seal.SealError):
        open_(first[: backup_seal.HEADER_BYTES] + second[backup_seal.HEADER_BYTES :])
    with pytest.raises(backup_seal.SealError, match="not a sealed QMS backup"):
        open_(b"\x1f\x8b plain gzip")
