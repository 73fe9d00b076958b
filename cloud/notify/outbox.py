"""The outbox's state machine in the database (US-NOTIF-004): claiming due rows, recording what an attempt did,
delivery reports, replay. Retries are scheduled here, never in memory, so a restart loses nothing.

States: `pending → sending → sent → delivered | failed → (retry: sending again) | dead`, plus `skipped` and
`superseded`. Claiming sets `sending` with a lease and commits before the provider is called; the result is recorded
in a second transaction. A `sending` row whose lease ran out was left by a dispatcher that died mid-send: it is
claimed again and sent with the same idempotency key. Providers that accept a key (they dedupe on it) then never
deliver twice; for the others (SMTP) a crash between the provider accepting and our commit means one duplicate
(at-least-once; the e-mail carries the same Message-ID, so mail clients show it once).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.notify import contacts, policy, push_store, reports, templates
from cloud.notify.providers.base import DeliveryUpdate, OutgoingMessage, SendResult, WhatsAppTemplate
from cloud.notify.tables import attempts, outbox, providers
from cloud.notify.triggers import recipient_of
from cloud.store import insert_ignore, tickets, writer_turn
from sync import links

LEASE = timedelta(seconds=60)  # longer than any provider call (their timeouts are ≤ 30 s)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
DUE = ("pending", "failed")
# What the ticket must still be for a message to make sense (else the row is `superseded`).
STILL = {
    "ticket.created": ("waiting", "held"),
    "ticket.to_go": ("waiting",),
    "ticket.called": ("called",),
    "ticket.recalled": ("called",),
}
FALLBACK_CODES = frozenset({"131026", "132000", "132001", "132005", "132007", "132012", "132015", "132016",
                            "no_template"})  # fmt: skip


def backoff(attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt: exponential with full jitter (2 s, 4 s, 8 s … capped at 10 min), but never
    sooner than the provider's `Retry-After`."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    delay = ceiling * rand()
    return max(delay, retry_after) if retry_after is not None else delay


def superseded_reason(trigger: str, ticket_status: str | None) -> str | None:
    """Why a message no longer makes sense for a ticket now in `ticket_status` (None: send it)."""
    if ticket_status is None:
        return None  # the projection lost the ticket (a resync in progress): the message is still owed
    if ticket_status not in STILL.get(trigger, (ticket_status,)):
        return f"ticket is {ticket_status}"
    return None


def message_key(row: Any) -> str:
    """The idempotency key providers receive: the outbox key, readable."""
    return f"{row.tenant_id}/{row.branch_id}/{row.ticket_id}/{row.trigger}/{row.channel}"


@dataclass(frozen=True)
class Job:
    """A claimed row, ready for its provider."""

    outbox_id: int
    attempt: int  # this round's attempt (the lease guard; compared with max_attempts)
    log_no: int  # its number in the row's attempt log
    tenant: str
    channel: str
    provider: str
    settings: dict[str, Any]
    settings_version: str
    message: OutgoingMessage
    max_attempts: int
    fallback: str
    trigger: str


def _now(now: datetime) -> str:
    return now.isoformat()


def has_due(engine: Engine, now: datetime) -> bool:
    """Whether any row is due (a cheap read, so an idle dispatcher takes no write lock)."""
    stamp = _now(now)
    query = sa.select(outbox.c.id).where(_due(stamp)).limit(1)
    with writer_turn(engine), engine.connect() as conn:  # on SQLite every transaction takes the write lock
        return conn.execute(query).first() is not None


def _due(stamp: str) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(outbox.c.status.in_(DUE), outbox.c.next_attempt_at <= stamp),
        sa.and_(outbox.c.status == "sending", outbox.c.lease_until <= stamp),
    )


def claim(engine: Engine, now: datetime, limit: int = 50, keys_dir: Path | None = None) -> list[Job]:
    """Claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas share the work), re-check each ticket
    (superseded rows stop here), render their messages, and mark them `sending` under a lease."""
    stamp = _now(now)
    jobs: list[Job] = []
    with writer_turn(engine), engine.begin() as conn:
        query = sa.select(outbox).where(_due(stamp)).order_by(outbox.c.next_attempt_at).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        cache = _preload(conn, rows)  # per claim: statuses, contacts, attempt counts, policies, wordings read once
        for row in rows:
            job = _prepare(conn, row, now, keys_dir, cache)
            if job is not None:
                jobs.append(job)
        _mark_sending(conn, jobs, now)
    return jobs


def _preload(conn: Connection, rows: Sequence[Any]) -> dict[Any, Any]:
    """What `_prepare` needs for a whole claim in a few set-wise reads instead of four statements a row (each
    statement costs ~1 ms of SQLAlchemy work on a busy box: the claim was most of a dispatch round)."""
    cache: dict[Any, Any] = {}
    keys = {(r.tenant_id, r.branch_id, r.ticket_id) for r in rows}
    found = conn.execute(
        sa.select(tickets.c.tenant_id, tickets.c.branch_id, tickets.c.ticket_id, tickets.c.status).where(
            sa.tuple_(tickets.c.tenant_id, tickets.c.branch_id, tickets.c.ticket_id).in_(sorted(keys))
        )
    )
    cache["status"] = {(t, b, k): status for t, b, k, status in found}
    by_branch: dict[tuple[str, str], list[str]] = {}
    for tenant, branch_id, ticket_id in keys:
        by_branch.setdefault((tenant, branch_id), []).append(ticket_id)
    cache["contact"] = {
        (tenant, branch_id, ticket_id): contact
        for (tenant, branch_id), ticket_ids in by_branch.items()
        for ticket_id, contact in contacts.read_many(conn, tenant, branch_id, sorted(ticket_ids)).items()
    }
    logged = conn.execute(
        sa.select(attempts.c.outbox_id, sa.func.max(attempts.c.attempt))
        .where(attempts.c.outbox_id.in_([r.id for r in rows]))
        .group_by(attempts.c.outbox_id)
    )
    cache["logged"] = {outbox_id: int(n) for outbox_id, n in logged}
    return cache


def _mark_sending(conn: Connection, jobs: Sequence[Job], now: datetime) -> None:
    """The claimed rows `sending` under a lease and their attempts logged: two statements for the whole claim."""
    if not jobs:
        return
    stamp = _now(now)
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == sa.bindparam("b_id"))
        .values(status="sending", attempts=sa.bindparam("b_attempts"), lease_until=_now(now + LEASE),
                provider=sa.bindparam("b_provider"), updated_at=stamp),
        [{"b_id": j.outbox_id, "b_attempts": j.attempt, "b_provider": j.provider} for j in jobs],
    )  # fmt: skip
    conn.execute(
        attempts.insert(),
        [{"outbox_id": j.outbox_id, "attempt": j.log_no, "started_at": stamp, "provider": j.provider} for j in jobs],
    )


def status_link(public_url: str, keys_dir: Path | None, row: Any) -> str:
    """The ticket's public status page (`<public_url>/t/<token>`), signed with its branch's link key; empty without
    a public URL or the branch's seed."""
    if not public_url or keys_dir is None:
        return ""
    from cloud.ticket_status import link_key  # the hub's one reader of a branch's link key

    key = link_key(keys_dir, row.tenant_id, row.branch_id)
    if key is None:
        return ""
    return f"{public_url.rstrip('/')}/t/{links.sign(key, row.branch_id, f't:{row.ticket_id}')}"


def _cached(cache: dict[Any, Any], key: Any, load: Callable[[], Any]) -> Any:
    if key not in cache:
        cache[key] = load()
    return cache[key]


def _prepare(conn: Connection, row: Any, now: datetime, keys_dir: Path | None, cache: dict[Any, Any]) -> Job | None:
    """One claimed row: superseded, skipped (contact purged, provider removed) or a Job under lease."""
    stamp = _now(now)
    key = (row.tenant_id, row.branch_id, row.ticket_id)
    if (why := superseded_reason(row.trigger, cache["status"].get(key))) is not None:
        _finish(conn, row.id, "superseded", stamp, reason=why)
        return None
    to = recipient_of(cache["contact"].get(key), row.channel)
    found = _cached(cache, ("provider", row.tenant_id, row.channel), lambda: conn.execute(
        sa.select(providers).where(providers.c.tenant_id == row.tenant_id, providers.c.channel == row.channel)
    ).one_or_none())  # fmt: skip
    if to is None or found is None:
        _finish(conn, row.id, "skipped", stamp, reason="no_contact" if to is None else "no_provider")
        return None
    rules = _cached(cache, ("policy", row.tenant_id), lambda: policy.load(conn, row.tenant_id))
    variables = msgspec.json.decode(row.vars)
    names = variables.get("service_names") or {}
    variables["service_name"] = names.get(row.lang) or variables.get("service_name")
    variables["status_url"] = status_link(rules.public_url, keys_dir, row)
    wording, lang = _cached(
        cache,
        ("wording", row.tenant_id, row.trigger, row.channel, row.lang),
        lambda: templates.lookup(conn, row.tenant_id, row.trigger, row.channel, row.lang),
    )
    rendered = templates.render(wording, row.channel, lang, variables)
    attempt = row.attempts + 1
    logged = cache["logged"].get(row.id, 0)  # the attempt log keeps counting across replays (`attempts` restarts)
    template = None
    if rendered.wa_template:
        template = WhatsAppTemplate(rendered.wa_template, lang, rendered.wa_parameters)
    message = OutgoingMessage(
        key=message_key(row), channel=row.channel, to=to, text=rendered.text, subject=rendered.subject,
        html=rendered.html, template=template, correlation_id=row.correlation_id or None,
    )  # fmt: skip
    return Job(row.id, attempt, logged + 1, row.tenant_id, row.channel, found.provider,
               msgspec.json.decode(found.settings), found.updated_at, message, rules.max_attempts,
               rules.fallback(row.channel), row.trigger)  # fmt: skip


def _finish(conn: Connection, outbox_id: int, status: str, stamp: str, **values: Any) -> None:
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == outbox_id)
        .values(status=status, updated_at=stamp, lease_until=None, next_attempt_at=None, **values)
    )


def record(
    engine: Engine, job: Job, result: SendResult, now: datetime, rand: Callable[[], float] = random.random
) -> str:
    """Record one attempt's result; returns the row's new status (see `record_many`)."""
    return record_many(engine, [(job, result)], now, rand)[0]


def record_many(
    engine: Engine,
    results: Sequence[tuple[Job, SendResult]],
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> list[str]:
    """Record a round's results in one transaction; the rows' new statuses (`lost_lease` for a row reclaimed after
    its lease ran out: it belongs to the newer attempt, whose record wins). The rows still ours are read at once
    and updated by one statement for the round (an UPDATE built per row was most of a round's CPU). Delivery reports
    parked for the messages sent (`cloud.notify.reports`: the provider called back before this commit) are applied
    in the same transaction."""
    accepted = [(job.tenant, job.provider, result.provider_message_id) for job, result in results
                if result.outcome == "sent" and result.provider_message_id]  # fmt: skip
    with writer_turn(engine), engine.begin() as conn:
        reports.lock(conn, accepted)  # before the rows' locks, as the webhook takes them
        ids = sorted({job.outbox_id for job, _ in results})
        query = sa.select(outbox.c.id, outbox.c.status, outbox.c.attempts).where(outbox.c.id.in_(ids))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # SQLite: the transaction took the write lock at BEGIN IMMEDIATE
        current = {r.id: (r.status, r.attempts) for r in conn.execute(query)} if ids else {}
        statuses: list[str] = []
        updates: list[dict[str, Any]] = []
        fallbacks: list[Job] = []
        for job, result in results:
            for endpoint in result.gone:  # a browser unsubscribed: never try it again
                push_store.forget_endpoint(conn, job.tenant, endpoint)
            if current.get(job.outbox_id) != ("sending", job.attempt):
                statuses.append("lost_lease")
                continue
            status, values = _outcome(job, result, now, rand)
            if status == "dead" and refused_for_good(job.channel, result):
                values["b_reason"] = (
                    f"{values['b_reason'] or result.code}{fallback_note(conn, job.outbox_id, job.fallback)}"
                )
                fallbacks.append(job)
            statuses.append(status)
            updates.append(values)
        if updates:
            conn.execute(_RECORDED, updates)
        for job in fallbacks:
            fall_back(conn, job.outbox_id, job.fallback, now)
        if results:  # the attempt log in one statement for the round
            conn.execute(
                sa.update(attempts)
                .where(attempts.c.outbox_id == sa.bindparam("b_id"), attempts.c.attempt == sa.bindparam("b_no"))
                .values(finished_at=_now(now), outcome=sa.bindparam("b_outcome"), code=sa.bindparam("b_code"),
                        reason=sa.bindparam("b_reason")),
                [{"b_id": job.outbox_id, "b_no": job.log_no, "b_outcome": result.outcome, "b_code": result.code,
                  "b_reason": result.reason} for job, result in results],
            )  # fmt: skip
        sent = [(job.tenant, job.provider, result.provider_message_id) for (job, result), status
                in zip(results, statuses, strict=True) if status == "sent" and result.provider_message_id]  # fmt: skip
        for (tenant, provider), early in reports.take(conn, sent).items():
            apply_deliveries(conn, tenant, provider, early, now)
    return statuses


# One attempt's result on its row; a value left None keeps the row's provider id and sent time (a replayed row).
_RECORDED = (
    sa.update(outbox)
    .where(outbox.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"), updated_at=sa.bindparam("b_stamp"), code=sa.bindparam("b_code"),
            reason=sa.bindparam("b_reason"), next_attempt_at=sa.bindparam("b_next"), lease_until=None,
            provider_message_id=sa.func.coalesce(sa.bindparam("b_message_id"), outbox.c.provider_message_id),
            sent_at=sa.func.coalesce(sa.bindparam("b_sent"), outbox.c.sent_at))
)  # fmt: skip


def _outcome(job: Job, result: SendResult, now: datetime, rand: Callable[[], float]) -> tuple[str, dict[str, Any]]:
    """The row's new status after an attempt, and the values `_RECORDED` sets."""
    stamp = _now(now)
    values: dict[str, Any] = {"b_id": job.outbox_id, "b_stamp": stamp, "b_code": result.code,
                              "b_reason": result.reason, "b_next": None, "b_message_id": None,
                              "b_sent": None}  # fmt: skip
    if result.outcome == "sent":
        status = "sent"
        values |= {"b_message_id": result.provider_message_id, "b_sent": stamp, "b_reason": None}
    elif result.outcome == "retry" and job.attempt < job.max_attempts:
        status = "failed"
        values["b_next"] = _now(now + timedelta(seconds=backoff(job.attempt, result.retry_after, rand)))
    else:
        status = "dead"
        if result.outcome == "retry":
            values["b_reason"] = f"gave up after {job.attempt} attempts: {result.reason or result.code}"
    return status, values | {"b_status": status}


def refused_for_good(channel: str, result: SendResult) -> bool:
    """Whether a permanent refusal owes the message on the channel's fallback: for WhatsApp "not on WhatsApp" and
    the template errors; for SMS any (a number that takes no SMS, an account refused: e-mail still reaches them)."""
    if result.outcome != "permanent":
        return False
    return (channel == "whatsapp" and result.code in FALLBACK_CODES) or channel == "sms"


def fallback_note(conn: Connection, outbox_id: int, channel: str) -> str:
    """What the log says a dead row's fallback did (`; fallback: sms`), or nothing when it has none."""
    if channel == "none":
        return ""
    row = conn.execute(sa.select(outbox.c.tenant_id, outbox.c.branch_id, outbox.c.ticket_id, outbox.c.trigger)
                       .where(outbox.c.id == outbox_id)).one()  # fmt: skip
    owed = conn.execute(
        sa.select(outbox.c.id).where(outbox.c.tenant_id == row.tenant_id, outbox.c.branch_id == row.branch_id,
                                     outbox.c.ticket_id == row.ticket_id, outbox.c.trigger == row.trigger,
                                     outbox.c.channel == channel)
    ).first()  # fmt: skip
    return f"; fallback: {channel}" + (" (already owed)" if owed is not None else "")


def fall_back(conn: Connection, outbox_id: int, channel: str, now: datetime) -> None:
    """Owe the same message on the fallback channel (once: the key is unique, so a ticket already sent on that
    channel gets nothing more) when the provider refused it for good or reported it undelivered. A channel the
    tenant switched off is recorded `skipped`, as a trigger would."""
    if channel == "none":
        return
    row = conn.execute(sa.select(outbox).where(outbox.c.id == outbox_id)).one()
    reason = policy.load(conn, row.tenant_id).allows(row.trigger, channel)
    stamp = _now(now)
    conn.execute(
        insert_ignore(conn, outbox).values(
            tenant_id=row.tenant_id, branch_id=row.branch_id, ticket_id=row.ticket_id, trigger=row.trigger,
            channel=channel, status="skipped" if reason else "pending", reason=reason, lang=row.lang, vars=row.vars,
            attempts=0, next_attempt_at=None if reason else stamp, fallback_of=row.id, created_at=stamp,
            updated_at=stamp, correlation_id=row.correlation_id,
        )
    )  # fmt: skip


def apply_deliveries(
    conn: Connection, tenant: str, provider: str, updates: Sequence[DeliveryUpdate], now: datetime
) -> int:
    """Apply a provider's delivery reports to the tenant's rows sent through it; returns how many rows changed.
    Reports never move a row backwards (a late `sent` after `delivered` is ignored); a `failed` report (the message
    did not reach the customer, whatever the code) makes the row `dead` and owes the message on the channel's
    fallback (WhatsApp → `whatsapp_fallback`, SMS → `sms_fallback`), named in the row's reason. A report matching
    no row is left to `reports.park_unmatched` (the webhook's caller)."""
    stamp = _now(now)
    changed = 0
    rules = policy.load(conn, tenant)
    for update in updates:
        row = conn.execute(
            sa.select(outbox.c.id, outbox.c.status, outbox.c.channel).where(
                outbox.c.tenant_id == tenant, outbox.c.provider == provider,
                outbox.c.provider_message_id == update.provider_message_id,
            )
        ).first()  # fmt: skip
        if row is None or row.status in ("delivered", "dead", "superseded", "skipped"):
            continue
        if update.status == "delivered":
            _finish(conn, row.id, "delivered", stamp, delivered_at=stamp)
        elif update.status == "failed":
            fallback = rules.fallback(row.channel)
            reason = f"delivery failed: {update.reason or update.code or 'unknown'}"
            _finish(conn, row.id, "dead", stamp, code=update.code,
                    reason=reason + fallback_note(conn, row.id, fallback))  # fmt: skip
            fall_back(conn, row.id, fallback, now)
        else:
            continue  # `sent`: it already is
        changed += 1
    return changed


def replay(conn: Connection, tenant: str, outbox_id: int, now: datetime) -> bool:
    """Send a `dead` row again (from the console's DLQ): pending, due now, attempts counted afresh."""
    stamp = _now(now)
    return bool(
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == outbox_id, outbox.c.tenant_id == tenant, outbox.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=stamp, updated_at=stamp, reason=None, code=None)
        ).rowcount
    )
