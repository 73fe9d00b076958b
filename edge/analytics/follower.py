"""Keeps the fact projection current: after each commit the writer folds the new events in its next transaction.

The fold runs through `QueueService.submit_store`, so it is serialised with every other write (one writer, no lock
contention) yet never inside the command's own transaction: a failing fold cannot refuse a ticket. A long backlog
(an appliance upgraded with a year of log) is folded in slices so commands interleave with it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import date
from typing import Any

from edge.analytics import facts
from edge.engine.numbering import business_date
from edge.service import QueueService
from sync.contract import Event
from sync.kpi import DEFAULT_TIMEZONE

log = logging.getLogger("qms.analytics")
SLICE = 5000  # events per writer transaction while catching up
PRUNE_EVERY_SECONDS = 3600.0


class FactFollower:
    """Schedules catch-ups of the fact projection and tells listeners (the floor's live KPIs) when they moved."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._pending = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []
        self.retention_days = facts.retention_days()
        self._pruned_at: float | None = None

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
        now = time.monotonic()
        if folded < SLICE and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_SECONDS):
            self._pruned_at = now  # the retention: at start, then at most hourly (QMS_FACTS_RETENTION_DAYS)
            config = self.service.view.state.config
            zone = config.timezone if config else DEFAULT_TIMEZONE
            today = date.fromisoformat(business_date(self.service.clock(), zone))
            if gone := facts.prune(conn, today, self.retention_days):
                log.info("facts retention: %d ticket(s) older than %d days dropped", gone, self.retention_days)
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
