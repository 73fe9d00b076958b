"""Keeps the fact projection current: after each commit the writer folds the new events in its next transaction.

The fold runs through `QueueService.submit_store`, so it is serialised with every other write (one writer, no lock
contention) yet never inside the command's own transaction: a failing fold cannot refuse a ticket. A long backlog
(an appliance upgraded with a year of log) is folded in slices so commands interleave with it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from edge.analytics import facts
from edge.service import QueueService
from sync.contract import Event

log = logging.getLogger("qms.analytics")
SLICE = 5000  # events per writer transaction while catching up


class FactFollower:
    """Schedules catch-ups of the fact projection and tells listeners (the floor's live KPIs) when they moved."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._pending = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call `listener(seq)` (from the writer thread) after the facts caught up to `seq`."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Follow commits and fold whatever the log holds beyond the cursor now (a fresh install: everything)."""
        self.service.subscribe_commits(self.on_commit)
        self._schedule()

    def on_commit(self, _events: list[Event]) -> None:
        """A commit happened: fold it soon (one pending catch-up at a time)."""
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        future = self.service.submit_store(self._step)
        future.add_done_callback(self._done)

    def _step(self, conn: sqlite3.Connection) -> tuple[int, int]:
        with self._lock:
            self._pending = False  # commits from now on need another pass
        folded = facts.catch_up(conn, SLICE)
        return folded, facts.cursor(conn)

    def _done(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            log.error("fact projection did not catch up: %s", error)
            return
        folded, seq = future.result()
        if folded >= SLICE:
            self._schedule()  # more backlog: the next slice after whatever commands queued meanwhile
        if folded:
            for listener in self._listeners:
                try:
                    listener(seq)
                except Exception:
                    log.exception("fact listener failed")
