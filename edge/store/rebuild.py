"""Rebuild the projections by replaying the event log through the engine's evolve, and compare with the live ones."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import msgspec

from edge import pii
from edge.engine import State, Ticket, evolve
from edge.engine.model import bookkeeping_of
from edge.store import projections
from edge.store.log import iter_events
from sync.contract import ConfigApplied
from sync.contract_config import BranchConfig

_encoder = msgspec.json.Encoder()


@dataclass
class Replay:
    """The outcome of replaying the log: final state, the last version of every ticket, every config."""

    state: State
    tickets: dict[str, Ticket] = field(default_factory=dict)
    configs: list[tuple[BranchConfig, int]] = field(default_factory=list)
    events: int = 0


def replay(conn: sqlite3.Connection) -> Replay:
    """Replay every event from an empty state (sealed contacts opened with the keys still kept: edge.pii)."""
    result = Replay(State())
    state = result.state
    keys = pii.keys_of(conn)
    for event in iter_events(conn):
        evolve(state, pii.opened(event, keys))
        result.events += 1
        if event.ticket_id is not None and event.ticket_id in state.tickets:
            result.tickets[event.ticket_id] = state.tickets[event.ticket_id]
        if isinstance(event, ConfigApplied):
            result.configs.append((event.config, event.seq))
    return result


def differences(conn: sqlite3.Connection, result: Replay) -> list[str]:
    """Where the stored projections differ from the replayed ones (empty: identical)."""
    diffs: list[str] = []
    stored = projections.all_ticket_rows(conn)
    for ticket_id, ticket in result.tickets.items():
        if stored.get(ticket_id) != _encoder.encode(ticket):
            diffs.append(f"ticket {ticket_id} ({ticket.ticket_number}) differs")
    diffs += [f"ticket {tid} is not in the log" for tid in stored.keys() - result.tickets.keys()]
    live = projections.load_state(conn)
    for cid in live.counters.keys() | result.state.counters.keys():
        if live.counters.get(cid) != result.state.counters.get(cid):
            diffs.append(f"counter {cid} differs")
    if msgspec.to_builtins(bookkeeping_of(live)) != msgspec.to_builtins(bookkeeping_of(result.state)):
        diffs.append("engine bookkeeping (sequences, streaks, service times, seq) differs")
    return diffs


def write(conn: sqlite3.Connection, result: Replay) -> None:
    """Replace every projection with the replayed one, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        projections.clear(conn)
        projections.write_tickets(conn, result.tickets.values())
        projections.write_counters(conn, result.state.counters.values())
        for config, seq in result.configs:
            projections.write_config(conn, config, seq)
        projections.write_bookkeeping(conn, result.state)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
