"""A burst is rate-limited at speaking pace: each announcement of an area starts after the previous one ended + gap."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import msgspec

from edge.devices.audio import pcm
from edge.devices.audio.announcer import Announcement, Announcer
from edge.devices.audio.outputs import CallbackOutput
from edge.devices.audio.phrases import all_clips
from edge.devices.audio.voicepack import Manifest
from edge.engine import commands as c
from edge.service import QueueService
from tests.edge.devices.audio.conftest import wait_until, with_announcements

GAP_MS = 300


def tiny_pack(root: Path, lang: str) -> None:
    """A pack whose clips are 20 ms tones: announcements last under a second, so pacing is quick to observe."""
    directory = root / lang
    directory.mkdir(parents=True)
    tone = pcm.chime()[: pcm.SAMPLE_RATE // 50 * pcm.SAMPLE_WIDTH]
    clips = all_clips(lang)
    for name in [*clips, "chime"]:
        pcm.write_wav(directory / f"{name}.wav", tone)
    manifest = Manifest(lang=lang, engine="test", rate=pcm.SAMPLE_RATE, clips=clips, built_at=0.0)
    (directory / "pack.json").write_bytes(msgspec.json.encode(manifest))


def test_a_burst_plays_one_after_another_with_the_configured_gap(branch: QueueService, tmp_path: Path) -> None:
    config = branch.view.state.config
    assert config is not None
    paced = with_announcements(config, languages=["id"], chime=False, min_gap_ms=GAP_MS)
    branch.execute(c.ApplyConfig(actor="test", config=paced, base_version=config.version, source="test"))
    tiny_pack(tmp_path / "voice", "id")
    started: list[tuple[float, Announcement]] = []
    board = CallbackOutput("board", lambda a: started.append((time.monotonic(), a)))
    announcer = Announcer(branch, tmp_path / "voice", [board], pace=True)
    branch.subscribe_commits(announcer.on_commit)
    announcer.start()
    try:
        ids = [branch.execute(c.Enqueue(service_id="teller")).response["ticket_id"] for _ in range(4)]
        burst = time.monotonic()
        for i, ticket_id in enumerate(ids[:3]):
            branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id=str(i + 1)))
        assert time.monotonic() - burst < 0.5
        wait_until(lambda: len(started) == 3, timeout=15)
    finally:
        announcer.stop()
    assert [a.ticket_number for _, a in started] == ["A001", "A002", "A003"]
    for (t0, first), (t1, _) in itertools.pairwise(started):
        assert t1 - t0 >= first.duration + GAP_MS / 1000 - 0.01  # never cut off, and the gap is kept
        assert t1 - t0 < first.duration + GAP_MS / 1000 + 0.5  # but no needless delay either
