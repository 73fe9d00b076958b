"""Interventions from HQ's supervisor view (US-AGENT-008): open/pause/close a counter, call next at a counter,
transfer or cancel a ticket. Each is a NATS request on `qms.cmd.<tenant>.<branch>` that the branch's single writer
runs with `hq:<user>` as actor (edge/hq_commands.py); it is refused at once, and nothing is sent, when the branch is
offline or the hub has no NATS. Every attempt — done, refused, offline, unanswered — is one `floor.intervene` entry in
the hub's audit log; the branch audits what it ran in its own."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.engine import Engine

from cloud.admin import audit
from cloud.liveness import liveness_of, missed_beats_setting
from sync.liveness import (
    HqCallNext,
    HqCancel,
    HqCommand,
    HqDeviceConfig,
    HqSetPresence,
    HqTransfer,
    command_subject,
    reply_decoder,
)

TIMEOUT_SECONDS = 5.0  # how long a branch has to answer
ID_MAX, REASON_MAX = 64, 200
PRESENCE = ("available", "break", "closed")


def presence(counter_id: str, status: str, actor: str) -> HqSetPresence:
    """Open (`available`), pause (`break`) or close a counter."""
    return HqSetPresence(counter_id=counter_id[:ID_MAX], status=status, actor=actor, request_id=_key())  # type: ignore[arg-type]


def call_next(counter_id: str, actor: str) -> HqCallNext:
    """Call the next eligible ticket to a counter."""
    return HqCallNext(counter_id=counter_id[:ID_MAX], actor=actor, request_id=_key())


def transfer(ticket_id: str, form: dict[str, Any], actor: str) -> HqTransfer | None:
    """Transfer to the form's `to_service_id` (or `to_counter_id`); None when it names neither."""
    to_service = str(form.get("to_service_id") or "").strip()[:ID_MAX] or None
    to_counter = str(form.get("to_counter_id") or "").strip()[:ID_MAX] or None
    if to_service is None and to_counter is None:
        return None
    return HqTransfer(ticket_id=ticket_id[:ID_MAX], actor=actor, to_service_id=to_service, to_counter_id=to_counter,
                      reason=_reason(form), request_id=_key())  # fmt: skip


def cancel(ticket_id: str, form: dict[str, Any], actor: str) -> HqCancel:
    """Cancel a ticket, with the form's optional reason."""
    return HqCancel(ticket_id=ticket_id[:ID_MAX], actor=actor, reason=_reason(form), request_id=_key())


DEVICE_TYPES = ("kiosk", "display", "button", "led")
CONFIG_MAX_BYTES = 64 * 1024  # the appliance's own limit for one device configuration


def device_config(device_type: str, text: str, actor: str) -> HqDeviceConfig | str:
    """A device configuration for every device of a type, from the form's JSON object; or the error key."""
    if device_type not in DEVICE_TYPES:
        return "err_device_type"
    if len(text.encode()) > CONFIG_MAX_BYTES:
        return "err_device_config"
    try:
        config = msgspec.json.decode(text or "null")
    except msgspec.DecodeError:
        return "err_device_config"
    if not isinstance(config, dict):
        return "err_device_config"
    return HqDeviceConfig(device_type=device_type, config=config, actor=actor, request_id=_key())  # type: ignore[arg-type]


def _reason(form: dict[str, Any]) -> str | None:
    return str(form.get("reason") or "").strip()[:REASON_MAX] or None


def _key() -> str:
    """A request id per intervention: a branch that got it but whose answer was lost runs it once only."""
    return f"hq-{uuid.uuid4().hex}"


def target_of(command: HqCommand) -> str:
    """What the intervention acts on, as the audit log names it."""
    if isinstance(command, HqSetPresence | HqCallNext):
        return f"counter {command.counter_id}"
    if isinstance(command, HqDeviceConfig):
        return f"devices {command.device_type}"
    return f"ticket {command.ticket_id}"


async def send(engine: Engine, nc: Any, tenant: str, branch_id: str, command: HqCommand) -> str:
    """Send one intervention; the outcome: `done`, `called:<ticket number>`, `empty:<reason>`, `pushed:<devices>`,
    `refused:<why>`, `offline` (nothing sent) or `noanswer:<error>`."""
    live = liveness_of_branch(engine, tenant, branch_id)
    if live != "online" or nc is None:
        return "offline"
    try:
        answer = await nc.request(command_subject(tenant, branch_id), msgspec.json.encode(command),
                                  timeout=TIMEOUT_SECONDS)  # fmt: skip
        reply = reply_decoder.decode(answer.data)
    except Exception as exc:  # no responder, timeout, a broken link, a garbled answer: the branch did not take it
        return f"noanswer:{type(exc).__name__}"
    if not reply.ok:
        return f"refused:{(reply.error or '')[:REASON_MAX]}"
    if isinstance(command, HqCallNext):
        return f"called:{reply.ticket_number}" if reply.ticket_number else f"empty:{reply.reason or 'empty'}"
    if isinstance(command, HqDeviceConfig):
        return f"pushed:{len(reply.versions or {})}"
    return "done"


def liveness_of_branch(engine: Engine, tenant: str, branch_id: str) -> str:
    """`online`, `offline` or `never connected`, from the branch's heartbeats."""
    with engine.connect() as conn:
        live = liveness_of(conn, [(tenant, branch_id)], datetime.now(UTC), missed_beats_setting())
    return live[(tenant, branch_id)].state


def record(
    engine: Engine, command: HqCommand, outcome: str, *, tenant: str, branch_id: str, source_ip: str | None,
    correlation_id: str | None, action: str = "floor.intervene",
) -> None:  # fmt: skip
    """The hub's audit entry for one attempt: who, which command with its fields, and how it went."""
    fields = {k: v for k, v in msgspec.structs.asdict(command).items() if k != "actor" and v is not None}
    if isinstance(command, HqDeviceConfig):  # a device configuration may hold credentials: its digest, not its text
        body = msgspec.json.encode(fields.pop("config"))
        fields |= {"config_sha256": hashlib.sha256(body).hexdigest(), "config_bytes": len(body)}
    tag = type(command).__struct_config__.tag
    with engine.begin() as conn:
        audit.record(conn, actor=command.actor, action=action, tenant=tenant, branch=branch_id,
                     target=target_of(command), source_ip=source_ip, correlation_id=correlation_id,
                     after={"command": tag, **fields, "outcome": outcome})  # fmt: skip
