"""PCM helpers on the standard `wave` module: read clips, make silence and the chime, assemble one WAV."""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SAMPLE_RATE = 22050  # every clip of every pack is converted to this at build time (piper and espeak-ng speak it)
SAMPLE_WIDTH = 2  # 16-bit
CHANNELS = 1


class WavFormatError(ValueError):
    """A clip is not 16-bit mono PCM at the pack's sample rate."""


@dataclass(frozen=True)
class Clip:
    """Raw 16-bit mono frames of one clip."""

    name: str
    frames: bytes

    @property
    def samples(self) -> int:
        """Number of samples."""
        return len(self.frames) // SAMPLE_WIDTH


def read_clip(path: Path, name: str, rate: int = SAMPLE_RATE) -> Clip:
    """Load a clip, refusing any format other than the pack's (conversion happens at build time, not here)."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (CHANNELS, SAMPLE_WIDTH, rate):
            raise WavFormatError(
                f"{path}: {w.getnchannels()} ch, {8 * w.getsampwidth()} bit, {w.getframerate()} Hz;"
                f" expected mono 16-bit {rate} Hz"
            )
        return Clip(name, w.readframes(w.getnframes()))


@lru_cache(maxsize=64)
def silence(ms: int, rate: int = SAMPLE_RATE) -> bytes:
    """`ms` milliseconds of silence (one shared object per length: announcements refer to it, never copy it)."""
    return b"\x00\x00" * (rate * ms // 1000)


def chime(rate: int = SAMPLE_RATE) -> bytes:
    """A two-tone "ding-dong" (E6 then C6, decaying), synthesised so no audio asset has to ship."""
    out = bytearray()
    for freq, seconds in ((1318.5, 0.45), (1046.5, 0.75)):
        n = int(rate * seconds)
        for i in range(n):
            t = i / rate
            envelope = math.exp(-4.0 * t) * min(1.0, i / (0.005 * rate))
            value = envelope * (0.6 * math.sin(2 * math.pi * freq * t) + 0.2 * math.sin(4 * math.pi * freq * t))
            out += struct.pack("<h", int(value * 0.7 * 32767))
    return bytes(out)


def to_wav(frames: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """Frames as a complete WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def write_wav(path: Path, frames: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write frames as a WAV file."""
    path.write_bytes(to_wav(frames, rate))


def trim(frames: bytes, threshold: int = 300) -> bytes:
    """Drop leading and trailing near-silence (the pure-Python fallback when sox is absent)."""
    samples = memoryview(frames).cast("h")
    first = next((i for i in range(len(samples)) if abs(samples[i]) > threshold), len(samples))
    last = next((i for i in range(len(samples) - 1, first - 1, -1) if abs(samples[i]) > threshold), first - 1)
    return frames[first * SAMPLE_WIDTH : (last + 1) * SAMPLE_WIDTH]
