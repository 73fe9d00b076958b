"""SMS segment count (what an SMS costs): GSM-7 when every character is in the GSM 03.38 default alphabet or its
extension table (extension characters take two septets), else UCS-2 (any emoji, curly quote, non-Latin letter).
One segment holds 160 septets / 70 UCS-2 units; a concatenated message loses room to its header: 153 / 67 each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
SINGLE = {"gsm7": 160, "ucs2": 70}
MULTI = {"gsm7": 153, "ucs2": 67}


@dataclass(frozen=True)
class SegmentCount:
    """How a text goes out as SMS: its encoding, its length in that encoding's units, and the segments it takes."""

    encoding: Literal["gsm7", "ucs2"]
    units: int
    segments: int

    def as_dict(self) -> dict[str, object]:
        """JSON form (the template editor's preview)."""
        return {"encoding": self.encoding, "units": self.units, "segments": self.segments}


def _ucs2_units(text: str) -> int:
    """UTF-16 code units: a character outside the BMP (most emoji) takes two."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)  # noqa: PLR2004  # the BMP's last code point


def segment_count(text: str) -> SegmentCount:
    """The encoding, units and segments of `text` as an SMS (0 segments for an empty text)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        encoding: Literal["gsm7", "ucs2"] = "gsm7"
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    else:
        encoding, units = "ucs2", _ucs2_units(text)
    if units == 0:
        return SegmentCount(encoding, 0, 0)
    if units <= SINGLE[encoding]:
        return SegmentCount(encoding, units, 1)
    return SegmentCount(encoding, units, -(-units // MULTI[encoding]))
