"""HQ's interventions at this branch (US-AGENT-008): a request on `qms.cmd.<tenant>.<branch>` becomes the same engine
command a local supervisor's click would, run by the single writer with `hq:<user>` as actor and written to the local
audit log in the same transaction. The engine's refusals (unknown counter or ticket, wrong state) are the answer."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from edge.devices import fleet
from edge.devices.registry import list_devices
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.service import QueueService
from sync.liveness import HqCallNext, HqCancel, HqCommand, HqDeviceConfig, HqReply, HqSetPresence, HqTransfer

EngineCommand = HqSetPresence | HqCallNext | HqTransfer | HqCancel  # the ones the queue engine runs

ACTOR_MAX = 64


def engine_command(command: EngineCommand) -> tuple[c.Command, AuditEntry]:
    """The engine command and the audit entry for one intervention (actor `hq:<user>`, `via: hq`)."""
    actor = f"hq:{command.actor}"[:ACTOR_MAX]
    request_id = command.request_id
    match command:
        case HqSetPresence(counter_id=counter_id, status=status):
            return c.SetPresence(actor=actor, request_id=request_id, counter_id=counter_id, status=status), _entry(
                actor, "counter_presence", f"counter:{counter_id}", status=status
            )
        case HqCallNext(counter_id=counter_id):
            return c.CallNext(actor=actor, request_id=request_id, counter_id=counter_id), _entry(
                actor, "call_next", f"counter:{counter_id}", counter=counter_id
            )
        case HqTransfer(ticket_id=ticket_id, to_service_id=to_service, to_counter_id=to_counter, reason=reason):
            transfer = c.Transfer(actor=actor, request_id=request_id, ticket_id=ticket_id, to_service_id=to_service,
                                  to_counter_id=to_counter, reason=reason)  # fmt: skip
            return transfer, _entry(actor, "transfer", f"ticket:{ticket_id}", ticket=ticket_id,
                                    to_service=to_service, to_counter=to_counter, reason=reason)  # fmt: skip
        case HqCancel(ticket_id=ticket_id, reason=reason):
            return c.Cancel(actor=actor, request_id=request_id, ticket_id=ticket_id, reason=reason), _entry(
                actor, "cancel", f"ticket:{ticket_id}", ticket=ticket_id, reason=reason
            )
    raise AssertionError(f"unhandled HQ command {type(command).__name__}")  # pragma: no cover - the union is closed


def _entry(actor: str, action: str, target: str, **detail: object) -> AuditEntry:
    shown = {k: v for k, v in detail.items() if v is not None}
    return AuditEntry(actor=actor, action=action, role="hq", target=target, detail={**shown, "via": "hq"})


async def run_hq_command(service: QueueService, command: HqCommand) -> HqReply:
    """Run one intervention and say how it went; for call-next, the ticket called or why none was."""
    if isinstance(command, HqDeviceConfig):
        return await push_device_config(service, command)
    engine_cmd, audit = engine_command(command)
    try:
        outcome = await asyncio.wrap_future(service.submit(engine_cmd, audit))
    except DomainError as exc:
        return HqReply(ok=False, error=str(exc))
    if isinstance(command, HqCallNext):
        ticket = outcome.response.get("ticket")
        if not ticket:
            return HqReply(ok=True, reason=str(outcome.response.get("reason") or "empty"))
        return HqReply(ok=True, ticket_number=str(ticket.get("ticket_number") or ""))
    return HqReply(ok=True)


async def push_device_config(service: QueueService, command: HqDeviceConfig) -> HqReply:
    """A new configuration version for every active device of the type, in one writer transaction with one audit
    entry per device (`device_config`, actor `hq:<user>`, `via: hq`); the versions given, by device."""
    actor = f"hq:{command.actor}"[:ACTOR_MAX]
    now = datetime.now(UTC)

    def write(conn: sqlite3.Connection) -> dict[str, int]:
        versions = {}
        for device in list_devices(conn):
            if device.status == "active" and device.type == command.device_type:
                versions[device.device_id] = fleet.set_config(conn, device.device_id, command.config, now)
                insert_audit(conn, _entry(actor, "device_config", f"device:{device.device_id}",
                                          version=versions[device.device_id]), now)  # fmt: skip
        return versions

    try:
        versions = await asyncio.wrap_future(service.submit_store(write))
    except DomainError as exc:
        return HqReply(ok=False, error=str(exc))
    return HqReply(ok=True, versions=versions)
