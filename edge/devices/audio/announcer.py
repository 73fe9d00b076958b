"""The announcement queue: calls and recalls become audio per area, played one after another, bounded.

The writer thread only appends committed events to a queue (never blocks, never waits for audio). A composer
thread lays each call out from the in-memory voice packs (clips by reference: no WAV is rendered or kept per call);
one player thread per area delivers them in order to the outputs, waiting for each to finish plus a gap, so
announcements never cut each other off. Quiet hours drop the audio only: boards keep following the stream.

Bounded queue (issue 11): a burst of calls faster than speech used to queue every call. Now, per area:
- a newer call at a counter replaces that counter's announcement that has not started playing yet, and a recall
  of a ticket replaces the ticket's unplayed call (`superseded`): the speaker says what the counter shows now;
- at most `MAX_QUEUED_PER_AREA` announcements wait; beyond that the oldest waiting one is dropped (`dropped`,
  logged): its call is on the boards already. After collapsing there is at most one per counter, so the cap only
  bites when more counters than that call during one announcement.
Both are counted in `Stats` and exported on `/metrics`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.devices.audio.assemble import Rendered, Segment, assemble
from edge.devices.audio.outputs import Output
from edge.devices.audio.phrases import announcement_plan
from edge.devices.audio.voicepack import PackMissing, VoicePack, pack_dir
from edge.service import QueueService
from sync.contract import Event, TicketCalled, TicketRecalled
from sync.contract_config import BranchConfig

log = logging.getLogger("qms.audio")
KEEP_RECENT = 256  # announcements (clip references, not WAVs) kept for boards and MQTT speakers to fetch by seq
MAX_QUEUED_PER_AREA = 16  # announcements waiting to be spoken in one area, after superseded ones are collapsed


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
    ticket_id: str | None = None

    @property
    def wav(self) -> bytes:
        """The WAV file (built on demand from the voice pack's clips)."""
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


def supersedes(new: Announcement, old: Announcement) -> bool:
    """A newer announcement makes an unplayed older one pointless: same counter, or the same ticket (a recall)."""
    return old.counter_id == new.counter_id or (old.ticket_id is not None and old.ticket_id == new.ticket_id)


class AreaQueue:
    """One area's waiting announcements: superseded ones collapse, at most `limit` wait (the oldest is dropped)."""

    def __init__(self, limit: int = MAX_QUEUED_PER_AREA) -> None:
        self.limit = limit
        self._items: deque[Announcement] = deque()
        self._ready = threading.Condition()
        self._stopped = False

    def put(self, announcement: Announcement) -> tuple[int, int]:
        """Queue an announcement; returns (superseded, dropped) counts."""
        with self._ready:
            kept = deque(old for old in self._items if not supersedes(announcement, old))
            superseded = len(self._items) - len(kept)
            kept.append(announcement)
            dropped = 0
            while len(kept) > self.limit:
                kept.popleft()
                dropped += 1
            self._items = kept
            self._ready.notify()
        return superseded, dropped

    def get(self) -> Announcement | None:
        """The next announcement, waiting for one; None once stopped."""
        with self._ready:
            while not self._items and not self._stopped:
                self._ready.wait()
            return None if self._stopped else self._items.popleft()

    def stop(self) -> None:
        """Wake the player so that it ends."""
        with self._ready:
            self._stopped = True
            self._ready.notify_all()

    def snapshot(self) -> list[Announcement]:
        """What waits, oldest first."""
        with self._ready:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Stats:
    """Counters for health, `/metrics` and tests."""

    announced: int = 0
    quiet: int = 0
    no_pack: int = 0
    played: int = 0
    superseded: int = 0  # unplayed announcements replaced by a newer one for the same counter or ticket
    dropped: int = 0  # unplayed announcements dropped because the area's queue was full
    peak_pending: int = 0  # the longest any area's queue has been


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
        self._areas: dict[str, AreaQueue] = {}
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
                q.stop()
        for t in self._threads:
            t.join(timeout=5)

    def on_commit(self, events: list[Event]) -> None:
        """Commit listener (writer thread): hand calls and recalls over, nothing more."""
        calls = [e for e in events if isinstance(e, TicketCalled | TicketRecalled)]
        if calls:
            self._inbox.put((time.monotonic(), calls))

    def pending(self, area: str) -> int:
        """Announcements waiting to be spoken in an area (not counting the one playing)."""
        with self._lock:
            q = self._areas.get(area)
        return len(q) if q is not None else 0

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
            ticket_id=event.ticket_id,
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
                q = self._areas[announcement.area] = AreaQueue()
                self._spawn(lambda: self._play_loop(q), f"announce-{announcement.area}")
        for listener in self.listeners:
            try:
                listener(announcement)
            except Exception:
                log.exception("announcement listener failed")
        superseded, dropped = q.put(announcement)
        self.stats.superseded += superseded
        self.stats.dropped += dropped
        self.stats.peak_pending = max(self.stats.peak_pending, len(q))
        if superseded:
            log.debug("area %s: %d unplayed announcement(s) superseded by %s", announcement.area, superseded,
                      announcement.ticket_number)  # fmt: skip
        if dropped:
            log.warning("area %s: announcement queue full (%d), dropped the %d oldest unplayed announcement(s)",
                        announcement.area, q.limit, dropped)  # fmt: skip

    # ---- playing ---------------------------------------------------------------------------------------------

    def _play_loop(self, q: AreaQueue) -> None:
        while True:
            item = q.get()
            if item is None or self._stopping.is_set():
                return
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


class AnnouncerCollector(Collector):
    """Prometheus figures of the announcement queues (`/metrics`): spoken, superseded, dropped, waiting now."""

    def __init__(self, announcer: Announcer) -> None:
        self.announcer = announcer

    def collect(self) -> Iterator[Metric]:
        """Read the counters at scrape time."""
        stats, a = self.announcer.stats, self.announcer
        yield CounterMetricFamily("qms_announcements", "Announcements composed", value=stats.announced)
        yield CounterMetricFamily("qms_announcements_played", "Announcements delivered to outputs", value=stats.played)
        yield CounterMetricFamily(
            "qms_announcements_superseded",
            "Unplayed announcements replaced by a newer call at the same counter or a recall of the same ticket",
            value=stats.superseded,
        )
        yield CounterMetricFamily(
            "qms_announcements_dropped", "Unplayed announcements dropped because the area queue was full",
            value=stats.dropped,
        )  # fmt: skip
        pending = GaugeMetricFamily("qms_announcements_pending", "Announcements waiting per area", labels=["area"])
        with a._lock:
            areas = dict(a._areas)
        for area, q in sorted(areas.items()):
            pending.add_metric([area], len(q))
        yield pending
