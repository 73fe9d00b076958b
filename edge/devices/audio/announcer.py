"""The announcement queue: calls and recalls become audio per area, played one after another, none lost.

The writer thread only appends committed events to a queue (never blocks). A composer thread turns each call into
a WAV from the in-memory voice packs (audio ready within milliseconds); one player thread per area delivers them
in order to the outputs, waiting for each to finish plus a gap, so announcements never cut each other off and a
burst drains at speaking pace. Quiet hours drop the audio only: boards keep following the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.devices.audio.assemble import Rendered, Segment, assemble
from edge.devices.audio.outputs import Output
from edge.devices.audio.phrases import announcement_plan
from edge.devices.audio.voicepack import PackMissing, VoicePack, pack_dir
from edge.service import QueueService
from sync.contract import Event, TicketCalled, TicketRecalled
from sync.contract_config import BranchConfig

log = logging.getLogger("qms.audio")
KEEP_RECENT = 256  # assembled WAVs kept for boards and MQTT speakers to fetch by seq
_STOP = object()


@dataclass(frozen=True)
class Announcement:
    """One call or recall to speak in an area."""

    area: str
    seq: int
    ticket_number: str
    counter_id: str
    counter_name: str
    recall: bool
    languages: tuple[str, ...]
    rendered: Rendered
    committed_at: float  # monotonic time the writer handed the event over
    ready_at: float  # monotonic time the audio was assembled

    @property
    def wav(self) -> bytes:
        """The WAV file."""
        return self.rendered.wav

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.rendered.duration

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The clip layout."""
        return self.rendered.segments

    @property
    def url(self) -> str:
        """Where boards and MQTT speakers fetch the WAV (`GET /board/audio/<area>/<seq>.wav`)."""
        return f"/board/audio/{self.area}/{self.seq}.wav"


def in_quiet_hours(config: BranchConfig, now: datetime) -> bool:
    """Whether local time falls in one of the announcement quiet-hour spans (a span may cross midnight)."""
    try:
        tz = ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz).strftime("%H:%M")
    for start, end in config.announcements.quiet_hours:
        if (start <= local < end) if start < end else (local >= start or local < end):
            return True
    return False


@dataclass
class Stats:
    """Counters for health and tests."""

    announced: int = 0
    quiet: int = 0
    no_pack: int = 0
    played: int = 0


class Announcer:
    """Subscribes to commits and runs the per-area announcement queues."""

    def __init__(
        self,
        service: QueueService,
        voice_root: Path,
        outputs: list[Output],
        *,
        pace: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.voice_root = voice_root
        self.outputs = outputs
        self.pace = pace
        self.clock = clock
        self.stats = Stats()
        self.listeners: list[Callable[[Announcement], None]] = []  # told when audio is ready (bench, tests)
        self._inbox: queue.SimpleQueue[tuple[float, list[TicketCalled | TicketRecalled]] | None] = queue.SimpleQueue()
        self._areas: dict[str, queue.SimpleQueue[object]] = {}
        self._threads: list[threading.Thread] = []
        self._recent: OrderedDict[tuple[str, int], Announcement] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._packs: dict[str, tuple[float, VoicePack]] = {}
        self._missing_logged: set[str] = set()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the composer thread (player threads start per area on first use)."""
        self._spawn(self._compose_loop, "announce-compose")

    def stop(self) -> None:
        """Stop every thread; queued announcements are dropped (the appliance is shutting down)."""
        self._stopping.set()
        self._inbox.put(None)
        with self._lock:
            for q in self._areas.values():
                q.put(_STOP)
        for t in self._threads:
            t.join(timeout=5)

    def on_commit(self, events: list[Event]) -> None:
        """Commit listener (writer thread): hand calls and recalls over, nothing more."""
        calls = [e for e in events if isinstance(e, TicketCalled | TicketRecalled)]
        if calls:
            self._inbox.put((time.monotonic(), calls))

    def audio(self, area: str, seq: int) -> Announcement | None:
        """A recent announcement's audio, for `GET /board/audio/<area>/<seq>.wav`."""
        with self._lock:
            return self._recent.get((area, seq))

    # ---- packs -----------------------------------------------------------------------------------------------

    def pack(self, lang: str) -> VoicePack | None:
        """The language's pack, reloaded when `qms-edge voice build` replaced it; None (logged once) if absent."""
        directory = pack_dir(self.voice_root, lang)
        try:
            mtime = (directory / "pack.json").stat().st_mtime
        except OSError:
            mtime = -1.0
        cached = self._packs.get(lang)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            pack = VoicePack.load(directory)
        except PackMissing as exc:
            if lang not in self._missing_logged:
                self._missing_logged.add(lang)
                log.warning("%s; build it with: qms-edge voice build --lang %s", exc, lang)
            return None
        self._packs[lang] = (mtime, pack)
        self._missing_logged.discard(lang)
        return pack

    # ---- composing -------------------------------------------------------------------------------------------

    def _compose_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            committed_at, calls = item
            for event in calls:
                try:
                    announcement = self.compose(event, committed_at)
                except Exception:
                    log.exception("announcement of event %s failed", event.seq)
                    continue
                if announcement is not None:
                    self._enqueue(announcement)

    def compose(self, event: TicketCalled | TicketRecalled, committed_at: float) -> Announcement | None:
        """The announcement of one call/recall, or None (disabled, quiet hours, no pack, no area)."""
        view = self.service.view
        config = view.state.config
        ticket = view.state.tickets.get(event.ticket_id or "")
        if config is None or ticket is None or not config.announcements.enabled:
            return None
        counter = config.counter(event.counter_id) if event.counter_id else None
        service = config.service(event.service_id)
        area = (counter.area_id if counter else None) or (service.area_id if service else None)
        if area is None or counter is None:
            return None
        if in_quiet_hours(config, self.clock()):
            self.stats.quiet += 1
            return None
        wanted = config.announcements.languages or config.languages
        packs = {lang: p for lang in wanted if (p := self.pack(lang)) is not None}
        if not packs:
            self.stats.no_pack += 1
            return None
        recall = isinstance(event, TicketRecalled)
        plan = announcement_plan(
            ticket.ticket_number,
            counter.id,
            [lang for lang in wanted if lang in packs],
            chime=config.announcements.chime,
            repeats=config.announcements.recall_repeats if recall else 1,
        )
        rendered = assemble(plan, packs)
        announcement = Announcement(
            area=area,
            seq=event.seq,
            ticket_number=ticket.ticket_number,
            counter_id=counter.id,
            counter_name=counter.name,
            recall=recall,
            languages=tuple(lang for lang in wanted if lang in packs),
            rendered=rendered,
            committed_at=committed_at,
            ready_at=time.monotonic(),
        )
        self.stats.announced += 1
        return announcement

    def _enqueue(self, announcement: Announcement) -> None:
        with self._lock:
            self._recent[(announcement.area, announcement.seq)] = announcement
            while len(self._recent) > KEEP_RECENT:
                self._recent.popitem(last=False)
            q = self._areas.get(announcement.area)
            if q is None:
                q = self._areas[announcement.area] = queue.SimpleQueue()
                self._spawn(lambda: self._play_loop(q), f"announce-{announcement.area}")
        for listener in self.listeners:
            try:
                listener(announcement)
            except Exception:
                log.exception("announcement listener failed")
        q.put(announcement)

    # ---- playing ---------------------------------------------------------------------------------------------

    def _play_loop(self, q: queue.SimpleQueue[object]) -> None:
        while True:
            item = q.get()
            if item is _STOP or self._stopping.is_set():
                return
            assert isinstance(item, Announcement)
            started = time.monotonic()
            config = self.service.view.state.config
            allowed = set(config.announcements.outputs) if config else set()
            for output in sorted(self.outputs, key=lambda o: o.blocking):  # fire-and-forget ones first
                if output.name in allowed or output.name == "sink":
                    try:
                        output.play(item)
                    except Exception:
                        log.exception("output %s failed", output.name)
            self.stats.played += 1
            if self.pace and config is not None:
                # Let the audio finish everywhere (boards play it too) and leave a gap before the next one.
                remaining = item.duration + config.announcements.min_gap_ms / 1000 - (time.monotonic() - started)
                if remaining > 0 and self._stopping.wait(remaining):
                    return

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
