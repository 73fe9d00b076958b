"""Liveness of the cloud link: the branch's heartbeat on its own subject, and the link state and errors in words.

A branch publishes a `Heartbeat` every `interval` seconds on `qms.hb.<tenant>.<branch>` with core NATS (never the
event log: a beat must not grow the append-only log). The hub records the newest beat per (tenant, branch) and calls
a branch offline after a few missed beats. The same module turns what went wrong on the link (refused connections,
unknown credentials, permission violations) into one sentence a technician can act on, never a bare `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import Struct
from nats.aio.client import Client as NatsClient

from sync.relay import check_token

log = logging.getLogger("qms.liveness")

HEARTBEAT_PREFIX = "qms.hb"
COMMAND_PREFIX = "qms.cmd"  # HQ's interventions, request/reply to the branch (supervisor from HQ, US-AGENT-008)
DEFAULT_INTERVAL = 30.0
DEFAULT_MISSED_BEATS = 3


def heartbeat_subject(tenant: str, branch_id: str) -> str:
    """`qms.hb.<tenant>.<branch>`: the only subject a branch may publish its heartbeat to."""
    return f"{HEARTBEAT_PREFIX}.{check_token('tenant', tenant)}.{check_token('branch', branch_id)}"


def command_subject(tenant: str, branch_id: str) -> str:
    """`qms.cmd.<tenant>.<branch>`: HQ's requests to one branch; only that branch may subscribe, and it answers."""
    return f"{COMMAND_PREFIX}.{check_token('tenant', tenant)}.{check_token('branch', branch_id)}"


class HqSetPresence(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="action",
                    tag="counter.presence"):  # fmt: skip
    """Open, pause or close a counter from HQ's supervisor view."""

    counter_id: str
    status: Literal["available", "busy", "break", "closed"]
    actor: str  # the HQ username; the branch runs it as `hq:<user>`
    request_id: str | None = None  # the branch's idempotency key: a repeated request answers the first outcome


class HqCallNext(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="action",
                 tag="counter.call_next"):  # fmt: skip
    """Call the next eligible ticket to a counter, as its agent's "call next" would."""

    counter_id: str
    actor: str
    request_id: str | None = None


class HqTransfer(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="action",
                 tag="ticket.transfer"):  # fmt: skip
    """Move a ticket to another service (or to wait for one counter)."""

    ticket_id: str
    actor: str
    to_service_id: str | None = None
    to_counter_id: str | None = None
    reason: str | None = None
    request_id: str | None = None


class HqCancel(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="action",
               tag="ticket.cancel"):  # fmt: skip
    """Cancel a ticket (the branch's rules decide which states allow it)."""

    ticket_id: str
    actor: str
    reason: str | None = None
    request_id: str | None = None


class HqDeviceConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="action",
                     tag="device.config"):  # fmt: skip
    """Give every active device of one type at the branch a new configuration version (US-ADMIN-010, pushed by HQ to
    a group of branches); each device fetches, applies and acknowledges it as usual, and the heartbeat carries the
    acknowledgements back to HQ's fleet page."""

    device_type: Literal["kiosk", "display", "button", "led"]
    config: dict[str, Any]
    actor: str
    request_id: str | None = None


# An intervention from HQ's supervisor view (US-AGENT-008), run at the branch by its single writer with the HQ user
# as actor (`hq:<user>`), audited on both sides. Tagged by `action`; an appliance that predates an action answers
# "malformed command" and runs nothing.
HqCommand = HqSetPresence | HqCallNext | HqTransfer | HqCancel | HqDeviceConfig


class HqReply(Struct, frozen=True, kw_only=True):
    """The branch's answer: done, or why not (an unknown counter, a counter serving a ticket, …); for call-next the
    ticket called, or why none was (`empty`, `no_compatible`, `counter_unavailable`)."""

    ok: bool
    error: str | None = None
    ticket_number: str | None = None
    reason: str | None = None
    versions: dict[str, int] | None = None  # device.config: each device given a new version, with that version


command_decoder = msgspec.json.Decoder(HqCommand)
reply_decoder = msgspec.json.Decoder(HqReply)


def subject_branch(subject: str) -> tuple[str, str] | None:
    """(tenant, branch) of a heartbeat subject, or None when it is not one."""
    prefix, _dot, rest = subject.partition(f"{HEARTBEAT_PREFIX}.")
    tenant, _dot, branch_id = rest.partition(".")
    if prefix or not tenant or not branch_id or "." in branch_id:
        return None
    return tenant, branch_id


class DeviceState(Struct, frozen=True, kw_only=True):
    """One device of the branch as its heartbeat reports it to HQ's device fleet (US-ADMIN-009/010): kiosks and
    boards are online while they keep polling the appliance, call buttons and LED displays while their MQTT session
    lives; `config_version` is what the appliance assigned, `applied_version` what the device acknowledged."""

    device_id: str
    type: str  # kiosk | display | button | led
    name: str = ""
    online: bool = False
    last_seen: datetime | None = None
    config_version: int = 0
    applied_version: int = 0


class Heartbeat(Struct, frozen=True, kw_only=True):
    """One beat: who sends it, when, how far its log and its relay are, and which software it runs."""

    tenant: str
    branch_id: str
    sent_at: datetime  # UTC
    last_seq: int  # the newest seq in the branch's log
    acked_seq: int  # the relay's cursor: the newest seq the cloud's stream acknowledged
    lag_events: int
    interval_seconds: float = DEFAULT_INTERVAL
    software_version: str = ""
    devices: list[DeviceState] | None = None  # None: an appliance that does not report its devices


heartbeat_encoder = msgspec.json.Encoder()
heartbeat_decoder = msgspec.json.Decoder(Heartbeat)


class Beater:
    """Publishes `snapshot()` on the heartbeat subject every `interval` seconds while a connection is up."""

    def __init__(
        self, tenant: str, branch_id: str, snapshot: Callable[[], Awaitable[Heartbeat]], interval: float
    ) -> None:
        self.subject = heartbeat_subject(tenant, branch_id)
        self.snapshot = snapshot
        self.interval = interval
        self.sent = 0
        self.last_sent_at: datetime | None = None
        self.on_sent: Callable[[], None] | None = None  # told before each beat after a connection's first (see Relay)
        self.commands = command_subject(tenant, branch_id)
        self.on_command: Callable[[HqCommand], Awaitable[HqReply]] | None = None  # answers HQ's interventions

    async def run(self, nc: NatsClient) -> None:
        """Beat until cancelled or the connection closes; a failed beat is logged, the next one tried. With
        `on_command`, HQ's interventions are answered on the same connection while it lasts."""
        if self.on_command is not None:
            await nc.subscribe(self.commands, cb=self._answer)
        beats_here = 0  # on this connection: the first beat of a new one has had no interval to be refused
        while not nc.is_closed:
            try:
                beat = await self.snapshot()
                if beats_here and self.on_sent is not None:
                    self.on_sent()  # the previous beat had a whole interval to be refused
                await nc.publish(self.subject, heartbeat_encoder.encode(beat))
                self.sent += 1
                beats_here += 1
                self.last_sent_at = beat.sent_at
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a beat is best effort: the relay's loop owns the link state
                log.debug("heartbeat not sent: %s", exc)
            await asyncio.sleep(self.interval)

    async def _answer(self, msg: Any) -> None:
        """Run one HQ command and reply; a malformed one is answered with why, never run."""
        try:
            command = command_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reply = HqReply(ok=False, error=f"malformed command: {exc}")
        else:
            try:
                reply = await (self.on_command or _no_command)(command)
            except Exception as exc:  # the command's own failure is the answer, not a dead subscription
                log.exception("HQ command %s failed", type(command).__name__)
                reply = HqReply(ok=False, error=f"{type(exc).__name__}: {exc}")
        if msg.reply:
            await msg.respond(heartbeat_encoder.encode(reply))


async def _no_command(_command: HqCommand) -> HqReply:
    return HqReply(ok=False, error="this branch takes no commands from HQ")


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# ---- the link's errors in words ------------------------------------------------------------------------------

RETIRED = "branch retired at the hub"  # how a link error about a retired branch begins (edge.doctor's remedy)
_VIOLATION = re.compile(r"permissions violation for (publish|subscription) to \"?([^\"\s]+)\"?", re.IGNORECASE)
_SEED_NAME = re.compile(r"^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})\.nk$")


def seed_owner(seed_file: str | None) -> tuple[str, str] | None:
    """(tenant, branch) a seed file is named for (`qms-cloud branch add` writes `<tenant>.<branch>.nk`), or None."""
    if not seed_file:
        return None
    match = _SEED_NAME.match(Path(seed_file).name)
    return (match.group(1), match.group(2)) if match else None


def permission_denied(violation: str, tenant: str, branch_id: str, seed_file: str | None) -> str:
    """What a server's permissions violation means for this branch: usually a seed of another branch."""
    match = _VIOLATION.search(violation)
    subject = match.group(2) if match else "its subjects"
    owner = seed_owner(seed_file)
    if owner is not None and owner != (tenant, branch_id):
        return (
            f"permission denied: this seed belongs to branch {owner[1]} (tenant {owner[0]}), not {branch_id}"
            f" (tenant {tenant}); the server refused {subject}. Install {tenant}.{branch_id}.nk from"
            f" `qms-cloud branch add {tenant} {branch_id}`"
        )
    return (
        f"permission denied: the server refused {subject} for this credential; the seed"
        f"{' ' + seed_file if seed_file else ''} is not branch {branch_id}'s (tenant {tenant}) or the hub has not"
        " reloaded its users (on the hub: qms-cloud branch users, then nats-server --signal reload)"
    )


def describe_link_error(
    exc: BaseException | None, server_error: str | None, *, servers: tuple[str, ...], tenant: str, branch_id: str,
    seed_file: str | None, ack_timeout: float = 10.0, accepted_before: bool = False,
) -> str:  # fmt: skip
    """One sentence for what went wrong on the link; `server_error` is the last error the server reported, and
    `accepted_before` says the hub once took this credential (so a refusal now is a retirement, not a typo)."""
    text = f"{server_error or ''} {exc or ''}"
    where = ", ".join(servers) or "the configured server"
    if "permissions violation" in text.lower():
        return permission_denied(server_error if server_error and "violation" in server_error.lower() else text,
                                 tenant, branch_id, seed_file)  # fmt: skip
    seed = f" (seed {seed_file})" if seed_file else ""
    if accepted_before and ("authorization violation" in text.lower() or "authentication" in text.lower()):
        return (
            f"{RETIRED} (or its NATS key replaced there): {where} refuses the credential it accepted"
            f" before{seed}; the branch keeps working offline and keeps its events until HQ reactivates {tenant}"
            f" {branch_id} (console, Branches) or, after a new key, its seed is installed (QMS_NATS_NKEY)"
        )
    if "authorization violation" in text.lower() or "authentication" in text.lower():
        return (
            f"authorization failed: {where} does not accept this credential"
            f"{' (seed ' + seed_file + ')' if seed_file else ''}; issue one with `qms-cloud branch add {tenant}"
            f" {branch_id}`, copy the seed and set QMS_NATS_NKEY, and reload nats-server"
        )
    name = type(exc).__name__ if exc is not None else ""
    if name == "NoStreamResponseError":
        return (
            f"connected to {where}, but no JetStream stream takes qms.evt.{tenant}.{branch_id}: the hub has not"
            " created QMS_EVENTS yet (start qms-cloud serve with --nats-url)"
        )
    if name in {"NoServersError", "ConnectionRefusedError", "ConnectionClosedError"} or isinstance(
        exc, ConnectionRefusedError
    ):
        return f"cannot reach the cloud at {where}: connection refused or server down"
    if isinstance(exc, OSError):
        return f"cannot reach the cloud at {where}: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError) or name == "TimeoutError":
        return (
            f"the cloud at {where} did not answer within {ack_timeout:g} s (no JetStream stream for"
            " qms.evt.>, or the server is overloaded)"
        )
    detail = str(exc) if exc is not None else ""
    return f"{name}: {detail}".strip(": ") if detail else name or "unknown error"


LINK_STATES = ("connected", "connecting", "down", "not configured", "stopped")


def link_words(state: str, since: str | None) -> str:
    """`connected`, `connecting`, `down since …`, `not configured` as a technician reads it."""
    if state == "down":
        return f"down since {since}" if since else "down"
    return state
