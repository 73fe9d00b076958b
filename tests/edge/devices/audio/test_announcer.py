"""Announcements end to end on a real writer and SQLite: clip sequence, bursts, recalls, quiet hours, no packs."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import pytest

from edge.devices.audio.announcer import Announcement, Announcer
from edge.devices.audio.outputs import CallbackOutput, WavSink
from edge.devices.audio.phrases import GAPS_MS
from edge.devices.audio.voicepack import VoicePack
from edge.engine import commands as c
from edge.service import QueueService
from edge.web.board.access import Scope
from edge.web.board.state import board_state
from tests.edge.devices.audio.conftest import wait_until, with_announcements

SENTENCE = ["word.ticket", "char.A", "char.0", "char.1", "char.2", "word.counter", "char.3"]


def enqueue(service: QueueService, n: int, service_id: str = "teller") -> list[str]:
    """N new tickets; their ids."""
    return [service.execute(c.Enqueue(service_id=service_id)).response["ticket_id"] for _ in range(n)]


def sink_files(directory: Path) -> list[Path]:
    """What the fake speaker played, in play order."""
    return sorted(directory.glob("*.wav")) if directory.exists() else []


def frames_of(path: Path) -> tuple[int, bytes]:
    """(rate, frames) of a WAV file."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


def test_a012_to_counter_3_is_chime_then_the_sentence_in_each_language(
    branch: QueueService, announcer: Announcer, sink_dir: Path, voice_root: Path
) -> None:
    ids = enqueue(branch, 12)
    branch.execute(c.CallTicket(ticket_id=ids[11], counter_id="3"))  # A012

    wait_until(lambda: len(sink_files(sink_dir)) == 1)
    rate, frames = frames_of(sink_files(sink_dir)[0])
    packs = {lang: VoicePack.load(voice_root / lang) for lang in ("id", "en")}

    # The sequence of clips, by name, in the branch's languages (id then en), gaps between them.
    spoken = [(s.lang, s.clip) for s in announcer.audio("lantai-1", branch.view.seq).segments]  # type: ignore[union-attr]
    expected = [("", "chime"), ("", "gap.chime")]
    for i, lang in enumerate(("id", "en")):
        if i:
            expected.append(("", "gap.lang"))
        for j, clip in enumerate(SENTENCE):
            if j:
                expected.append(("", "gap.phrase" if clip == "word.counter" else "gap.char"))
            expected.append((lang, clip))
    assert spoken == expected

    # The content: each clip's exact samples at its place, silence in the gaps; the duration adds up.
    position = 0
    for lang, clip in expected:
        if clip.startswith("gap."):
            chunk = b"\x00\x00" * (rate * GAPS_MS[clip] // 1000)
        else:
            chunk = packs[lang or "id"].frames(clip)
        assert frames[position : position + len(chunk)] == chunk, f"{lang} {clip} at byte {position}"
        position += len(chunk)
    assert position == len(frames)
    duration = len(frames) / 2 / rate
    expected_seconds = sum(len(packs[lang or "id"].frames(clip)) for lang, clip in expected) / 2 / rate
    assert duration == pytest.approx(expected_seconds)
    assert 3.0 < duration < 20.0  # two spoken sentences and a chime, not an empty or truncated file


def test_twenty_calls_in_two_seconds_are_announced_in_order(
    branch: QueueService, announcer: Announcer, sink_dir: Path
) -> None:
    """Each call is spoken, in order, unless a newer call at the same counter came before it started playing."""
    ids = enqueue(branch, 20)
    started = time.monotonic()
    for i, ticket_id in enumerate(ids):  # three counters take turns: call, start, complete
        counter = str(i % 3 + 1)
        branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id=counter))
        branch.execute(c.Start(ticket_id=ticket_id, counter_id=counter))
        branch.execute(c.Complete(ticket_id=ticket_id, counter_id=counter))
    assert time.monotonic() - started < 2.0, "the burst itself took longer than 2 s"

    wait_until(lambda: announcer.stats.played + announcer.stats.superseded == 20, timeout=20)
    files = sink_files(sink_dir)
    seqs = [int(f.stem.rsplit("-", 1)[1]) for f in files]
    assert seqs == sorted(seqs), "played out of order"
    numbers = [announcer.audio("lantai-1", s).ticket_number for s in seqs]  # type: ignore[union-attr]
    assert set(numbers) >= {"A018", "A019", "A020"}, "the last call of a counter was not spoken"
    assert numbers == sorted(numbers)
    assert announcer.stats.announced == 20
    assert len(files) == announcer.stats.played


def test_announcements_never_overlap_on_a_blocking_speaker(branch: QueueService, sink_dir: Path) -> None:
    playing = threading.Lock()
    overlaps: list[int] = []
    done: list[int] = []

    def speaker(a: Announcement) -> None:
        if not playing.acquire(blocking=False):
            overlaps.append(a.seq)
            return
        try:
            time.sleep(0.02)  # "playing": the next one must wait for this one
        finally:
            playing.release()
        done.append(a.seq)

    announcer = Announcer(branch, branch.data_dir / "voice", [CallbackOutput("speaker", speaker, blocking=True)])
    announcer.pace = False
    branch.subscribe_commits(announcer.on_commit)
    announcer.start()
    try:
        ids = enqueue(branch, 5)
        for i, ticket_id in enumerate(ids[:3]):
            branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id=str(i + 1)))
        wait_until(lambda: len(done) == 3)
    finally:
        announcer.stop()
    assert overlaps == []
    assert done == sorted(done)


def test_a_recall_is_announced_again_and_repeated(branch: QueueService, announcer: Announcer, sink_dir: Path) -> None:
    [ticket_id] = enqueue(branch, 1)
    branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id="2"))
    wait_until(lambda: len(sink_files(sink_dir)) == 1)  # a recall before the call is spoken would replace it
    branch.execute(c.Recall(ticket_id=ticket_id, counter_id="2"))
    wait_until(lambda: len(sink_files(sink_dir)) == 2)
    first, recall = (announcer.audio("lantai-1", int(f.stem.rsplit("-", 1)[1])) for f in sink_files(sink_dir))
    assert first is not None
    assert recall is not None
    assert recall.recall
    assert not first.recall
    words = [s.clip for s in recall.segments if s.clip == "word.ticket"]
    assert len(words) == 2 * 2  # two languages, said twice (recall_repeats defaults to 2)
    assert recall.duration > 1.8 * first.duration


def test_quiet_hours_silence_audio_but_the_board_still_updates(
    branch: QueueService, announcer: Announcer, sink_dir: Path
) -> None:
    config = branch.view.state.config
    assert config is not None
    quiet = with_announcements(config, quiet_hours=[("00:00", "24:00")])
    branch.execute(c.ApplyConfig(actor="test", config=quiet, base_version=config.version, source="test"))
    ids = enqueue(branch, 3)
    for i, ticket_id in enumerate(ids):
        branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id=str(i + 1)))

    wait_until(lambda: announcer.stats.quiet == 3)
    assert sink_files(sink_dir) == []
    assert announcer.stats.announced == 0
    state = board_state(branch.view, Scope("area", "lantai-1"))
    assert state["now"]["ticket_number"] == "A003"
    assert [call["ticket_number"] for call in state["recent"]] == ["A002", "A001"]


def test_quiet_hours_span_crossing_midnight(branch: QueueService) -> None:
    from datetime import UTC, datetime

    from edge.devices.audio.announcer import in_quiet_hours

    config = branch.view.state.config
    assert config is not None
    night = with_announcements(config, quiet_hours=[("21:00", "06:00")])  # Asia/Jakarta = UTC+7
    assert in_quiet_hours(night, datetime(2026, 1, 1, 15, 0, tzinfo=UTC))  # 22:00 local
    assert in_quiet_hours(night, datetime(2026, 1, 1, 22, 0, tzinfo=UTC))  # 05:00 local
    assert not in_quiet_hours(night, datetime(2026, 1, 1, 2, 0, tzinfo=UTC))  # 09:00 local


def test_without_voice_packs_calls_still_work_and_nothing_is_said(
    branch: QueueService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    announcer = Announcer(branch, tmp_path / "no-voice", [WavSink(tmp_path / "out")], pace=False)
    branch.subscribe_commits(announcer.on_commit)
    announcer.start()
    try:
        [ticket_id] = enqueue(branch, 1)
        outcome = branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id="1"))
        assert outcome.response["status"] == "called"
        wait_until(lambda: announcer.stats.no_pack == 1)
    finally:
        announcer.stop()
    assert sink_files(tmp_path / "out") == []
    assert "qms-edge voice build --lang id" in caplog.text
