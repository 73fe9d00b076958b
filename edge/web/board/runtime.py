"""Wires boards and announcements into the app: the hub, the announcer and its outputs, started with the writer."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from edge.devices.audio.announcer import Announcer
from edge.devices.audio.engines import EngineUnavailable
from edge.devices.audio.outputs import AlsaSpeaker, CallbackOutput, Output, WavSink
from edge.devices.audio.voicepack import PackMissing, VoicePack, build_pack, pack_dir
from edge.service import QueueService
from edge.web.board.hub import BoardHub
from edge.web.board.media import MediaCache

log = logging.getLogger("qms.board")


class BoardRuntime:
    """Everything `/board` needs.

    `QMS_AUDIO_SINK=DIR` also writes every announcement to DIR as WAV files; `QMS_VOICE_AUTOBUILD=1` (set by
    `qms-edge demo`) builds missing voice packs of the branch's languages in the background at start.
    """

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
        if os.environ.get("QMS_VOICE_AUTOBUILD") == "1":
            threading.Thread(target=self._build_missing_packs, name="voice-autobuild", daemon=True).start()

    def _build_missing_packs(self) -> None:
        """Build the packs the branch's announcements need and lack (once; failures are logged)."""
        config = self.service.view.state.config
        languages = (config.announcements.languages or config.languages) if config else ["id", "en"]
        root = self.announcer.voice_root
        for lang in languages:
            try:
                VoicePack.load(pack_dir(root, lang))
                continue
            except PackMissing:
                pass
            try:
                _, engine, notes = build_pack(root, lang)
            except (EngineUnavailable, KeyError, OSError, RuntimeError) as exc:
                log.warning("voice pack %s could not be built: %s", lang, exc)
                continue
            log.info("voice pack %s built with %s%s", lang, engine, f" ({'; '.join(notes)})" if notes else "")

    def stop(self) -> None:
        """Stop the announcement threads."""
        self.announcer.stop()
