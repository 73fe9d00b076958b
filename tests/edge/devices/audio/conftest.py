"""Fixtures for the announcement tests: small voice packs built once per session, a seeded branch, an announcer."""

from __future__ import annotations

import shutil
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from edge.demo import demo_config
from edge.devices.audio.announcer import Announcer
from edge.devices.audio.outputs import WavSink
from edge.devices.audio.phrases import WORD_COUNTER, WORD_TICKET, char_clip
from edge.devices.audio.voicepack import build_pack
from edge.service import QueueService
from sync.contract_config import Announcements, BranchConfig
from tests.support.appliance import seed_demo

# Only what the tests say: the words, the letter A and the digits (a full pack is ~40 clips).
TEST_CLIPS = {WORD_TICKET, WORD_COUNTER, char_clip("A"), *(char_clip(d) for d in string.digits)}


@pytest.fixture(scope="session")
def voice_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Indonesian (espeak-ng) and English (piper, espeak-ng when piper is absent) packs with the test clips."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (make system-deps)")
    root = tmp_path_factory.mktemp("voice")
    build_pack(root, "id", "espeak", TEST_CLIPS)
    build_pack(root, "en", "piper", TEST_CLIPS)
    return root


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo branch, seeded once."""
    path = tmp_path_factory.mktemp("audio-template") / "data"
    seed_demo(path)
    return path


def with_announcements(config: BranchConfig, **changes: object) -> BranchConfig:
    """The config with other announcement settings."""
    return msgspec.structs.replace(config, announcements=msgspec.structs.replace(Announcements(), **changes))


@pytest.fixture
def branch(tmp_path: Path, seeded_template: Path, voice_root: Path) -> Iterator[QueueService]:
    """A running writer on a copy of the demo branch, its data dir holding the test voice packs."""
    data = tmp_path / "data"
    shutil.copytree(seeded_template, data)
    shutil.copytree(voice_root, data / "voice")
    service = QueueService(data)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def sink_dir(tmp_path: Path) -> Path:
    """Where the fake speaker writes announcements."""
    return tmp_path / "speaker"


@pytest.fixture
def announcer(branch: QueueService, sink_dir: Path) -> Iterator[Announcer]:
    """An announcer on the branch whose speaker is a WAV sink (no pacing: the tests check order, not time)."""
    a = Announcer(branch, branch.data_dir / "voice", [WavSink(sink_dir)], pace=False)
    branch.subscribe_commits(a.on_commit)
    a.start()
    yield a
    a.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds (fails the test after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.01)


__all__ = ["demo_config", "wait_until", "with_announcements"]
