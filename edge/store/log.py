"""The append-only event log: gapless per-branch `seq`, SHA-256 hash chain, reads and verification."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from sync.contract import (
    GENESIS_HASH,
    ConfigApplied,
    Event,
    canonical_bytes,
    chain_hash,
    event_decoder,
    event_type,
)


def seal(event: Event, *, branch_id: str, seq: int, prev_hash: str) -> tuple[Event, bytes]:
    """Give the event its place in the chain: branch, seq, prev_hash and hash; returns it and the hashed body."""
    if isinstance(event, ConfigApplied) and not branch_id:
        branch_id = event.config.branch_id
    placed = msgspec.structs.replace(event, branch_id=branch_id, seq=seq, prev_hash=prev_hash or GENESIS_HASH)
    body = canonical_bytes(placed)
    return msgspec.structs.replace(placed, hash=chain_hash(placed.prev_hash, body)), body


def append(conn: sqlite3.Connection, event: Event, body: bytes) -> None:
    """Insert one sealed event (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO events (seq, event_id, type, occurred_at, ticket_id, request_id, actor, body, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.seq,
            event.event_id,
            event_type(event),
            event.occurred_at.isoformat(),
            event.ticket_id,
            event.request_id,
            event.actor,
            body,
            event.prev_hash,
            event.hash,
        ),
    )


def last_position(conn: sqlite3.Connection) -> tuple[int, str]:
    """The newest seq and hash in the log (0 and the genesis hash when empty)."""
    row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def decode_row(body: bytes, hash_: str) -> Event:
    """An event as stored, with its hash put back."""
    return msgspec.structs.replace(event_decoder.decode(body), hash=hash_)


def read_events(conn: sqlite3.Connection, after: int = 0, limit: int | None = None) -> list[Event]:
    """Events with seq > after, in order."""
    sql = "SELECT body, hash FROM events WHERE seq > ? ORDER BY seq"
    params: tuple[int, ...] = (after,)
    if limit is not None:
        sql += " LIMIT ?"
        params = (after, limit)
    return [decode_row(body, h) for body, h in conn.execute(sql, params)]


def iter_events(conn: sqlite3.Connection, after: int = 0, batch: int = 5000) -> Iterator[Event]:
    """All events after `after`, streamed in batches (bounded memory)."""
    while True:
        chunk = read_events(conn, after, batch)
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq


@dataclass(frozen=True)
class ChainReport:
    """Outcome of `verify`: how many events were checked and the first problem, if any."""

    checked: int
    last_seq: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the whole chain is intact and gapless."""
        return self.error is None


def verify_chain(conn: sqlite3.Connection) -> ChainReport:
    """Check every event: seq gapless from 1, prev_hash links, hash = SHA-256(prev_hash + body), body agrees."""
    prev_hash, expected, checked = GENESIS_HASH, 1, 0
    rows = conn.execute("SELECT seq, body, prev_hash, hash FROM events ORDER BY seq")
    for seq, raw, stored_prev, stored_hash in rows:
        body = raw if isinstance(raw, bytes) else str(raw).encode()  # a tampered row may come back as TEXT
        error = None
        if seq != expected:
            error = f"gap: expected seq {expected}, found {seq}"
        elif stored_prev != prev_hash:
            error = f"seq {seq}: prev_hash does not link to seq {seq - 1}"
        elif chain_hash(stored_prev, body) != stored_hash:
            error = f"seq {seq}: hash does not match its content"
        else:
            event = event_decoder.decode(body)
            if event.seq != seq or event.prev_hash != stored_prev:
                error = f"seq {seq}: body disagrees with its row"
        if error:
            return ChainReport(checked, expected - 1, error)
        prev_hash, expected, checked = stored_hash, seq + 1, checked + 1
    projected = conn.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
    projected_seq = msgspec.json.decode(projected[0]).get("seq", 0) if projected else 0
    if projected_seq > expected - 1:  # a cut-off tail leaves a valid chain; the projections remember more
        return ChainReport(
            checked, expected - 1, f"the log ends at seq {expected - 1} but seq {projected_seq} was applied"
        )
    return ChainReport(checked, expected - 1)
