"""The dispatcher: claims due outbox rows, sends each through its tenant's provider, records the result (all state
in the database: `cloud.notify.outbox`), purges contacts whose retention ended and sweeps early delivery reports
whose sends were never recorded. One runs in every hub replica;
`FOR UPDATE SKIP LOCKED` shares the rows between them on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.notify import contacts, metrics, outbox, reports, triggers
from cloud.notify.providers import REGISTRY
from cloud.notify.providers.base import Provider, SendResult
from cloud.store import writer_turn
from sync.observability import correlation_scope

log = logging.getLogger("qms.notify")
# The safety net only: the consumer's commit wakes the dispatcher at once (`_watch_commits`); the poll finds retries
# falling due and rows other replicas' consumers wrote.
POLL_SECONDS = 0.5
PURGE_EVERY_SECONDS = 300.0
BATCH = 50
ROUNDS = 4  # batches on their way at once
PROVIDER_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class Dispatcher:
    """The loop: `start()` with the app, `stop()` at shutdown; `run_once()` is one claim-send-record round."""

    def __init__(
        self,
        engine: Engine,
        keys_dir: Path | None = None,
        *,
        poll: float = POLL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.keys_dir = keys_dir
        self.poll = poll
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=PROVIDER_TIMEOUT)
        self._providers: dict[tuple[str, str, str], Provider] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_purge = 0.0
        self._closing: list[Provider] = []
        self._checkin: Callable[[Any, Any], None] | None = None

    def wake(self) -> None:
        """Look for due rows now (a replay, a test) instead of at the next poll."""
        self._wake.set()

    def _watch_commits(self) -> None:
        """Wake up when a transaction that owed messages (`triggers.OWED` on its connection) has committed: the pool
        gets the connection back only after `engine.begin()` committed, so the rows are visible when the claim looks.
        This, not the poll, is what keeps "called → provider" within the latency budget."""
        loop = asyncio.get_running_loop()

        def checked_in(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(triggers.OWED, False):
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to wake
                    loop.call_soon_threadsafe(self._wake.set)

        self._checkin = checked_in
        sa.event.listen(self.engine, "checkin", checked_in)

    def _provider(self, job: outbox.Job) -> Provider | None:
        """The tenant's provider for the job's channel, built once per settings version."""
        key = (job.tenant, job.channel, job.settings_version)
        if key not in self._providers:
            module = REGISTRY.get(job.provider)
            if module is None:
                return None
            for old in [k for k in self._providers if k[:2] == key[:2]]:  # settings changed: drop the old one
                self._closing.append(self._providers.pop(old))
            self._providers[key] = module.build(job.settings, self.client)
        return self._providers[key]

    async def _attempt(self, job: outbox.Job) -> SendResult:
        """One attempt, its log lines under the causing event's correlation id (or a fresh one: a message owed
        without one); a provider that raises is a retry (its bug must not lose the message)."""
        with correlation_scope(job.message.correlation_id):
            return await self._send(job)

    async def _send(self, job: outbox.Job) -> SendResult:
        try:
            provider = self._provider(job)
            if provider is None:
                return SendResult("permanent", code="unknown_provider", reason=f"no provider {job.provider!r}")
            return await provider.send(job.message)
        except Exception as exc:  # a provider's bug or bad settings: never crash the loop, never log the contact
            log.warning("notify: provider %s failed: %s", job.provider, type(exc).__name__)
            return SendResult("retry", code="provider_error", reason=type(exc).__name__)

    async def claim(self, *, idle_check: bool = True) -> list[outbox.Job]:
        """The rows due now, claimed under a lease. An idle check comes first (one indexed read, no row locks) unless
        a commit that wrote due rows woke us: then there is work for certain, and the check was one more
        transaction on the consumer's way (on SQLite every transaction takes the write lock)."""
        now = self.clock()
        if idle_check and not await asyncio.to_thread(outbox.has_due, self.engine, now):
            return []
        return await asyncio.to_thread(outbox.claim, self.engine, now, BATCH, self.keys_dir)

    async def deliver(self, jobs: list[outbox.Job]) -> None:
        """Send claimed rows concurrently and record the results in one transaction."""
        results = await asyncio.gather(*(self._attempt(job) for job in jobs))
        statuses = await asyncio.to_thread(outbox.record_many, self.engine, list(zip(jobs, results, strict=True)),
                                           self.clock())  # fmt: skip
        for job, result, status in zip(jobs, results, statuses, strict=True):
            metrics.count_attempt(job.channel, result.outcome, status)
        await self._close(self._closing)

    async def run_once(self) -> int:
        """One claim-send-record round; returns how many rows were attempted."""
        jobs = await self.claim()
        if jobs:
            await self.deliver(jobs)
        return len(jobs)

    async def _close(self, providers: list[Provider]) -> None:
        """Let providers with connections of their own (the SMTP pool) close them."""
        while providers:
            close = getattr(providers.pop(), "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # closing is best effort: the peer may be gone already
                    await close()

    async def purge(self) -> int:
        """Delete contacts past their retention."""

        def run() -> int:
            with writer_turn(self.engine), self.engine.begin() as conn:
                return contacts.purge(conn, self.clock())

        return await asyncio.to_thread(run)

    async def sweep(self) -> int:
        """Delete early delivery reports whose sends were never recorded (`reports.sweep`)."""
        return await asyncio.to_thread(reports.sweep, self.engine, self.clock())

    async def run(self) -> None:
        """Until cancelled: claim what is due while fewer than ROUNDS batches are on their way (a slow provider
        call does not hold up the next batch; claimed rows are leased, so rounds never overlap), then wait for the
        next poll, a finished round or a wake-up."""
        rounds: set[asyncio.Task[None]] = set()
        try:
            while True:
                woken = self._wake.is_set()
                self._wake.clear()  # before the claim: a commit during it must still wake the next wait
                claimed = 0
                try:
                    if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
                        self._last_purge = time.monotonic()
                        if purged := await self.purge():
                            log.info("notify: purged the contacts of %d tickets past their retention", purged)
                        await self.sweep()
                    if len(rounds) < ROUNDS and (jobs := await self.claim(idle_check=not woken)):
                        claimed = len(jobs)
                        task = asyncio.create_task(self._round(jobs))
                        rounds.add(task)
                        task.add_done_callback(rounds.discard)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store away for a moment: try again at the next poll
                    log.warning("notify: dispatch round failed: %s: %s", type(exc).__name__, str(exc)[:200])
                if claimed and len(rounds) < ROUNDS:
                    continue
                waiters = [asyncio.ensure_future(self._wake.wait()), *rounds]
                await asyncio.wait(waiters, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
                waiters[0].cancel()
        finally:
            for task in rounds:
                task.cancel()  # their rows keep their lease and are sent again by the next dispatcher

    async def _round(self, jobs: list[outbox.Job]) -> None:
        try:
            await self.deliver(jobs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recording failed (the store away): the lease brings the rows back
            log.warning("notify: recording a round failed: %s: %s", type(exc).__name__, str(exc)[:200])

    def start(self) -> None:
        """Run the loop in the background."""
        self._watch_commits()
        self._task = asyncio.create_task(self.run(), name="qms-notify-dispatcher")

    async def stop(self) -> None:
        """Stop the loop (a row being sent keeps its lease and is recovered by the next dispatcher) and close."""
        if self._checkin is not None:
            sa.event.remove(self.engine, "checkin", self._checkin)
            self._checkin = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close([*self._providers.values(), *self._closing])
        self._providers.clear()
        await self.client.aclose()


def app_dispatcher(state: Any) -> Dispatcher | None:
    """The app's dispatcher (None before the lifespan started it)."""
    found = state.get("notify_dispatcher")
    return found if isinstance(found, Dispatcher) else None
