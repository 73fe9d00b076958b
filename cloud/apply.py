"""Applying replicated events: idempotent by (tenant_id, branch_id, seq), hash chain verified, gaps parked and reported.

A message's branch is `(tenant, branch)` of its subject `qms.evt.<tenant>.<branch>` (the only subject the branch's
credentials may publish to); an event whose body names another branch or tenant is refused. For each branch the
`branches` row says which seq comes next and the hash it must link to. An event:
* below `next_seq` is compared with the stored event's hash (one query per batch): the same hash is a duplicate
  (JetStream redelivery, a relay that re-sent after a crash): counted, skipped; a different hash is a fork (the
  appliance was restored from a backup or its log rewritten) and marks the branch `chain_broken`;
* equal to it is verified (prev_hash links, hash matches its canonical body) and applied, then any parked
  successors are drained;
* above it is parked and the branch is marked `gap` until the missing events arrive;
* failing verification marks the branch `chain_broken`; nothing more is applied for it until an operator repairs it
  (`cloud.resync`: drop the hub's copy from a seq on, then the appliance sends again from there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.analytics import facts
from cloud.appointments import checkins
from cloud.notify import triggers
from cloud.ops import pii
from cloud.store import (
    branch_key,
    branches,
    events,
    insert_ignore,
    number_leases,
    parked,
    pipelined,
    register_branch,
    ticket_links,
    tickets,
    transaction,
    update_many,
    utcnow_iso,
    write_many,
)
from sync.contract import (
    ConfigApplied,
    ConfigRejected,
    Event,
    NumbersLeased,
    TicketCalled,
    TicketCreated,
    TicketRecalled,
    TicketReturned,
    TicketTransferred,
    TicketUnheld,
    canonical_encoder,
    chain_hash,
    event_decoder,
    event_type,
)
from sync.contract_config import config_hash
from sync.relay import SUBJECT_PREFIX

UNPARK_CHUNK = 5000
ApplyHook = Callable[[Connection, str, str, Sequence[Any]], None]
_STATUS_AFTER = {
    "ticket.called": "called",
    "ticket.recalled": "called",
    "ticket.serving": "serving",
    "ticket.done": "done",
    "ticket.cancelled": "cancelled",
    "ticket.held": "held",
    "ticket.unheld": "waiting",
    "ticket.transferred": "waiting",
    "ticket.no_show": "no_show",
    "ticket.returned": "waiting",
}


@dataclass(frozen=True)
class UnknownEvent:
    """An event of a type this hub does not know yet (a newer appliance): kept, counted and chain-checked from its
    JSON, so one upgrade order (edges before the hub) never stalls a branch."""

    seq: int
    branch_id: str
    event_id: str
    type: str
    occurred_at: datetime
    prev_hash: str
    hash: str
    ticket_id: str | None
    raw: bytes
    fields: dict[str, Any]


AnyApplied = Event | UnknownEvent


def decode_any(data: bytes) -> AnyApplied:
    """The typed event, or an `UnknownEvent` when only its type is new; DecodeError when it is no event at all."""
    try:
        return event_decoder.decode(data)
    except msgspec.ValidationError:
        fields = msgspec.json.decode(data)
        try:
            return UnknownEvent(
                seq=int(fields["seq"]),
                branch_id=str(fields["branch_id"]),
                event_id=str(fields["event_id"]),
                type=str(fields["type"]),
                occurred_at=datetime.fromisoformat(str(fields["occurred_at"])),
                prev_hash=str(fields["prev_hash"]),
                hash=str(fields["hash"]),
                ticket_id=fields.get("ticket_id"),
                raw=data,
                fields=fields,
            )
        except (KeyError, TypeError, ValueError):
            raise msgspec.DecodeError("not an event envelope") from None


def type_of(event: AnyApplied) -> str:
    """The event's `type`."""
    return event.type if isinstance(event, UnknownEvent) else event_type(event)


@dataclass(frozen=True)
class Incoming:
    """One message from the stream: its subject and the event JSON."""

    subject: str
    data: bytes
    contact_key: str = ""  # the Qms-Contact-Key header of a sealed ticket.created (cloud.ops.pii), never stored


@dataclass
class ApplyResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)


def subject_branch(subject: str) -> tuple[str, str] | None:
    """(tenant, branch) of `qms.evt.<tenant>.<branch>`, None for anything else."""
    prefix, _, rest = subject.rpartition(".")
    prefix, _, tenant = prefix.rpartition(".")
    if prefix != SUBJECT_PREFIX or not tenant or not rest:
        return None
    return tenant, rest


def apply_batch(engine: Engine, messages: Sequence[Incoming], hooks: Sequence[ApplyHook] | None = None) -> ApplyResult:
    """Apply a batch in one transaction; ack the messages only after this returns. `hooks`: what else is kept in
    the same transaction (default `HOOKS`; the benchmark times them one by one or leaves them out)."""
    result = ApplyResult()
    keys: dict[tuple[str, str, int], str] = {}
    by_branch: dict[tuple[str, str], list[tuple[int, bytes, AnyApplied | None]]] = {}
    for message in messages:
        where = subject_branch(message.subject)
        if where is None:
            result.refused += 1
            result.problems.append(f"unexpected subject {message.subject!r}")
            continue
        try:
            event: AnyApplied | None = decode_any(message.data)
        except (msgspec.DecodeError, TypeError, AttributeError) as exc:
            result.refused += 1
            result.problems.append(f"{message.subject}: undecodable event ({exc})")
            continue
        assert event is not None
        if event.branch_id != where[1]:
            # A branch can only publish on its own subject; an event naming another branch is refused outright.
            result.refused += 1
            result.problems.append(f"{message.subject}: event of branch {event.branch_id!r} on another's subject")
            continue
        claimed = body_tenant(message.data)
        if claimed is not None and claimed != where[0]:
            result.refused += 1
            result.problems.append(f"{message.subject}: event of tenant {claimed!r} on another tenant's subject")
            continue
        by_branch.setdefault(where, []).append((event.seq, message.data, event))
        if message.contact_key:
            keys[(*where, event.seq)] = message.contact_key
    if not by_branch:
        return result
    with pii.offered_keys(keys), transaction(engine) as conn:
        for tenant, branch_id in sorted(by_branch):  # a fixed lock order: no deadlock between consumers
            _apply_branch(conn, tenant, branch_id, by_branch[(tenant, branch_id)], result, hooks)
    return result


def body_tenant(data: bytes) -> str | None:
    """The tenant an event's body names (`tenant_id` or `tenant`), None when it names none (today's contract)."""
    if b'"tenant' not in data:
        return None
    fields = msgspec.json.decode(data)
    value = fields.get("tenant_id", fields.get("tenant")) if isinstance(fields, dict) else None
    return str(value) if value is not None else None


def _of_branch(table: sa.Table) -> sa.ColumnElement[bool]:
    """`branch_key` with bind parameters (`b_tenant`, `b_branch`): the per-batch statements below are built once
    (building and hashing a fresh construct cost more Python than running it)."""
    return sa.and_(table.c.tenant_id == sa.bindparam("b_tenant"), table.c.branch_id == sa.bindparam("b_branch"))


_LOCK = sa.select(branches).where(_of_branch(branches)).with_for_update()
_PARKED_BELOW = sa.delete(parked).where(_of_branch(parked), parked.c.seq < sa.bindparam("b_seq"))
_FIRST_PARKED = sa.select(sa.func.min(parked.c.seq)).where(_of_branch(parked))
_PARKED_FROM = (
    sa.select(parked.c.seq, parked.c.body, parked.c.contact_key)
    .where(_of_branch(parked), parked.c.seq >= sa.bindparam("b_seq"))
    .order_by(parked.c.seq)
    .limit(UNPARK_CHUNK)
)


def _lock_branch(conn: Connection, tenant: str, branch_id: str) -> Any:
    register_branch(conn, tenant, branch_id)
    return conn.execute(_LOCK, {"b_tenant": tenant, "b_branch": branch_id}).one()


def _apply_branch(
    conn: Connection,
    tenant: str,
    branch_id: str,
    items: list[tuple[int, bytes, AnyApplied | None]],
    result: ApplyResult,
    hooks: Sequence[ApplyHook] | None = None,
) -> None:
    row = _lock_branch(conn, tenant, branch_id)
    next_seq, last_hash, status = row.next_seq, row.last_hash, row.status
    now = utcnow_iso()
    pending, earlier, forked = _sort_out(items, next_seq)
    duplicates = len(items) - len(pending)
    to_apply: list[AnyApplied] = []
    problem: str | None = row.problem if status == "chain_broken" else None
    if status != "chain_broken":
        fork = min([*forked, *_differing(conn, tenant, branch_id, earlier)], default=None)
        if fork is not None:
            status, problem = "chain_broken", fork_problem(fork)
            result.problems.append(f"{branch_id}: {problem}")
    from_parking: set[int] = set()
    while status != "chain_broken":
        if next_seq not in pending:
            if not _unpark(conn, tenant, branch_id, next_seq, pending, from_parking):
                break
            continue
        data, event = pending.pop(next_seq)
        event = event or decode_any(data)
        error = verify_link(data, last_hash)
        if error is not None:
            status, problem = "chain_broken", f"seq {next_seq}: {error}"
            pending[next_seq] = (data, event)
            result.problems.append(f"{branch_id}: {problem}")
            break
        to_apply.append(event)
        last_hash, next_seq = event.hash, next_seq + 1
    # Applied events leave the parking table (and so does a parked copy of one that arrived in order meanwhile).
    conn.execute(_PARKED_BELOW, {"b_tenant": tenant, "b_branch": branch_id, "b_seq": next_seq})
    newly_parked = [(seq, data) for seq, (data, _) in pending.items() if seq not in from_parking]
    if newly_parked:  # out of order or behind a broken link: keep them until their turn
        conn.execute(
            insert_ignore(conn, parked),
            [
                {
                    "tenant_id": tenant,
                    "branch_id": branch_id,
                    "seq": seq,
                    "body": data.decode(),
                    "received_at": now,
                    "contact_key": pii.offered_text(tenant, branch_id, seq),
                }  # the header is gone once acked
                for seq, data in newly_parked
            ],
        )
        result.parked += len(newly_parked)
    if status != "chain_broken":
        waiting = conn.execute(_FIRST_PARKED, {"b_tenant": tenant, "b_branch": branch_id}).scalar_one_or_none()
        status, problem = ("gap", f"missing seq {next_seq}..{waiting - 1}") if waiting is not None else ("ok", None)
    _write_events(conn, tenant, branch_id, to_apply, now, HOOKS if hooks is None else hooks)
    values: dict[str, Any] = {
        "next_seq": next_seq,
        "last_hash": last_hash,
        "events": branches.c.events + len(to_apply),
        "duplicates": branches.c.duplicates + duplicates,
        "last_received_at": now,
        "status": status,
        "problem": problem,
        "updated_at": now,
    }
    if to_apply:
        values["last_event_at"] = to_apply[-1].occurred_at.isoformat()
    values.update(config_fields(to_apply))
    conn.execute(sa.update(branches).where(branch_key(branches, tenant, branch_id)).values(**values))
    result.applied += len(to_apply)
    result.duplicates += duplicates


def _sort_out(
    items: list[tuple[int, bytes, AnyApplied | None]], next_seq: int
) -> tuple[dict[int, tuple[bytes, AnyApplied | None]], dict[int, str], list[int]]:
    """Split a branch's batch: (events to apply or park by seq, hashes of those below `next_seq` to compare with the
    stored ones, seqs that came twice in the batch with different hashes)."""
    pending: dict[int, tuple[bytes, AnyApplied | None]] = {}
    earlier: dict[int, str] = {}
    forked: list[int] = []
    for seq, data, event in sorted(items, key=lambda item: item[0]):
        if seq < next_seq:
            earlier.setdefault(seq, _hash_of(data, event))
        elif seq in pending:
            if _hash_of(data, event) != _hash_of(*pending[seq]):
                forked.append(seq)
        else:
            pending[seq] = (data, event)
    return pending, earlier, forked


def fork_problem(seq: int) -> str:
    """The branch's problem text when seq `seq` arrived with content other than the stored event's."""
    return f"seq {seq} differs from the stored event: the branch's log was restored or rewritten (fork)"


def _hash_of(data: bytes, event: AnyApplied | None) -> str:
    """The `hash` an event claims (decoded already in the batch path; parked copies are decoded here)."""
    return (event or decode_any(data)).hash


def _differing(conn: Connection, tenant: str, branch_id: str, received: dict[int, str]) -> list[int]:
    """Seqs whose received hash is not the stored event's: one range query for the batch's duplicates."""
    if not received:
        return []
    stored = dict(
        conn.execute(
            sa.select(events.c.seq, events.c.hash).where(
                branch_key(events, tenant, branch_id), events.c.seq.between(min(received), max(received))
            )
        ).all()
    )
    return [seq for seq, hash_ in received.items() if stored.get(seq, hash_) != hash_]


def verify_link(data: bytes, last_hash: str) -> str | None:
    """Why the event (as received) does not continue the chain, or None when it does.

    The hash is checked over the received JSON itself (sorted keys, `hash` emptied — the edge's canonical form), not
    over this hub's decoding of it: a newer appliance's extra fields are covered, never silently dropped.
    """
    fields = msgspec.json.decode(data)
    if fields.get("prev_hash") != last_hash:
        return "prev_hash does not link to the previous event"
    if chain_hash(last_hash, canonical_encoder.encode({**fields, "hash": ""})) != fields.get("hash"):
        return "hash does not match the event's content"
    return None


def _unpark(
    conn: Connection,
    tenant: str,
    branch_id: str,
    next_seq: int,
    pending: dict[int, tuple[bytes, AnyApplied | None]],
    from_parking: set[int],
) -> bool:
    """Load parked events from `next_seq` on into `pending` (one query per chunk); False when it is not parked."""
    if next_seq in from_parking:
        return False
    rows = conn.execute(_PARKED_FROM, {"b_tenant": tenant, "b_branch": branch_id, "b_seq": next_seq}).all()
    for seq, body, _key in rows:
        if seq not in pending:
            pending[seq] = (body.encode(), None)
            from_parking.add(seq)
    pii.offer_more({(tenant, branch_id, seq): key for seq, _, key in rows if key})  # sealed contacts open again
    from_parking.add(next_seq)  # never query twice for the same position
    return next_seq in pending


def _write_events(
    conn: Connection, tenant: str, branch_id: str, applied: Sequence[AnyApplied], now: str, hooks: Sequence[ApplyHook]
) -> None:
    """Insert the events, fold them into the ticket projection (one row per ticket, last state wins), run the hooks.

    The events and projection statements are writes only: pipelined, the server inserts the events while Python folds
    the tickets (the hooks read, so they run after)."""
    if not applied:
        return
    with pipelined(conn):
        _write_rows(conn, tenant, branch_id, applied, now)
    for hook in hooks:
        hook(conn, tenant, branch_id, applied)


def _write_rows(conn: Connection, tenant: str, branch_id: str, applied: Sequence[AnyApplied], now: str) -> None:
    """The applied events' rows and the ticket projection (no reads)."""
    write_many(
        conn,
        events,
        [
            {
                "tenant_id": tenant,
                "branch_id": branch_id,
                "seq": e.seq,
                "event_id": e.event_id,
                "type": type_of(e),
                "occurred_at": e.occurred_at.isoformat(),
                "ticket_id": e.ticket_id,
                "hash": e.hash,
                "body": e.raw.decode() if isinstance(e, UnknownEvent) else msgspec.json.encode(e).decode(),
                "received_at": now,
            }
            for e in applied
        ],
    )
    project_events(conn, tenant, branch_id, applied)


# Kept in the consumer's transaction, after the projection: facts never lag the events; outbox rows exactly once per
# idempotency key; bookings checked in at the branch's kiosk.
HOOKS: tuple[ApplyHook, ...] = (facts.on_applied, triggers.on_applied, checkins.on_applied)


def project_events(conn: Connection, tenant: str, branch_id: str, applied: Sequence[AnyApplied]) -> None:
    """Fold applied events into `tickets`, `ticket_links` and `number_leases` (also used to rebuild a branch)."""
    created, updated = _ticket_changes(applied)
    if created:
        rows = [{"tenant_id": tenant, "branch_id": branch_id, **row} for row in created.values()]
        write_many(conn, tickets, rows, merge="ignore")
    rows = [{"ticket_id": ticket_id, "status": change["status"], "updated_at": change["updated_at"],
             "service_id": change.get("service_id")} for ticket_id, change in updated.items()]  # fmt: skip
    update_many(conn, tickets, tenant, branch_id, "ticket_id", rows)  # a service_id of None keeps the stored one
    _write_links(conn, tenant, branch_id, applied)


def _write_links(conn: Connection, tenant: str, branch_id: str, applied: Sequence[AnyApplied]) -> None:
    """Fold what status links need into `ticket_links` (order, language, offline id, counter) and `number_leases`."""
    created: dict[str, dict[str, Any]] = {}
    updated: dict[str, dict[str, Any]] = {}
    leases: list[dict[str, Any]] = []
    for e in applied:
        if isinstance(e, NumbersLeased):
            leases.append({"tenant_id": tenant, "branch_id": branch_id, "lease_id": e.lease_id,
                           "service_id": e.service_id, "first_seq": e.first_seq, "last_seq": e.last_seq})  # fmt: skip
            continue
        if e.ticket_id is None:
            continue
        if isinstance(e, TicketCreated):
            created[e.ticket_id] = {"tenant_id": tenant, "branch_id": branch_id, "ticket_id": e.ticket_id,
                                    "queue_order": e.order, "request_id": e.request_id, "lang": e.lang,
                                    "counter_id": None}  # fmt: skip
            continue
        if isinstance(e, TicketCalled | TicketRecalled):
            change: dict[str, Any] = {"counter_id": e.counter_id}
        elif isinstance(e, TicketTransferred | TicketUnheld | TicketReturned):
            change = {"queue_order": e.order}
        else:
            continue
        target = created.get(e.ticket_id)
        (target if target is not None else updated.setdefault(e.ticket_id, {})).update(change)
    write_many(conn, number_leases, leases, merge="ignore")
    write_many(conn, ticket_links, list(created.values()), merge="ignore")
    rows = [{"ticket_id": ticket_id, "counter_id": change.get("counter_id"), "queue_order": change.get("queue_order")}
            for ticket_id, change in updated.items()]  # fmt: skip
    update_many(conn, ticket_links, tenant, branch_id, "ticket_id", rows)  # None: that column is not changed


def _ticket_changes(applied: Iterable[AnyApplied]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    created: dict[str, dict[str, Any]] = {}
    updated: dict[str, dict[str, Any]] = {}
    for e in applied:
        if e.ticket_id is None:
            continue
        at = e.occurred_at.isoformat()
        if isinstance(e, TicketCreated):
            created[e.ticket_id] = {
                "ticket_id": e.ticket_id,
                "service_id": e.service_id,
                "ticket_number": e.ticket_number,
                "business_date": e.business_date,
                "status": "waiting",
                "updated_at": at,
            }
            continue
        status = _STATUS_AFTER.get(type_of(e))
        if status is None:
            continue
        change: dict[str, Any] = {"status": status, "updated_at": at}
        if isinstance(e, TicketTransferred):
            change["service_id"] = e.to_service
        target = created.get(e.ticket_id)
        if target is not None:
            target.update(change)
        else:
            updated.setdefault(e.ticket_id, {}).update(change)
    return created, updated


def config_fields(applied: Sequence[AnyApplied]) -> dict[str, Any]:
    """Which configuration version the branch runs, and the last one it refused."""
    values: dict[str, Any] = {}
    for e in applied:
        if isinstance(e, ConfigApplied):
            values["config_version"] = e.version
            values["config_hash"] = e.config_hash or config_hash(e.config)  # events older than the field
        elif isinstance(e, ConfigRejected):
            values["config_rejected_version"] = e.version
            values["config_rejected_hash"] = e.config_hash or None
            values["config_rejected_reason"] = "; ".join(e.errors)[:2000]
    return values
