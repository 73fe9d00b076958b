"""Rules a new branch configuration must satisfy against the live queue before it is applied."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfoNotFoundError

from edge.engine.model import State
from edge.engine.numbering import business_date, zone
from sync.contract_config import BranchConfig, structural_errors


def check_config(state: State, config: BranchConfig, now: datetime) -> list[str]:
    """Every reason the configuration cannot be applied now (empty list: it can)."""
    errors = structural_errors(config)
    errors += _prefixes_reused_today(state, config, now)
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


def _prefixes_reused_today(state: State, config: BranchConfig, now: datetime) -> list[str]:
    """A prefix that numbered tickets today may not pass to another service before tomorrow (no twin numbers)."""
    if state.config is None or state.business_date != business_date(now, state.config.timezone):
        return []
    errors = []
    for service_id in {*state.sequences, *(lease.service_id for lease in state.leases.values())}:
        old = state.config.service(service_id)
        owner = next((s for s in config.services if old is not None and s.prefix == old.prefix), None)
        if old is not None and owner is not None and owner.id != service_id:
            errors.append(
                f"service {owner.id!r}: prefix {old.prefix!r} numbered {service_id!r} tickets today; "
                "it can be reassigned from tomorrow"
            )
    return errors
