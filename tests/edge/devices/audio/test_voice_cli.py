"""`qms-edge voice`: building packs with engine fallback, clear refusals, a test announcement; and pack loading."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from edge.devices.audio.engines import EngineUnavailable, open_engine
from edge.devices.audio.pcm import SAMPLE_RATE
from edge.devices.audio.voicepack import PackMissing, VoicePack
from tests.support.appliance import run_cli


def test_unknown_language_or_engine_is_refused_clearly(tmp_path: Path) -> None:
    result = run_cli("voice", "build", "--lang", "fr", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown language 'fr'" in result.stderr
    result = run_cli("voice", "build", "--lang", "id", "--engine", "festival", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown engine 'festival'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_engine_falls_back_and_the_pack_speaks(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    # gTTS is an optional extra (it needs internet): without it the build says so and uses espeak-ng.
    result = run_cli("voice", "build", "--lang", "id", "--engine", "gtts", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "fallback: gtts" in result.stderr or "built with gtts" in result.stdout
    pack = VoicePack.load(tmp_path / "voice" / "id")
    assert pack.rate == SAMPLE_RATE
    assert {"word.ticket", "word.counter", "char.A", "char.9", "chime"} <= set(pack.clips)
    assert all(clip.samples > SAMPLE_RATE // 20 for clip in pack.clips.values())  # each clip says something

    out = tmp_path / "say.wav"
    result = run_cli("voice", "say", "A012", "3", "--lang", "id", "--out", str(out), "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "chime word.ticket char.A char.0 char.1 char.2 word.counter char.3" in result.stdout
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == SAMPLE_RATE
        assert 2.0 < w.getnframes() / SAMPLE_RATE < 10.0


def test_say_without_any_pack_explains_what_to_do(tmp_path: Path) -> None:
    result = run_cli("voice", "say", "A012", "3", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "qms-edge voice build --lang id" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_engine_at_all_is_a_clear_error() -> None:
    with pytest.raises(EngineUnavailable, match="piper"):
        open_engine("piper", "xx")  # no voice for this language in any engine


def test_a_broken_pack_is_reported_not_crashed_on(tmp_path: Path) -> None:
    (tmp_path / "id").mkdir()
    (tmp_path / "id" / "pack.json").write_text("{not json")
    with pytest.raises(PackMissing):
        VoicePack.load(tmp_path / "id")
