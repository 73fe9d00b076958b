"""Joins pre-rendered clips into one announcement WAV (pure Python, well under a millisecond per call)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.devices.audio import pcm
from edge.devices.audio.phrases import GAPS_MS
from edge.devices.audio.voicepack import VoicePack


@dataclass(frozen=True)
class Segment:
    """Where one clip (or gap) sits in the assembled audio, in samples."""

    lang: str
    clip: str
    start: int
    samples: int


@dataclass(frozen=True)
class Rendered:
    """An assembled announcement: the WAV bytes and the clip layout inside it."""

    wav: bytes
    segments: tuple[Segment, ...]
    rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return sum(s.samples for s in self.segments) / self.rate


def assemble(plan: list[tuple[str, str]], packs: dict[str, VoicePack]) -> Rendered:
    """Concatenate a plan of (lang, clip) pairs; gaps ("" lang) are silence, the chime comes from any pack.

    Every pack shares one sample rate (enforced when packs are built), so joining is a byte concatenation.
    """
    if not packs:
        raise LookupError("no voice pack loaded")
    any_pack = next(iter(packs.values()))
    parts: list[bytes] = []
    segments: list[Segment] = []
    position = 0
    for lang, clip in plan:
        pack = packs[lang] if lang else any_pack
        frames = pcm.silence(GAPS_MS[clip], pack.rate) if clip in GAPS_MS else pack.frames(clip)
        samples = len(frames) // pcm.SAMPLE_WIDTH
        segments.append(Segment(lang, clip, position, samples))
        parts.append(frames)
        position += samples
    return Rendered(pcm.to_wav(b"".join(parts), any_pack.rate), tuple(segments), any_pack.rate)
