"""In-process fan-out of committed events to SSE clients, resuming from the log with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import msgspec
from litestar.response import ServerSentEventMessage

from edge.service import QueueService
from edge.views import mask_email, mask_phone
from sync.contract import ConfigApplied, Event, TicketCreated, event_encoder, event_type

log = logging.getLogger("qms.stream")

SUBSCRIBER_BUFFER = 2000  # commit batches a slow client may lag before it is cut off (it resumes from the log)
HEARTBEAT_SECONDS = 15.0
_OVERFLOW = None


@dataclass(frozen=True)
class Wire:
    """An event encoded once for every client: seq, type, the ids filters need, and the JSON."""

    seq: int
    type: str
    data: str
    service_ids: frozenset[str]
    counter_ids: frozenset[str]
    broadcast: bool


def to_wire(event: Event) -> Wire:
    """Encode an event for the stream: personal data masked like everywhere staff and devices look (the log and the
    cloud keep it whole for notifications)."""
    if isinstance(event, TicketCreated) and (event.phone or event.email):
        event = msgspec.structs.replace(event, phone=mask_phone(event.phone), email=mask_email(event.email))
    return Wire(
        seq=event.seq,
        type=event_type(event),
        data=event_encoder.encode(event).decode(),
        service_ids=_ids(event, "service_id", "from_service", "to_service"),
        counter_ids=_ids(event, "counter_id", "from_counter", "to_counter"),
        broadcast=isinstance(event, ConfigApplied),
    )


def _ids(event: Event, *fields: str) -> frozenset[str]:
    """The non-empty values of some id fields of an event."""
    return frozenset(v for f in fields if isinstance(v := getattr(event, f, None), str))


@dataclass
class Broadcaster:
    """Receives commits from the writer thread and hands each client its own bounded queue."""

    loop: asyncio.AbstractEventLoop
    subscribers: set[asyncio.Queue[list[Wire] | None]] = field(default_factory=set)

    def on_commit(self, events: list[Event]) -> None:
        """Called by the writer after commit (another thread): encode once, deliver on the loop."""
        wires = [to_wire(e) for e in events]
        self.loop.call_soon_threadsafe(self._deliver, wires)

    def notice(self, kind: str) -> None:
        """Something outside the log changed (e.g. HQ's alerts for the floor): staff pages re-render (any thread)."""
        wire = Wire(seq=-1, type=kind, data=kind, service_ids=frozenset(), counter_ids=frozenset(), broadcast=True)
        self.loop.call_soon_threadsafe(self._deliver, [wire])

    def _deliver(self, wires: list[Wire]) -> None:
        for q in list(self.subscribers):
            if q.qsize() >= SUBSCRIBER_BUFFER - 1:
                self.subscribers.discard(q)
                q.put_nowait(_OVERFLOW)  # the client is cut off and resumes from the log on reconnect
            else:
                q.put_nowait(wires)

    def subscribe(self) -> asyncio.Queue[list[Wire] | None]:
        """A new client queue (register before reading the backlog, so nothing falls in between)."""
        q: asyncio.Queue[list[Wire] | None] = asyncio.Queue()
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[list[Wire] | None]) -> None:
        """Forget a client."""
        self.subscribers.discard(q)


Filter = Callable[[Wire], bool]


def make_filter(service: QueueService, area: str | None, service_id: str | None) -> Filter:
    """Which events a client asked for: by area (of the service or the counter) and/or service."""

    def wanted(w: Wire) -> bool:
        if w.broadcast:
            return True
        if service_id is not None and service_id not in w.service_ids:
            return False
        if area is None:
            return True
        config = service.view.state.config
        if config is None:
            return False
        areas = {s.area_id for sid in w.service_ids if (s := config.service(sid)) is not None}
        areas |= {k.area_id for cid in w.counter_ids if (k := config.counter(cid)) is not None}
        return area in areas

    return wanted


def _message(w: Wire) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=w.data, id=str(w.seq))


async def event_stream(
    service: QueueService, broadcaster: Broadcaster, after: int, wanted: Filter, *, notices: bool = False
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Backlog from the log after `after`, then live events; every seq at most once, none skipped. With `notices`,
    the broadcaster's notices too, as named events without an id (`event: <kind>`)."""
    q = broadcaster.subscribe()
    last = after
    try:
        yield ServerSentEventMessage(data=None, comment="connected", retry=2000)
        while True:  # backlog from the durable log
            backlog = await asyncio.to_thread(service.events_after, last, 1000)
            if not backlog:
                break
            for event in backlog:
                w = to_wire(event)
                last = w.seq
                if wanted(w):
                    yield _message(w)
        while True:
            try:
                wires = await asyncio.wait_for(q.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="ping")
                continue
            if wires is _OVERFLOW:
                log.warning("SSE client too slow; closing its stream at seq %s", last)
                return
            for w in wires:
                if w.seq < 0:  # a notice, not a logged event
                    if notices:
                        yield ServerSentEventMessage(data=w.data, event=w.type)
                    continue
                if w.seq <= last:
                    continue
                if w.seq != last + 1:  # cannot happen with the subscribe-first order; fill from the log anyway
                    for event in await asyncio.to_thread(service.events_after, last, w.seq - last - 1):
                        gap = to_wire(event)
                        last = gap.seq
                        if wanted(gap):
                            yield _message(gap)
                last = w.seq
                if wanted(w):
                    yield _message(w)
    finally:
        broadcaster.unsubscribe(q)
