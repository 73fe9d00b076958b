"""Fan-out to boards: each commit recomputes the board state once per shown scope and wakes only changed boards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from litestar.response import ServerSentEventMessage

from edge.service import QueueService
from edge.web.board.access import Scope
from edge.web.board.state import board_state
from sync.contract import Event
from sync.liveness import DeviceState

if TYPE_CHECKING:
    from edge.devices.audio.announcer import Announcement

log = logging.getLogger("qms.board")
PING_SECONDS = 10.0  # a named event (not a comment) so the page can tell a dead connection from a quiet one
RETRY_MS = 1000
_encode = msgspec.json.Encoder().encode


@dataclass(eq=False)
class BoardClient:
    """One connected board: the latest state to send and the announcements not yet sent."""

    scope: Scope
    state: bytes | None = None  # the next state message to send
    state_seq: int = 0
    shown: bytes = b""  # the state body (without seq) this board has, to skip redraws another area caused
    announces: deque[bytes] = field(default_factory=lambda: deque(maxlen=64))
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class BoardHub:
    """Receives commits (writer thread) and announcements (player threads); serves board streams on the loop."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[BoardClient] = set()
        self.seen: dict[Scope, datetime] = {}  # every board scope's last sign of life (HQ's device fleet)
        self._pending = False
        self._lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the app's event loop."""
        self.loop = loop

    def on_commit(self, _events: list[Event]) -> None:
        """Commit listener (writer thread): schedule one refresh on the loop, coalescing bursts."""
        with self._lock:
            if self._pending or self.loop is None:
                return
            self._pending = True
        try:
            self.loop.call_soon_threadsafe(self._refresh)
        except RuntimeError:  # the loop closed: the app is shutting down
            self._pending = False

    def _refresh(self) -> None:
        with self._lock:
            self._pending = False
        if not self.clients:
            return
        view = self.service.view
        for scope in {c.scope for c in self.clients}:
            state = board_state(view, scope)
            seq = state.pop("seq")
            body = _encode(state)
            message = _with_seq(body, seq)
            for client in self.clients:
                if client.scope == scope and client.shown != body:  # unchanged: another area's event
                    client.state, client.state_seq, client.shown = message, seq, body
                    client.wake.set()

    def announce(self, announcement: Announcement) -> None:
        """Announcement output (player thread): boards of the area (or of the ticket's service) play its audio."""
        if self.loop is None:
            return
        body = _encode(
            {
                "seq": announcement.seq,
                "url": announcement.url,
                "ticket_number": announcement.ticket_number,
                "counter_id": announcement.counter_id,
                "duration": round(announcement.duration, 3),
                "recall": announcement.recall,
            }
        )
        with contextlib.suppress(RuntimeError):  # the loop closed: the app is shutting down
            self.loop.call_soon_threadsafe(self._announce, announcement.area, body)

    def _announce(self, area: str, body: bytes) -> None:
        config = self.service.view.state.config
        for client in self.clients:
            scope = client.scope
            service = config.service(scope.id) if config and scope.kind == "service" else None
            if (scope.kind == "area" and scope.id == area) or (service is not None and service.area_id == area):
                client.announces.append(body)
                client.wake.set()

    def fleet(self) -> list[DeviceState]:
        """The boards as the branch's heartbeat reports them to HQ: one per area or service shown, online while a
        board holds its stream open (its pings every 10 s are its heartbeat), with the last time one was seen."""
        live = {client.scope for client in self.clients}
        return [
            DeviceState(
                device_id=f"board-{scope.kind}-{scope.id}"[:64],
                type="display",
                name=f"board {scope.kind} {scope.id}",
                online=scope in live,
                last_seen=at,
            )
            for scope, at in sorted(self.seen.items(), key=lambda item: (item[0].kind, item[0].id))
        ]

    async def stream(self, scope: Scope) -> AsyncGenerator[ServerSentEventMessage, None]:
        """A board's stream: its whole state first (a reconnect is a resync), then every change and announcement."""
        client = BoardClient(scope)
        self.clients.add(client)
        self.seen[scope] = datetime.now(UTC)
        try:
            state = board_state(self.service.view, scope)
            client.shown = _encode({k: v for k, v in state.items() if k != "seq"})
            yield ServerSentEventMessage(
                data=_encode(state).decode(), event="state", id=str(state["seq"]), retry=RETRY_MS
            )
            while True:
                try:
                    await asyncio.wait_for(client.wake.wait(), PING_SECONDS)
                except TimeoutError:
                    self.seen[scope] = datetime.now(UTC)
                    yield ServerSentEventMessage(data="{}", event="ping")
                    continue
                client.wake.clear()
                while client.announces:
                    yield ServerSentEventMessage(data=client.announces.popleft().decode(), event="announce")
                if client.state is not None:
                    message, client.state = client.state, None
                    yield ServerSentEventMessage(data=message.decode(), event="state", id=str(client.state_seq))
        finally:
            self.clients.discard(client)


def _with_seq(body: bytes, seq: int) -> bytes:
    """Put `seq` back into an encoded state object."""
    return b'{"seq":%d,' % seq + body[1:] if body != b"{}" else b'{"seq":%d}' % seq
