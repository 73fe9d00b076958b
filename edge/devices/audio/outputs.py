"""Where announcements go: the appliance's speaker (ALSA `aplay`), a WAV file sink, or a callback (boards, MQTT)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.devices.audio.announcer import Announcement

log = logging.getLogger("qms.audio")


class Output(Protocol):
    """One destination; `blocking` outputs return only once the audio has been played."""

    name: str
    blocking: bool

    def play(self, announcement: Announcement) -> None:
        """Deliver one announcement (errors are handled inside: an output never stops the queue)."""


class AlsaSpeaker:
    """The appliance's own speaker through `aplay` (alsa-utils); degrades to silence, logged once, when absent."""

    name = "speaker"
    blocking = True

    def __init__(self, device: str | None = None) -> None:
        self._aplay = shutil.which("aplay")
        self._device = device
        self._warned = False
        if self._aplay is None:
            log.warning("aplay (alsa-utils) not found: announcements are not played on this appliance's speaker")

    @property
    def available(self) -> bool:
        """Whether there is an aplay to run."""
        return self._aplay is not None

    def play(self, announcement: Announcement) -> None:
        """Play the WAV and wait for it to finish."""
        if self._aplay is None:
            return
        cmd = [self._aplay, "-q", *(["-D", self._device] if self._device else []), "-"]
        try:
            result = subprocess.run(  # noqa: S603 - fixed binary
                cmd, input=announcement.wav, capture_output=True, timeout=announcement.duration + 10, check=False
            )
            error = result.stderr.decode(errors="replace").strip() if result.returncode else ""
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc) or type(exc).__name__
        if not error:
            self._warned = False
        elif not self._warned:
            self._warned = True  # no sound card is common on a headless box: say it once
            log.warning("aplay failed (%s); the speaker stays silent until it works again", error)


@dataclass
class WavSink:
    """Writes each announcement to `<dir>/<n>-<area>-<seq>.wav`: the speaker of tests and of `voice say --out`."""

    directory: Path
    name: str = "sink"
    blocking: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._lock = threading.Lock()

    def play(self, announcement: Announcement) -> None:
        """Store the WAV."""
        with self._lock:
            self._count += 1
            n = self._count
        path = self.directory / f"{n:05d}-{announcement.area}-{announcement.seq}.wav"
        path.write_bytes(announcement.wav)


@dataclass
class CallbackOutput:
    """Hands the announcement to a function (the boards' stream, an MQTT publisher hook)."""

    name: str
    callback: Callable[[Announcement], None]
    blocking: bool = False

    def play(self, announcement: Announcement) -> None:
        """Call the function; its errors are logged, never raised."""
        try:
            self.callback(announcement)
        except Exception:
            log.exception("announcement output %s failed", self.name)
