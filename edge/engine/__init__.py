"""The pure queue engine: decide(state, command, now, ids) -> events and evolve(state, event) -> state."""

from edge.engine.commands import (
    ApplyConfig,
    CallNext,
    CallTicket,
    Cancel,
    Command,
    Complete,
    Enqueue,
    Hold,
    NoShow,
    Recall,
    SetPresence,
    Start,
    Tick,
    Transfer,
    Unhold,
)
from edge.engine.decide import Ids, decide
from edge.engine.errors import DomainError
from edge.engine.evolve import evolve
from edge.engine.model import ACTIVE_STATUSES, CounterState, State, Ticket

__all__ = [
    "ACTIVE_STATUSES",
    "ApplyConfig",
    "CallNext",
    "CallTicket",
    "Cancel",
    "Command",
    "Complete",
    "CounterState",
    "DomainError",
    "Enqueue",
    "Hold",
    "Ids",
    "NoShow",
    "Recall",
    "SetPresence",
    "Start",
    "State",
    "Tick",
    "Ticket",
    "Transfer",
    "Unhold",
    "decide",
    "evolve",
]
