"""Voice packs: every clip of one language rendered once, trimmed and converted to one rate; loaded into memory."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from edge.devices.audio import pcm
from edge.devices.audio.engines import DEFAULT_ENGINE, Engine, open_engine
from edge.devices.audio.phrases import CHIME, GAPS_MS, all_clips

log = logging.getLogger("qms.audio")
MANIFEST = "pack.json"
# sox effects: drop silence at the start, reverse, again, reverse back (= trim both ends).
TRIM = ("silence", "1", "0.01", "0.3%", "reverse", "silence", "1", "0.01", "0.3%", "reverse")


class PackMissing(LookupError):
    """No usable voice pack for a language."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """`pack.json`: what a pack holds and how it was made."""

    lang: str
    engine: str
    rate: int
    clips: dict[str, str]  # clip name -> the text spoken
    built_at: float


@dataclass
class VoicePack:
    """One language's clips in memory (raw frames), ready to be joined in microseconds."""

    lang: str
    engine: str
    rate: int
    clips: dict[str, pcm.Clip] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> VoicePack:
        """Load `<dir>/pack.json` and its clips; PackMissing when absent or broken."""
        try:
            manifest = msgspec.json.decode((directory / MANIFEST).read_bytes(), type=Manifest)
        except (OSError, msgspec.DecodeError) as exc:
            raise PackMissing(f"no voice pack in {directory}: {exc}") from None
        pack = cls(manifest.lang, manifest.engine, manifest.rate)
        for name in [*manifest.clips, CHIME]:
            try:
                pack.clips[name] = pcm.read_clip(directory / f"{name}.wav", name, manifest.rate)
            except (OSError, wave.Error, EOFError, pcm.WavFormatError) as exc:
                raise PackMissing(f"voice pack {directory} is broken: {exc}") from None
        return pack

    def frames(self, name: str) -> bytes:
        """The frames of a clip or gap (KeyError for a clip the pack lacks)."""
        if name in GAPS_MS:
            return pcm.silence(GAPS_MS[name], self.rate)
        return self.clips[name].frames


def pack_dir(root: Path, lang: str) -> Path:
    """Where a language's pack lives under a voice root."""
    return root / lang


def build_pack(
    root: Path, lang: str, engine_name: str | None = None, only: set[str] | None = None
) -> tuple[Path, str, list[str]]:
    """Render a language's clips (or `only` those) into `<root>/<lang>`; returns (dir, engine used, fallback notes).

    Clips are trimmed of silence and converted to 22,050 Hz mono 16-bit with sox (pure Python when sox is absent
    and the engine already speaks that rate). The pack is written beside and swapped in whole.
    """
    texts = all_clips(lang)
    if only is not None:
        texts = {k: v for k, v in texts.items() if k in only}
    engine, notes = open_engine(engine_name or DEFAULT_ENGINE.get(lang, "espeak"), lang)
    target = pack_dir(root, lang)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{lang}-", dir=root))
    try:
        with tempfile.TemporaryDirectory() as raw_dir:
            for name, text in texts.items():
                _render_clip(engine, text, Path(raw_dir) / f"{name}.raw.wav", staging / f"{name}.wav")
        pcm.write_wav(staging / f"{CHIME}.wav", pcm.chime())
        manifest = Manifest(lang=lang, engine=engine.name, rate=pcm.SAMPLE_RATE, clips=texts, built_at=time.time())
        (staging / MANIFEST).write_bytes(msgspec.json.encode(manifest))
        old = root / f".{lang}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("voice pack %s built with %s: %d clips in %s", lang, engine.name, len(texts), target)
    return target, engine.name, notes


def _render_clip(engine: Engine, text: str, raw: Path, out: Path) -> None:
    engine.render(text, raw)
    sox = shutil.which("sox")
    if sox is not None:
        # Trim leading and trailing silence (espeak-ng leaves ~0.3 s) and convert to the pack format.
        result = subprocess.run(  # noqa: S603 - fixed binary, our own paths
            [sox, str(raw), "-r", str(pcm.SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(out), *TRIM],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if result.returncode == 0:
            return
        log.warning("sox failed on %s (%s); using the clip untrimmed", raw.name, result.stderr.decode(errors="replace"))
    with wave.open(str(raw), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, pcm.SAMPLE_RATE):
            raise RuntimeError(f"sox is needed to convert {w.getframerate()} Hz clips: apt-get install sox")
        frames = w.readframes(w.getnframes())
    pcm.write_wav(out, pcm.trim(frames))
