"""Builders and a small harness for driving the pure queue engine with a fake clock and deterministic ids.

Test modules import the helpers directly (`from tests.edge.engine.conftest import Engine, ...`) because the
Hypothesis state machine cannot take pytest fixtures; the fixtures below are thin wrappers for ordinary tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count

import msgspec
import pytest
from msgspec.structs import replace

from edge.demo import demo_config
from edge.engine import commands as c
from edge.engine.decide import decide
from edge.engine.errors import DomainError
from edge.engine.evolve import evolve
from edge.engine.model import CounterState, State, Ticket, WaitingQueue
from sync.contract import Event, event_type
from sync.contract_config import BranchConfig, Counter, Service

# Monday 12 Jan 2026, 09:00 in Jakarta (UTC+7): a plain working morning.
T0 = datetime(2026, 1, 12, 2, 0, tzinfo=UTC)
# The last second before / the first second of the next Jakarta business day (local midnight = 17:00Z).
BEFORE_MIDNIGHT = datetime(2026, 1, 12, 16, 59, 59, tzinfo=UTC)
AT_MIDNIGHT = datetime(2026, 1, 12, 17, 0, 0, tzinfo=UTC)


def _encode_index(value: object) -> object:
    """The derived indexes of a State (ordered waiting queues) as plain data."""
    if isinstance(value, WaitingQueue):
        return [value.fifo, value.regular, value.priority, sorted(value.appointments)]
    raise NotImplementedError(type(value))


_sorted_encoder = msgspec.json.Encoder(order="sorted", enc_hook=_encode_index)


# --------------------------------------------------------------------------------------------------------------
# Configuration builders
# --------------------------------------------------------------------------------------------------------------


def svc(id: str, prefix: str, **changes: object) -> Service:
    """A service with sensible defaults."""
    return Service(id=id, name=id.title(), prefix=prefix, **changes)  # type: ignore[arg-type]


def ctr(id: str, services: Iterable[str], **changes: object) -> Counter:
    """A counter serving the given services."""
    return Counter(id=id, name=f"Counter {id}", services=list(services), **changes)  # type: ignore[arg-type]


def small_config(services: list[Service], counters: list[Counter], **changes: object) -> BranchConfig:
    """A minimal branch config in Asia/Jakarta."""
    return BranchConfig(
        tenant_id="t",
        branch_id="b1",
        name="Branch",
        services=services,
        counters=counters,
        **changes,  # type: ignore[arg-type]
    )


def with_service(config: BranchConfig, service_id: str, **changes: object) -> BranchConfig:
    """The config with one service's fields replaced."""
    assert config.service(service_id) is not None, service_id
    services = [replace(s, **changes) if s.id == service_id else s for s in config.services]
    return replace(config, services=services)


def with_counter(config: BranchConfig, counter_id: str, **changes: object) -> BranchConfig:
    """The config with one counter's fields replaced."""
    assert config.counter(counter_id) is not None, counter_id
    counters = [replace(k, **changes) if k.id == counter_id else k for k in config.counters]
    return replace(config, counters=counters)


def without_service(config: BranchConfig, service_id: str) -> BranchConfig:
    """The config without a service (and without it in any counter's skills)."""
    services = [s for s in config.services if s.id != service_id]
    counters = [replace(k, services=[x for x in k.services if x != service_id]) for k in config.counters]
    return replace(config, services=services, counters=counters)


# --------------------------------------------------------------------------------------------------------------
# State comparison
# --------------------------------------------------------------------------------------------------------------


def encode_state(state: State) -> bytes:
    """A canonical byte encoding of the whole state (for 'nothing changed' checks), its derived indexes included."""
    return _sorted_encoder.encode(state)


def replay(events: Iterable[Event]) -> State:
    """Rebuild a state from an event list, starting from an empty State()."""
    state = State()
    for e in events:
        evolve(state, e)
    return state


def projection(state: State) -> bytes:
    """The parts of the state a replay must reproduce exactly."""
    return _sorted_encoder.encode(
        {
            "tickets": state.tickets,
            "counters": state.counters,
            "sequences": state.sequences,
            "priority_streak": state.priority_streak,
            "order_seq": state.order_seq,
            "business_date": state.business_date,
            "config": state.config,
            "service_times": state.service_times,
            "recent_calls": state.recent_calls,
            "seq": state.seq,
        }
    )


# --------------------------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------------------------


class Engine:
    """State + fake clock + deterministic ids + the full list of applied events."""

    def __init__(self, config: BranchConfig | None = None, now: datetime = T0) -> None:
        self.state = State()
        self.now = now
        self._counter = count(1)
        self.events: list[Event] = []
        if config is not None:
            self.run(c.ApplyConfig(config=config, base_version=self.version))
            for counter in config.counters:  # counters start closed; the harness's agents are signed in
                self.run(c.SetPresence(counter_id=counter.id, status="available"))

    # -- plumbing ------------------------------------------------------------------------------------------------
    def ids(self) -> str:
        """A fresh deterministic id."""
        return f"id{next(self._counter):05d}"

    @property
    def version(self) -> int:
        """The current config version (0 before the first)."""
        return self.state.config.version if self.state.config else 0

    @property
    def config(self) -> BranchConfig:
        """The live configuration."""
        assert self.state.config is not None
        return self.state.config

    def decide(self, cmd: c.Command) -> list[Event]:
        """decide() only: the events, nothing applied."""
        return decide(self.state, cmd, self.now, self.ids)

    def apply(self, events: Iterable[Event]) -> None:
        """evolve() each event and remember it."""
        for e in events:
            evolve(self.state, e)
            self.events.append(e)

    def run(self, cmd: c.Command) -> list[Event]:
        """decide + evolve; returns the events."""
        events = self.decide(cmd)
        self.apply(events)
        return events

    def refuse(self, cmd: c.Command, code: str | None = None) -> DomainError:
        """Assert that the command is refused (with `code`) and that the state did not change."""
        before = encode_state(self.state)
        with pytest.raises(DomainError) as info:
            self.decide(cmd)
        assert encode_state(self.state) == before, "a refused command changed the state"
        if code is not None:
            assert info.value.code == code, (info.value.code, info.value.detail)
        return info.value

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move the fake clock forward."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now

    def tick_all(self, limit: int = 1000) -> list[Event]:
        """Run Tick until it returns nothing (as the single writer does); all events produced."""
        produced: list[Event] = []
        for _ in range(limit):
            events = self.run(c.Tick())
            if not events:
                return produced
            produced += events
        raise AssertionError("Tick never settled")

    # -- shortcuts -----------------------------------------------------------------------------------------------
    def ticket(self, ticket_id: str) -> Ticket:
        """The live ticket."""
        return self.state.tickets[ticket_id]

    def counter(self, counter_id: str) -> CounterState:
        """The live counter."""
        return self.state.counters[counter_id]

    def enqueue(self, service_id: str, **kw: object) -> Ticket:
        """Create a ticket; returns it."""
        (event,) = self.run(c.Enqueue(service_id=service_id, **kw))  # type: ignore[arg-type]
        assert event.ticket_id is not None
        return self.ticket(event.ticket_id)

    def call_next(self, counter_id: str) -> Ticket | None:
        """Call-next at a counter; the called ticket or None."""
        events = self.run(c.CallNext(counter_id=counter_id))
        if not events:
            return None
        event = events[-1]  # a closed counter first opens (counter.presence), then calls
        assert event.ticket_id is not None
        return self.ticket(event.ticket_id)

    def serve(self, counter_id: str) -> Ticket:
        """Call next, start and complete at a counter; the finished ticket."""
        t = self.call_next(counter_id)
        assert t is not None
        self.run(c.Start(ticket_id=t.ticket_id, counter_id=counter_id))
        self.run(c.Complete(ticket_id=t.ticket_id, counter_id=counter_id))
        return self.ticket(t.ticket_id)

    def set_presence(self, counter_id: str, status: str) -> list[Event]:
        """Change a counter's presence."""
        return self.run(c.SetPresence(counter_id=counter_id, status=status))  # type: ignore[arg-type]

    def reconfigure(self, config: BranchConfig) -> list[Event]:
        """Apply a new config based on the current version."""
        return self.run(c.ApplyConfig(config=config, base_version=self.version))

    def types(self, events: Iterable[Event] | None = None) -> list[str]:
        """Event type names."""
        return [event_type(e) for e in (self.events if events is None else events)]

    def assert_replays(self) -> None:
        """Replaying every applied event from an empty State reproduces the live state."""
        assert projection(replay(self.events)) == projection(self.state)


# --------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def demo() -> BranchConfig:
    """The demo bank branch config (teller with priority, cs with return-to-queue, loan cancel-serving)."""
    return demo_config()


@pytest.fixture
def engine(demo: BranchConfig) -> Engine:
    """An engine with the demo config applied at T0."""
    return Engine(demo)


@pytest.fixture
def fifo_config() -> BranchConfig:
    """One plain FIFO service `s` (prefix A) served by counters c1 and c2."""
    return small_config([svc("s", "A")], [ctr("c1", ["s"]), ctr("c2", ["s"])])


@pytest.fixture
def fifo(fifo_config: BranchConfig) -> Engine:
    """An engine on `fifo_config`."""
    return Engine(fifo_config)
