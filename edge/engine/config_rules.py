"""Rules a new branch configuration must satisfy against the live queue before it is applied."""

from __future__ import annotations

from zoneinfo import ZoneInfoNotFoundError

from edge.engine.model import State
from edge.engine.numbering import zone
from sync.contract_config import BranchConfig, structural_errors


def check_config(state: State, config: BranchConfig) -> list[str]:
    """Every reason the configuration cannot be applied now (empty list: it can)."""
    errors = structural_errors(config)
    try:
        zone(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"unknown timezone {config.timezone!r}")
    if state.config is not None and config.branch_id != state.config.branch_id:
        errors.append(f"branch_id {config.branch_id!r} is not this branch ({state.config.branch_id!r})")
    service_ids = {s.id for s in config.services}
    counter_ids = {c.id for c in config.counters}
    for ticket in state.active():
        if ticket.service_id not in service_ids:
            errors.append(f"service {ticket.service_id!r} still has active ticket {ticket.ticket_number}")
        if ticket.target_counter is not None and ticket.target_counter not in counter_ids:
            errors.append(f"counter {ticket.target_counter!r} still has ticket {ticket.ticket_number} waiting")
    for counter_id, counter in state.counters.items():
        if counter.current_ticket is not None and counter_id not in counter_ids:
            errors.append(f"counter {counter_id!r} still holds a ticket")
    return sorted(set(errors))
