"""Issue 11: a command's cost must not depend on how many tickets wait.

Deterministic stand-in for the benchmark (tests/bench/test_queue_length.py): count how many tickets the engine
reads to decide a call-next, an enqueue and a tick and to place the new ticket in the queue. Before the ordered
queues every one of them scanned the whole waiting queue.
"""

from __future__ import annotations

from typing import Any

import pytest

from edge.engine import commands as c
from edge.engine.eta import position_of
from edge.views import Snapshots
from tests.edge.engine.conftest import Engine, ctr, small_config, svc


class CountingTickets(dict[str, Any]):
    """The ticket map, counting lookups by id."""

    reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def reads_per_command(waiting: int, priority: bool) -> dict[str, int]:
    """Tickets read by each command with `waiting` tickets in the queue."""
    engine = Engine(small_config([svc("a", "A", digits=5, priority_enabled=priority)], [ctr("1", ["a"])]))
    for i in range(waiting):
        engine.enqueue("a", priority=1 if priority and i % 3 == 0 else 0)
    counting = CountingTickets(engine.state.tickets)
    engine.state.tickets = counting
    reads = {}
    for name, command in (("enqueue", c.Enqueue(service_id="a")), ("call_next", c.CallNext(counter_id="1"))):
        counting.reads = 0
        events = engine.run(command)
        if name == "enqueue":
            ticket = engine.ticket(events[-1].ticket_id or "")
            assert position_of(engine.state, ticket, engine.now) is not None
        reads[name] = counting.reads
    counting.reads = 0
    engine.run(c.Tick())
    reads["tick"] = counting.reads
    return reads


@pytest.mark.parametrize("priority", [False, True])
def test_commands_read_the_same_few_tickets_at_20_and_at_5000_waiting(priority: bool) -> None:
    small = reads_per_command(20, priority)
    large = reads_per_command(5000, priority)
    assert large == small, f"reads grow with the queue: {small} at 20 waiting, {large} at 5,000"
    assert max(large.values()) <= 10


def test_a_view_shares_the_ticket_map_instead_of_copying_it() -> None:
    engine = Engine(small_config([svc("a", "A", digits=4)], [ctr("1", ["a"])]))
    for _ in range(2000):
        engine.enqueue("a")
    snapshots = Snapshots()
    first = snapshots.view(engine.state)
    (event,) = engine.run(c.Enqueue(service_id="a"))
    second = snapshots.view(engine.state, [event.ticket_id or ""])
    assert second._parts[1] is first._parts[1]  # the same base map: nothing copied per commit
    assert second._parts[2].keys() == {event.ticket_id}  # only what changed
    assert second.state.branch_id == "b1"
    assert "_merged" not in vars(second.state)  # reading scalars (config, branch, seq) merges no tickets
    assert len(second.state.tickets) == 2001
    assert len(first.state.tickets) == 2000  # an earlier view does not see later commits
    assert second.state.count("waiting") == 2001  # indexes are built for the view on first use
