"""Notification triggers (US-NOTIF-003): applied events → outbox rows, in the consumer's transaction, so a message is
owed exactly when its event is applied — once per (tenant, branch, ticket, trigger, channel), whatever NATS
redelivers or however often the hub restarts (the outbox key is unique; inserts ignore a conflict).

* `ticket.created` stores the ticket's contacts (normalised; `cloud.notify.contacts`) and owes a "created" message.
* `ticket.to_go` ("N to go"): after every batch the waiting tickets of each touched service are ranked by the hub's
  projection (`tickets` + `ticket_links.queue_order`); a ticket with at most N people ahead owes one message, even
  when its position jumps past N (the key makes it once). A ticket already that close when it was created gets a
  `skipped` row instead: its created message said so.
* `ticket.called` and `ticket.recalled` owe a message each (the first recall only: the key has no count).

A row is `skipped` with a reason when the tenant, channel or trigger is off, the ticket has no contact for the channel
or the customer declined; otherwise `pending`, due now. Only channels with a provider configured get rows; a phone
goes by WhatsApp when it is configured (SMS is then its fallback), else by SMS.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.notify import contacts, policy
from cloud.notify.tables import outbox, providers
from cloud.ops import pii
from cloud.store import branches, probe_rows, ticket_links, tickets, write_many
from sync.contract import TicketCalled, TicketCreated, TicketRecalled, TicketTransferred
from sync.contract_config import BranchConfig
from sync.observability import correlation_for_event

PHONE_CHANNELS = ("whatsapp", "sms")
OWED = "qms_notify_owed"  # a flag on the DB connection's info: this transaction wrote rows due now
_same_ticket = sa.and_(
    ticket_links.c.tenant_id == tickets.c.tenant_id,
    ticket_links.c.branch_id == tickets.c.branch_id,
    ticket_links.c.ticket_id == tickets.c.ticket_id,
)


# Read for every applied batch: built once, run with bind parameters (a fresh construct cost more Python than the
# query).
_CHANNELS = sa.select(providers.c.channel).where(providers.c.tenant_id == sa.bindparam("p_tenant"))
_BRANCH = sa.select(branches).where(
    branches.c.tenant_id == sa.bindparam("q_tenant"), branches.c.branch_id == sa.bindparam("q_branch")
)
_WAITING = sa.select(
    tickets.c.service_id,
    tickets.c.ticket_id,
    sa.select(ticket_links.c.queue_order).where(_same_ticket).scalar_subquery(),
).where(
    tickets.c.status == "waiting",
    tickets.c.tenant_id == sa.bindparam("q_tenant"),
    tickets.c.branch_id == sa.bindparam("q_branch"),
    tickets.c.service_id.in_(sa.bindparam("q_services", expanding=True)),
)


def configured_channels(conn: Connection, tenant: str) -> list[str]:
    """The channels a tenant has a provider for, the phone's one channel first chosen (WhatsApp over SMS)."""
    found = set(conn.execute(_CHANNELS, {"p_tenant": tenant}).scalars())
    if "whatsapp" in found:
        found.discard("sms")  # SMS stands in for WhatsApp (fallback) instead of doubling every message
    return sorted(found)


def recipient_of(contact: contacts.Contact | None, channel: str) -> str | None:
    """The address a channel sends to, from a ticket's contacts."""
    if contact is None:
        return None
    if channel in PHONE_CHANNELS:
        return contact.phone
    if channel == "email":
        return contact.email
    return contact.push


def on_applied(conn: Connection, tenant: str, branch_id: str, applied: Sequence[Any]) -> None:
    """Called by `cloud.apply` for every applied batch of one branch, inside its transaction (events in seq order;
    typed `sync.contract` events, or `cloud.apply.UnknownEvent` for types this hub does not know)."""
    touched = [e for e in applied if getattr(e, "ticket_id", None) and getattr(e, "service_id", None)]
    if not touched:
        return
    channels = configured_channels(conn, tenant)
    if not channels:
        return  # the tenant sends nothing: no contact is kept, no row written
    rules = policy.load(conn, tenant)
    now = datetime.now(UTC)
    owed: list[tuple[str, str, dict[str, Any]]] = []  # (ticket, trigger, vars)
    created: set[str] = set()
    moved_by = ""  # "to go" rows: the id of the batch's last event that carried one (it moved the queue)
    given_contacts: list[contacts.Given] = []
    for event in touched:
        if event.ticket_id is None:
            continue
        correlation_id = correlation_for_event(tenant, branch_id, event.seq)
        moved_by = correlation_id or moved_by
        if isinstance(event, TicketCreated):
            given = pii.contact_of(tenant, branch_id, event)  # a sealed contact opened with the key beside it
            given_contacts.append(contacts.Given(event.ticket_id, given.phone, given.email, event.notify_opt_in,
                                                 event.lang))  # fmt: skip
            created.add(event.ticket_id)
            owed.append((event.ticket_id, "ticket.created", {"correlation_id": correlation_id}))
        elif isinstance(event, TicketCalled | TicketRecalled):
            trigger = "ticket.called" if isinstance(event, TicketCalled) else "ticket.recalled"
            owed.append((event.ticket_id, trigger, {"counter_id": event.counter_id, "correlation_id": correlation_id}))
    contacts.record_many(conn, tenant, branch_id, given_contacts, now=now, retention=rules.retention)
    services = {e.to_service if isinstance(e, TicketTransferred) else e.service_id for e in touched}
    queues = _queues(conn, tenant, branch_id, services)
    ahead = _people_ahead(queues, rules)
    to_go = {"correlation_id": moved_by}
    owed.extend((ticket_id, "ticket.to_go", to_go) for ticket_id in ahead if ticket_id not in created)
    near = {t for t in created if t in ahead}
    if owed or near:
        places = _places(queues, created - ahead.keys())  # for the created message of a ticket beyond the threshold
        _write(conn, tenant, branch_id, owed, near, ahead, places, channels, rules, now)


def _queues(conn: Connection, tenant: str, branch_id: str, services: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The waiting tickets of these services in queue order, `service -> [(queue order, ticket)]`, in one query.

    The queue order is read by a primary-key probe per waiting ticket: joined instead, a branch whose tables were
    not analysed yet (a new hub catching up on a backlog) was planned as a nested loop over all the branch's links
    (180 ms at 6,000 tickets, growing with them; 1 ms as probes)."""
    rows = conn.execute(_WAITING, {"q_tenant": tenant, "q_branch": branch_id, "q_services": sorted(services)})
    queues: dict[str, list[tuple[int, str]]] = {}
    for service_id, ticket_id, queue_order in rows:
        if queue_order is not None:  # a ticket always has its link (both come from its ticket.created)
            queues.setdefault(service_id, []).append((queue_order, ticket_id))
    for queue in queues.values():
        queue.sort()
    return queues


def _people_ahead(queues: dict[str, list[tuple[int, str]]], rules: policy.TenantPolicy) -> dict[str, int]:
    """Waiting tickets within their service's "N to go" threshold, with the people ahead of each."""
    found: dict[str, int] = {}
    for service_id, queue in sorted(queues.items()):
        limit = rules.threshold(service_id) + 1
        found.update({ticket_id: position for position, (_, ticket_id) in enumerate(queue[:limit])})
    return found


def _places(queues: dict[str, list[tuple[int, str]]], ticket_ids: set[str]) -> dict[str, int]:
    """People ahead of each of these tickets that waits (those of its service with a lower queue order)."""
    found: dict[str, int] = {}
    for queue in queues.values():
        orders = [queue_order for queue_order, _ in queue]
        found.update({t: bisect.bisect_left(orders, o) for o, t in queue if t in ticket_ids})
    return found


def _write(
    conn: Connection,
    tenant: str,
    branch_id: str,
    owed: list[tuple[str, str, dict[str, Any]]],
    near: set[str],
    ahead: dict[str, int],
    places: dict[str, int],
    channels: list[str],
    rules: policy.TenantPolicy,
    now: datetime,
) -> None:
    """Insert the owed rows (conflicts ignored: the key makes each message once)."""
    ticket_ids = sorted({t for t, _, _ in owed} | near)
    columns = ("ticket_id", "ticket_number", "service_id")
    known = {r.ticket_id: r for r in probe_rows(conn, tickets, tenant, branch_id, "ticket_id", ticket_ids, columns)}
    found = contacts.read_many(conn, tenant, branch_id, ticket_ids)
    config = _config(conn, tenant, branch_id)
    stamp = now.isoformat()
    rows: list[dict[str, Any]] = []
    for ticket_id, trigger, extra in [*owed, *((t, "ticket.to_go", {"correlation_id": ""}) for t in sorted(near))]:
        ticket = known.get(ticket_id)
        if ticket is None:
            continue
        people = ahead.get(ticket_id)
        if trigger == "ticket.created" and people is None:
            people = places.get(ticket_id)
        variables = _variables(config, ticket, people, extra.get("counter_id"), rules)
        contact = found.get(ticket_id)
        for channel in channels:
            reason = rules.allows(trigger, channel)
            if reason is None and trigger == "ticket.to_go" and ticket_id in near:
                reason = "near_front_at_creation"
            if reason is None and recipient_of(contact, channel) is None:
                reason = "no_contact"
            if reason is None and contact is not None and contact.opt_in is False:
                reason = "opted_out"
            lang = (contact.lang if contact else None) or "id"
            lang = lang if lang in policy.LANGS else "en"
            rows.append({"tenant_id": tenant, "branch_id": branch_id, "ticket_id": ticket_id, "trigger": trigger,
                         "channel": channel, "status": "skipped" if reason else "pending", "reason": reason,
                         "lang": lang, "vars": msgspec.json.encode(variables).decode(),
                         "attempts": 0, "next_attempt_at": None if reason else stamp, "created_at": stamp,
                         "updated_at": stamp, "correlation_id": extra.get("correlation_id") or None})  # fmt: skip
    if rows:
        write_many(conn, outbox, rows, merge="ignore")
        if any(r["status"] == "pending" for r in rows):
            conn.info[OWED] = True  # the dispatcher is woken when this connection goes back to the pool (committed)


_configs: dict[tuple[str, str, int, str], BranchConfig | None] = {}  # decoded running configurations, by content
_CONFIGS_KEPT = 1024


def _config(conn: Connection, tenant: str, branch_id: str) -> BranchConfig | None:
    """The configuration the branch runs (names of the branch, services and counters); decoded once per version and
    content hash it reported (the document of a version never changes; reading it from the log each batch was a scan
    of the branch's `config.applied` events)."""
    from cloud.ticket_status import branch_config  # the one reader of a branch's running configuration

    branch = conn.execute(_BRANCH, {"q_tenant": tenant, "q_branch": branch_id}).one_or_none()
    if branch is None:
        return None
    if branch.config_version is None or not branch.config_hash:
        return branch_config(conn, branch)  # none reported yet: the newest distributed one, which may still change
    key = (tenant, branch_id, branch.config_version, branch.config_hash)
    if key not in _configs:
        if len(_configs) >= _CONFIGS_KEPT:
            _configs.clear()
        _configs[key] = branch_config(conn, branch)
    return _configs[key]


def _variables(
    config: BranchConfig | None, ticket: Any, people: int | None, counter_id: str | None, rules: policy.TenantPolicy
) -> dict[str, Any]:
    """The template variables known when the trigger fired (names in the branch's first language; the message's
    own language picks `service_names` at render time)."""
    service = config.service(ticket.service_id) if config else None
    counter = config.counter(counter_id) if config and counter_id else None
    eta = math.ceil(people * service.avg_service_seconds / 60) if service and people is not None else None
    return {
        "ticket_number": ticket.ticket_number,
        "service_id": ticket.service_id,
        "branch_name": config.name if config else "",
        "service_name": service.name if service else ticket.service_id,
        "service_names": dict(service.names) if service else {},
        "counter_id": counter_id,
        "counter_name": counter.name if counter else (counter_id or ""),
        "people_ahead": people,
        "eta_minutes": eta,
        "threshold": rules.threshold(ticket.service_id),
    }
