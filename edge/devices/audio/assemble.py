"""Joins pre-rendered clips into one announcement (pure Python, well under a millisecond per call).

An assembled announcement keeps its clips by reference: `parts` are the voice pack's own PCM objects (and shared
silences), so a queued or remembered announcement costs a few hundred bytes, not a ~10 s WAV. The WAV file is
built when an output or a board asks for it and is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from edge.devices.audio import pcm
from edge.devices.audio.phrases import GAPS_MS
from edge.devices.audio.voicepack import VoicePack

WAV_CACHE = 4  # recently built announcement WAVs kept (each ~0.5 MB for ~10 s of audio)


@lru_cache(maxsize=WAV_CACHE)
def _wav(parts: tuple[bytes, ...], rate: int) -> bytes:
    return pcm.to_wav(b"".join(parts), rate)


@dataclass(frozen=True)
class Segment:
    """Where one clip (or gap) sits in the assembled audio, in samples."""

    lang: str
    clip: str
    start: int
    samples: int


@dataclass(frozen=True)
class Rendered:
    """An assembled announcement: references to its PCM parts and the clip layout."""

    parts: tuple[bytes, ...]
    segments: tuple[Segment, ...]
    rate: int

    @property
    def wav(self) -> bytes:
        """The WAV file, built on demand from the shared parts.

        The last few built are cached (`WAV_CACHE`), so two hundred boards fetching the same call build it once;
        memory stays bounded by that handful, whatever the call rate.
        """
        return _wav(self.parts, self.rate)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return sum(s.samples for s in self.segments) / self.rate


def assemble(plan: list[tuple[str, str]], packs: dict[str, VoicePack]) -> Rendered:
    """Lay out a plan of (lang, clip) pairs; gaps ("" lang) are silence, the chime comes from any pack.

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
    return Rendered(tuple(parts), tuple(segments), any_pack.rate)
