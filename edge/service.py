"""The single writer: commands -> decide -> append + project in ONE transaction -> publish after commit."""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import uuid_utils

from edge import pii
from edge.audit import AuditEntry, with_ticket
from edge.audit import insert as insert_audit
from edge.engine import Ticket, decide, evolve
from edge.engine import commands as c
from edge.engine.decide import next_deadline, no_ticket_reason
from edge.engine.errors import DomainError
from edge.engine.eta import position_of
from edge.engine.model import CounterState
from edge.store import projections
from edge.store.db import connect, open_database
from edge.store.log import append, last_position, read_events, seal
from edge.views import Snapshots, View, counter_view, ticket_view
from sync.contract import ConfigApplied, Event, TicketCreated
from sync.observability import CorrelationBook, current_correlation_id

log = logging.getLogger("qms.writer")

MAX_BATCH = 256  # commands per transaction (group commit)
SHRED_EVERY = timedelta(minutes=1)  # how often the writer looks for contact keys past their retention
REQUEST_ID_RETENTION = timedelta(hours=24)  # how long a request_id is remembered for idempotent replays
PRUNE_EVERY_BATCHES = 1000
IDLE_WAKE_SECONDS = 1.0  # the writer checks timers (auto no-show, auto-call) at least this often
_STOP = object()
_encoder = msgspec.json.Encoder()


def utcnow() -> datetime:
    """The wall clock in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A UUIDv7: unique and time-ordered."""
    return str(uuid_utils.uuid7())


@dataclass
class Outcome:
    """What a command did: the API response, the committed events, and whether it was a replayed request."""

    response: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    replayed: bool = False


@dataclass
class _Work:
    """One queued unit: an engine command, or a store function run in the writer's transaction."""

    future: concurrent.futures.Future[Any]
    command: c.Command | None = None
    store_fn: Callable[[sqlite3.Connection], Any] | None = None
    audit: AuditEntry | None = None  # written in the command's transaction when it succeeds
    correlation_id: str = ""  # the submitting request's id: noted beside the seqs it wrote, for the relay


class RequestIdReused(DomainError):
    """The same request_id came with a different command."""

    status = 422
    code = "request_id_reused"


class QueueService:
    """Owns the engine state and the only write connection; everything else reads views or the log."""

    def __init__(
        self, data_dir: Path, *, clock: Callable[[], datetime] = utcnow, ids: Callable[[], str] = new_id
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.ids = ids
        self._queue: queue.Queue[Any] = queue.Queue()
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._thread: threading.Thread | None = None
        self._conn = open_database(data_dir)
        self._read = connect(data_dir / "qms.sqlite3", readonly=True)
        self._read_lock = threading.Lock()
        self.state = projections.load_state(self._conn)
        self._ensure_consistent()
        self._written_counters: dict[str, CounterState] = dict(self.state.counters)
        self._snapshots = Snapshots()
        self.view: View = self._snapshots.view(self.state, at=self.clock())
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        self.batches = 0  # statistics for `/metrics` and the benchmarks
        self.commands = 0
        self.commit_seconds = 0.0
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.correlations = CorrelationBook()  # seq -> the request that wrote it (the relay's NATS header)
        self.contact_retention = pii.retention()  # contacts are sealed in the log and shredded after this
        self._next_shred = self.clock()  # the writer's contact sweep runs at most once a minute
        self._checkpoint_after_commit = False  # a shred: truncate the WAL so no old page keeps a key
        self._conn.execute("PRAGMA secure_delete = ON")  # deleted rows (keys, pruned requests) are overwritten

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def _ensure_consistent(self) -> None:
        """If the projections lag the log (they never should), rebuild them from the log."""
        seq, last_hash = last_position(self._conn)
        if seq != self.state.seq or (seq and last_hash != self.state.last_hash):
            from edge.store import rebuild

            log.warning("projections at seq %s but log at %s: rebuilding", self.state.seq, seq)
            result = rebuild.replay(self._conn)
            rebuild.write(self._conn, result)
            self.state = projections.load_state(self._conn)

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qms-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish queued work and stop the writer."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._conn.close()
        self._read.close()

    def subscribe_commits(self, listener: Callable[[list[Event]], None]) -> None:
        """Call `listener(events)` from the writer thread after each commit (never before)."""
        self._listeners.append(listener)

    # ---- submitting work -------------------------------------------------------------------------------------

    def submit(self, command: c.Command, audit: AuditEntry | None = None) -> concurrent.futures.Future[Outcome]:
        """Queue a command; the future resolves after its transaction committed (or with its DomainError).

        With `audit`, the entry is written in the same transaction when the command succeeds (not on a replay).
        """
        future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        self._queue.put(_Work(future, command=command, audit=audit, correlation_id=current_correlation_id()))
        return future

    def execute(self, command: c.Command, timeout: float = 30.0) -> Outcome:
        """Run a command and wait for it (for the CLI and tests; the web awaits `submit`)."""
        if self._thread is None:
            self.start()
        return self.submit(command).result(timeout)

    def submit_store(self, fn: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future[Any]:
        """Run `fn(conn)` inside the writer's transaction (users and other non-queue writes)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put(_Work(future, store_fn=fn))
        return future

    def shred_contacts(self) -> concurrent.futures.Future[list[str]]:
        """Run the contact sweep now (it also runs by itself at most once a minute); resolves to the tickets whose
        keys were erased, after the commit and the WAL truncation."""
        return self.submit_store(self._shred)

    def _shred(self, conn: sqlite3.Connection) -> list[str]:
        """Erase due contact keys, scrub the tickets in memory as in the projection (inside the transaction)."""
        now = self.clock()
        self._next_shred = now + SHRED_EVERY
        shredded = pii.shred(conn, now)
        if shredded:
            pii.scrub_state(self.state, shredded)
            self._checkpoint_after_commit = True
        return shredded

    def _due_sweep(self, now: datetime) -> list[_Work]:
        """The contact sweep as work for an otherwise idle round, when it is due."""
        return [_Work(concurrent.futures.Future(), store_fn=self._shred)] if now >= self._next_shred else []

    def _after_shred(self) -> None:
        """After a commit that erased keys: truncate the WAL (its old frames held them) and refresh the views."""
        if self._checkpoint_after_commit:
            self._checkpoint_after_commit = False
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.view = self._snapshots.view(self.state, at=self.clock())

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` on the shared read-only connection (WAL: never blocks the writer)."""
        with self._read_lock:
            return fn(self._read)

    def events_after(self, after: int, limit: int = 1000) -> list[Event]:
        """Committed events with seq > after, from the log, sealed contacts opened while their keys are kept (as the
        commit listeners get them; the stream masks them, device payloads drop them)."""

        def opened(conn: sqlite3.Connection) -> list[Event]:
            events = read_events(conn, after, limit)
            keys = pii.keys_of(conn, [e.ticket_id for e in events if isinstance(e, TicketCreated) and e.ticket_id])
            return [pii.opened(e, keys) for e in events]

        return self.read(opened)  # type: ignore[no-any-return,unused-ignore]

    # ---- the writer thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Work] = []
            try:
                first = self._queue.get(timeout=self._wake_after())
                if first is _STOP:
                    stopping = True
                else:
                    batch.append(first)
            except queue.Empty:
                pass
            while batch and len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            try:
                self._process(batch)
            except Exception:  # the writer must survive anything; the failing work got its exception
                log.exception("writer batch failed")

    def _wake_after(self) -> float:
        deadline = next_deadline(self.state)
        if deadline is None:
            return IDLE_WAKE_SECONDS
        return min(IDLE_WAKE_SECONDS, max(0.0, (deadline - self.clock()).total_seconds()))

    def _process(self, batch: list[_Work]) -> None:
        """One transaction for the whole batch plus due timers; on a storage error retry items one by one."""
        now = self.clock()
        started = time.perf_counter()
        results: list[tuple[_Work, Any, BaseException | None]] = []
        committed: list[Event] = []
        touched: dict[str, Ticket] = {}
        if not batch:
            self._sync_external()
            batch = self._due_sweep(now)
            if not batch and not decide(self.state, c.Tick(), now, self.ids):
                return
        self._conn.execute("BEGIN IMMEDIATE")
        self._sync_external()
        try:
            results.extend(self._do(work, now, committed, touched) for work in batch)
            self._ticks(now, committed, touched)
            if self.batches % PRUNE_EVERY_BATCHES == 0:
                cutoff = (now - REQUEST_ID_RETENTION).isoformat()
                self._conn.execute("DELETE FROM requests WHERE created_at < ?", (cutoff,))
            self._project(committed, touched)
            self._conn.execute("COMMIT")
            self._after_shred()
            self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except Exception as exc:
            self._conn.execute("ROLLBACK")
            self.state = projections.load_state(self._conn)
            self._written_counters = dict(self.state.counters)
            if len(batch) > 1:
                for work in batch:
                    self._process([work])
                return
            log.exception("storage error, command not applied")
            for work in batch:
                work.future.set_exception(exc)
            return
        self.batches += 1
        self.commands += len(batch)
        self.commit_seconds += time.perf_counter() - started
        if committed:
            self.view = self._snapshots.view(self.state, touched, now)
        for work, result, error in results:
            if work.command is not None:
                outcome = "refused" if error else "replayed" if result.replayed else "ok"
                self.outcomes[(type(work.command).__name__, outcome)] += 1
            if error is not None:
                work.future.set_exception(error)
            else:
                if isinstance(result, Outcome):
                    self.correlations.note([event.seq for event in result.events], work.correlation_id)
                work.future.set_result(result)
        if committed:
            for listener in self._listeners:
                try:
                    listener(committed)
                except Exception:
                    log.exception("commit listener failed")

    def _sync_external(self) -> None:
        """Another process (the `qms-edge` CLI) committed: reload the state and publish its events."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        before = self.state.seq
        self.state = projections.load_state(self._conn)
        self._written_counters = dict(self.state.counters)
        self.view = self._snapshots.view(self.state, at=self.clock())
        external = read_events(self._conn, before)
        if external:
            log.info("picked up %d event(s) written by another process", len(external))
            for listener in self._listeners:
                listener(external)

    def _do(
        self, work: _Work, now: datetime, committed: list[Event], touched: dict[str, Ticket]
    ) -> tuple[_Work, Any, BaseException | None]:
        if work.store_fn is not None:
            self._conn.execute("SAVEPOINT store_fn")
            try:
                result = work.store_fn(self._conn)
            except Exception as exc:
                self._conn.execute("ROLLBACK TO store_fn")
                self._conn.execute("RELEASE store_fn")
                return work, None, exc
            self._conn.execute("RELEASE store_fn")
            return work, result, None
        assert work.command is not None
        try:
            outcome = self._command(work.command, now, committed, touched)
        except DomainError as exc:
            return work, None, exc
        if work.audit is not None and not outcome.replayed:
            entry = with_ticket(work.audit, outcome.response)
            insert_audit(self._conn, entry, now, outcome.events[-1].seq if outcome.events else None)
        return work, outcome, None

    def _command(self, cmd: c.Command, now: datetime, committed: list[Event], touched: dict[str, Ticket]) -> Outcome:
        fingerprint = None
        if cmd.request_id:
            fingerprint = hashlib.sha256(_encoder.encode(msgspec.structs.replace(cmd, request_id=None))).hexdigest()
            row = self._conn.execute(
                "SELECT fingerprint, response FROM requests WHERE request_id = ?", (cmd.request_id,)
            ).fetchone()
            if row is not None:
                if row[0] != fingerprint:
                    raise RequestIdReused(f"request_id {cmd.request_id!r} was already used for another command")
                return Outcome(msgspec.json.decode(row[1]), [], replayed=True)
        events = decide(self.state, cmd, now, self.ids)
        sealed = self._apply(events, committed, touched)
        response = self._respond(cmd, sealed, now)
        if cmd.request_id and sealed:
            self._conn.execute(
                "INSERT INTO requests (request_id, fingerprint, response, seq, created_at) VALUES (?, ?, ?, ?, ?)",
                (cmd.request_id, fingerprint, _encoder.encode(response), sealed[-1].seq, now.isoformat()),
            )
        return Outcome(response, sealed)

    def _apply(self, events: list[Event], committed: list[Event], touched: dict[str, Ticket]) -> list[Event]:
        """Seal, append and evolve events (inside the open transaction)."""
        sealed_events = []
        now = self.clock()
        for event in events:
            stored = pii.seal_for_log(self._conn, event, now, self.contact_retention)
            sealed, body = seal(
                stored, branch_id=self.state.branch_id, seq=self.state.seq + 1, prev_hash=self.state.last_hash
            )
            append(self._conn, sealed, body)
            # In memory (engine, commit listeners) the contact stays in clear while its key is kept; the log holds
            # only the sealed copy.
            if stored is not event:
                sealed = pii.with_contact_of(sealed, event)
            evolve(self.state, sealed)
            if sealed.ticket_id is not None and sealed.ticket_id in self.state.tickets:
                touched[sealed.ticket_id] = self.state.tickets[sealed.ticket_id]
            if isinstance(sealed, ConfigApplied):
                projections.write_config(self._conn, sealed.config, sealed.seq)
            sealed_events.append(sealed)
        committed.extend(sealed_events)
        return sealed_events

    def _ticks(self, now: datetime, committed: list[Event], touched: dict[str, Ticket]) -> None:
        """Due auto no-shows and auto-calls, decided one step at a time as each changes the state."""
        for _ in range(1000):  # bounded: each step ends a `called` ticket or fills an idle counter
            events = decide(self.state, c.Tick(), now, self.ids)
            if not events:
                return
            self._apply(events, committed, touched)

    def _project(self, committed: list[Event], touched: dict[str, Ticket]) -> None:
        """Write the projections the transaction's events changed."""
        if not committed:
            return
        for event in committed:
            if event.ticket_id is not None and event.ticket_id in self.state.tickets:
                touched.setdefault(event.ticket_id, self.state.tickets[event.ticket_id])
        projections.write_tickets(self._conn, touched.values())
        changed = [c for cid, c in self.state.counters.items() if self._written_counters.get(cid) is not c]
        removed = self._written_counters.keys() - self.state.counters.keys()
        projections.write_counters(self._conn, changed, removed)
        projections.write_bookkeeping(self._conn, self.state)
        self._written_counters = dict(self.state.counters)

    def _respond(self, cmd: c.Command, events: list[Event], now: datetime) -> dict[str, Any]:
        """The API response of a command, computed on the state right after its events."""
        state = self.state
        match cmd:
            case c.CallNext():
                if not events:
                    return {"ticket": None, "reason": no_ticket_reason(state, cmd.counter_id, now)}
                return {"ticket": self._ticket(events[-1].ticket_id, now), "reason": None}
            case c.SetPresence():
                return counter_view(state, state.counters[cmd.counter_id])
            case c.ApplyConfig():
                return {"version": state.config.version if state.config else 0}
            case c.LeaseNumbers():
                return msgspec.to_builtins(events[-1]) if events else {}
            case _:
                ticket_id = events[-1].ticket_id if events else getattr(cmd, "ticket_id", None)
                return self._ticket(ticket_id, now) or {}

    def _ticket(self, ticket_id: str | None, now: datetime) -> dict[str, Any] | None:
        if ticket_id is None or ticket_id not in self.state.tickets:
            return None
        ticket = self.state.tickets[ticket_id]
        return ticket_view(ticket, position_of(self.state, ticket, now))


def measure_raw_commit_rate(path: Path, seconds: float = 2.0) -> float:
    """Single-row commits/s with WAL + synchronous=FULL on this disk: the anchor for the engine benchmark."""
    conn = connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, v TEXT)")
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO probe (v) VALUES ('x')")
        conn.execute("COMMIT")
        count += 1
    conn.close()
    return count / (time.perf_counter() - started)
