"""Wires boards and announcements into the app: the hub, the announcer and its outputs, started with the writer."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from edge.devices.audio.announcer import Announcer
from edge.devices.audio.outputs import AlsaSpeaker, CallbackOutput, Output, WavSink
from edge.service import QueueService
from edge.web.board.hub import BoardHub
from edge.web.board.media import MediaCache

log = logging.getLogger("qms.board")


class BoardRuntime:
    """Everything `/board` needs; `QMS_AUDIO_SINK=DIR` also writes every announcement to DIR as WAV files."""

    def __init__(self, service: QueueService, data_dir: Path, secret: bytes) -> None:
        self.service = service
        self.secret = secret
        self.hub = BoardHub(service)
        self.media = MediaCache(data_dir / "board-media")
        outputs: list[Output] = [AlsaSpeaker(os.environ.get("QMS_ALSA_DEVICE") or None)]
        outputs.append(CallbackOutput("board", self.hub.announce))
        if sink := os.environ.get("QMS_AUDIO_SINK"):
            outputs.append(WavSink(Path(sink)))
        self.announcer = Announcer(service, data_dir / "voice", outputs)

    def add_output(self, output: Output) -> None:
        """Another announcement destination, e.g. an MQTT publisher hook (`name = "mqtt"`)."""
        self.announcer.outputs.append(output)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe to commits (call before the writer starts) and start the announcement queue."""
        self.hub.start(loop)
        self.service.subscribe_commits(self.hub.on_commit)
        self.service.subscribe_commits(self.announcer.on_commit)
        self.announcer.start()

    def stop(self) -> None:
        """Stop the announcement threads."""
        self.announcer.stop()
