"""Scheduled reports (US-ANALYT-006): schedules are rows (a cron expression read in the branch's time zone), run once
per due time even with several hub replicas, e-mailed with the ticket CSV attached and a KPI summary table in the body.

Claiming: each replica's `ReportScheduler` looks for due rows and moves a row's `next_run_at` to its next occurrence
with a conditional update (`WHERE next_run_at = <the due time it read>`): exactly one replica's update matches, the
others see 0 rows and skip it. On PostgreSQL the read also takes `FOR UPDATE SKIP LOCKED` so replicas do not even wait
on each other; SQLite hubs are one process. Sending goes through the notifications area's `send_email` with the
tenant's e-mail provider settings; a failure is kept in `last_error` (the next occurrence runs as usual).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.analytics.export import csv_chunks
from cloud.analytics.facts import load_settings
from cloud.analytics.queries import Scope, kpis
from cloud.analytics.settings import SettingInvalid, check_addresses
from cloud.analytics.tables import schedules
from cloud.background import Periodic
from cloud.notify.mail import send_email
from cloud.notify.policy import provider_settings
from cloud.notify.providers.base import Attachment
from cloud.store import transaction
from sync import kpi

log = logging.getLogger("qms.cloud.analytics.schedules")
MAX_RECIPIENTS = 20
MAX_DAYS = 31
CLAIM_LIMIT = 20
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ScheduleInvalid(ValueError):
    """A schedule field that cannot be used (`field` names it)."""

    def __init__(self, field: str, message: str) -> None:
        """Keep the field's name beside the message."""
        super().__init__(f"{field}: {message}")
        self.field = field


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The cron expression's next occurrence after `after`, read in `timezone` (wall-clock), as UTC."""
    local = after.astimezone(kpi.zone(timezone))
    following: datetime = croniter(cron, local).get_next(datetime)
    return following.astimezone(UTC)


@dataclass(frozen=True)
class NewSchedule:
    """What a caller asks for (validated by `check`)."""

    tenant: str
    name: str
    cron: str
    recipients: tuple[str, ...]
    branch_id: str | None = None
    timezone: str = kpi.DEFAULT_TIMEZONE
    days: int = 1
    lang: str = "id"

    def check(self) -> None:
        """Raise ScheduleInvalid naming the first bad field."""
        if not self.name.strip() or len(self.name) > 120:  # noqa: PLR2004 - the column's size
            raise ScheduleInvalid("name", "1..120 characters")
        if CONTROL.search(self.name):  # PostgreSQL refuses NUL in text; the others garble a mail's subject
            raise ScheduleInvalid("name", "no control characters")
        if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:  # noqa: PLR2004 - minute hour dom mon dow
            raise ScheduleInvalid("cron", "expected five cron fields, e.g. '0 7 * * 1-5'")
        if not self.recipients or len(self.recipients) > MAX_RECIPIENTS:
            raise ScheduleInvalid("recipients", f"1..{MAX_RECIPIENTS} e-mail addresses")
        try:  # the same address rule as the alert recipients
            check_addresses(self.recipients, "recipients")
        except SettingInvalid as exc:
            raise ScheduleInvalid("recipients", exc.reason) from None
        if not 1 <= self.days <= MAX_DAYS:
            raise ScheduleInvalid("days", f"1..{MAX_DAYS}")
        if self.lang not in ("id", "en"):
            raise ScheduleInvalid("lang", "id or en")
        if getattr(kpi.zone(self.timezone), "key", None) != self.timezone:
            raise ScheduleInvalid("timezone", "not a known time zone")
        try:  # five valid fields may still never match a day (0 0 31 2 *)
            next_run(self.cron, self.timezone, datetime.now(UTC))
        except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors
            raise ScheduleInvalid("cron", "never occurs") from exc


def build(engine: Engine, tenant: str, *, name: str, cron: str, recipients: Sequence[str], branch_id: str | None,
          days: int, lang: str, allowed: Sequence[str]) -> NewSchedule:  # fmt: skip
    """A checked schedule from what a form or the API gave: the branch must be one of `allowed` (the tenant's
    branches the caller sees), the time zone is the branch's (Asia/Jakarta for a tenant-wide report), the name is
    trimmed and the cron's spacing normalised. ScheduleInvalid names the first bad field."""
    if branch_id is not None and branch_id not in allowed:
        raise ScheduleInvalid("branch_id", "not one of the tenant's branches")
    zone = kpi.DEFAULT_TIMEZONE
    if branch_id is not None:
        with engine.connect() as conn:
            zone = load_settings(conn, tenant, branch_id).timezone
    new = NewSchedule(tenant=tenant, name=name.strip(), cron=" ".join(cron.split()), recipients=tuple(recipients),
                      branch_id=branch_id, timezone=zone, days=days, lang=lang)  # fmt: skip
    new.check()
    return new


def create(engine: Engine, new: NewSchedule, created_by: str, now: datetime, active: bool = True) -> str:
    """Store a schedule (paused when not `active`); returns its id. Its first run is the cron's next occurrence after
    `now`."""
    new.check()
    schedule_id = secrets.token_hex(8)
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(schedules).values(
                schedule_id=schedule_id, tenant_id=new.tenant, branch_id=new.branch_id, name=new.name, cron=new.cron,
                timezone=new.timezone, recipients=json.dumps(list(new.recipients)), days=new.days, lang=new.lang,
                active=active, next_run_at=next_run(new.cron, new.timezone, now).isoformat(), created_by=created_by,
                created_at=now.isoformat(),
            )
        )  # fmt: skip
        record(conn, actor=created_by, action="report_schedule.create", tenant=new.tenant, branch=new.branch_id,
               target=schedule_id, after=_audited({**asdict(new), "active": active}), at=now)  # fmt: skip
    return schedule_id


def listed(engine: Engine, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
    """The schedules of these tenants (None: all), recipients included (they are the tenant's own staff)."""
    query = sa.select(schedules).order_by(schedules.c.tenant_id, schedules.c.name)
    if tenants is not None:
        query = query.where(schedules.c.tenant_id.in_(sorted(tenants)))
    with engine.connect() as conn:
        return [{**dict(r), "recipients": json.loads(r["recipients"])} for r in conn.execute(query).mappings()]


def get(engine: Engine, schedule_id: str, tenants: frozenset[str] | None) -> dict[str, Any] | None:
    """One schedule of these tenants (None: any), or None (unknown, or another tenant's)."""
    if "\x00" in schedule_id:  # never an id, and PostgreSQL refuses it in a query
        return None
    query = sa.select(schedules).where(schedules.c.schedule_id == schedule_id)
    if tenants is not None:
        query = query.where(schedules.c.tenant_id.in_(sorted(tenants)))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else {**dict(row), "recipients": json.loads(row["recipients"])}


def _audited(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "branch_id", "cron", "timezone", "recipients", "days", "lang", "active")
    return {k: row[k] for k in keep if k in row}


def update(engine: Engine, schedule_id: str, new: NewSchedule, active: bool, tenants: frozenset[str] | None,
           actor: str, now: datetime) -> bool:  # fmt: skip
    """Replace a schedule's fields (its tenant stays; audited); its next run is recomputed from `now`. False when it
    is not one of these tenants' schedules."""
    new.check()
    before = get(engine, schedule_id, tenants)
    if before is None or before["tenant_id"] != new.tenant:
        return False
    values = {"branch_id": new.branch_id, "name": new.name.strip(), "cron": new.cron, "timezone": new.timezone,
              "recipients": json.dumps(list(new.recipients)), "days": new.days, "lang": new.lang, "active": active,
              "next_run_at": next_run(new.cron, new.timezone, now).isoformat(), "last_error": None}  # fmt: skip
    with transaction(engine) as conn:
        conn.execute(sa.update(schedules).where(schedules.c.schedule_id == schedule_id).values(**values))
        record(conn, actor=actor, action="report_schedule.update", tenant=new.tenant, branch=new.branch_id,
               target=schedule_id, before=_audited(before),
               after=_audited({**values, "recipients": list(new.recipients)}), at=now)  # fmt: skip
    return True


def set_active(engine: Engine, schedule_id: str, active: bool, tenants: frozenset[str] | None, actor: str,
               now: datetime) -> bool:  # fmt: skip
    """Pause or resume a schedule (audited as report_schedule.pause|resume; a resumed one's next run is recomputed
    from `now`, so a paused due time is not sent late); False when it is not one of these tenants' schedules."""
    before = get(engine, schedule_id, tenants)
    if before is None:
        return False
    values: dict[str, Any] = {"active": active}
    if active and not before["active"]:
        values["next_run_at"] = next_run(before["cron"], before["timezone"], now).isoformat()
    with transaction(engine) as conn:
        conn.execute(sa.update(schedules).where(schedules.c.schedule_id == schedule_id).values(**values))
        record(conn, actor=actor, action=f"report_schedule.{'resume' if active else 'pause'}",
               tenant=before["tenant_id"], branch=before["branch_id"], target=schedule_id,
               before={"active": bool(before["active"])}, after={"active": active}, at=now)  # fmt: skip
    return True


def remove(engine: Engine, schedule_id: str, tenants: frozenset[str] | None, actor: str, now: datetime) -> bool:
    """Delete a schedule (audited); False when it is not one of these tenants' schedules."""
    before = get(engine, schedule_id, tenants)
    if before is None:
        return False
    with transaction(engine) as conn:
        conn.execute(sa.delete(schedules).where(schedules.c.schedule_id == schedule_id))
        record(conn, actor=actor, action="report_schedule.delete", tenant=before["tenant_id"],
               branch=before["branch_id"], target=schedule_id, before=_audited(before), at=now)  # fmt: skip
    return True


def claim_due(engine: Engine, now: datetime) -> list[tuple[dict[str, Any], datetime]]:
    """The schedules due at `now` that THIS caller won (each with the due time it claimed); their next run moved on."""
    won: list[tuple[dict[str, Any], datetime]] = []
    with engine.begin() as conn:
        query = (
            sa.select(schedules)
            .where(schedules.c.active.is_(True), schedules.c.next_run_at <= now.isoformat())
            .order_by(schedules.c.next_run_at)
            .limit(CLAIM_LIMIT)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for row in conn.execute(query).mappings().all():
            due = datetime.fromisoformat(row["next_run_at"])
            following = next_run(row["cron"], row["timezone"], max(now, due))
            moved = conn.execute(
                sa.update(schedules)
                .where(schedules.c.schedule_id == row["schedule_id"], schedules.c.next_run_at == row["next_run_at"])
                .values(next_run_at=following.isoformat(), last_run_at=now.isoformat())
            ).rowcount
            if moved == 1:
                won.append((dict(row), due))
    return won


def render(engine: Engine, schedule: dict[str, Any], due: datetime) -> tuple[str, str, str, Attachment]:
    """The report for a due time: subject, text and HTML bodies (a KPI table per branch), the CSV attachment.
    It covers the `days` local days before the due time's date in the schedule's zone."""
    last_day = due.astimezone(kpi.zone(schedule["timezone"])).date() - timedelta(days=1)
    first_day = last_day - timedelta(days=int(schedule["days"]) - 1)
    query = kpi.KpiQuery(date_from=first_day, date_to=last_day, group_by=("branch",))
    scope = Scope(frozenset({schedule["tenant_id"]}), schedule["branch_id"])
    with engine.connect() as conn:
        body, _exact = kpis(conn, scope, query)
    english = schedule["lang"] == "en"
    span = first_day.isoformat() if first_day == last_day else f"{first_day.isoformat()} - {last_day.isoformat()}"
    subject = f"{schedule['name']}: {span}"
    heads = ["branch_id", *kpi.KPI_FIELDS]
    rows = [[str(r.get(h) if r.get(h) is not None else "—") for h in heads] for r in body["rows"]]
    totals = body["totals"]
    total_row = ["Total", *(str(totals[h]) if totals[h] is not None else "—" for h in kpi.KPI_FIELDS)]
    intro = (f"Queue report {span}; the tickets are attached as CSV." if english else
             f"Laporan antrean {span}; daftar tiket terlampir sebagai CSV.")  # fmt: skip
    text = intro + "\n\n" + "\n".join("\t".join(r) for r in [heads, *rows, total_row]) + "\n"
    cells = "".join("<tr>" + "".join(f"<td>{_escape(c)}</td>" for c in r) + "</tr>" for r in [*rows, total_row])
    html = (f"<p>{_escape(intro)}</p><table border='1' cellpadding='4' style='border-collapse:collapse'>"
            f"<tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{cells}</table>")  # fmt: skip
    csv_query = kpi.KpiQuery(date_from=first_day, date_to=last_day, sep=";")
    data = b"".join(csv_chunks(engine, scope, csv_query))
    attachment = Attachment(f"tickets-{first_day.isoformat()}-{last_day.isoformat()}.csv", "text/csv", data)
    return subject, text, html, attachment


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ReportScheduler(Periodic):
    """One per hub replica (in the app's lifespan): every `interval` seconds, claim what is due and mail it."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None, interval: float = 30.0) -> None:
        """`clock` is injectable so tests control time."""
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.interval = interval
        self.sent = 0

    task_name = "analytics-report-scheduler"

    async def run_due(self) -> int:
        """Claim and send what is due now; returns how many reports this replica sent."""
        claimed = await asyncio.to_thread(claim_due, self.engine, self.clock())
        sent = 0
        for schedule, due in claimed:
            error = None
            try:
                subject, text, html, attachment = await asyncio.to_thread(render, self.engine, schedule, due)
                settings = await asyncio.to_thread(self._mail_settings, schedule["tenant_id"])
                for recipient in json.loads(schedule["recipients"]):
                    await send_email(settings, recipient, subject, text, html, [attachment])
                sent += 1
            except Exception as exc:  # any failure is the schedule's last_error; the next occurrence runs as usual
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning("scheduled report %s failed: %s", schedule["schedule_id"], error)
            await asyncio.to_thread(self._record, schedule["schedule_id"], error)
        self.sent += sent
        return sent

    def _mail_settings(self, tenant: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            email = provider_settings(conn, tenant).get("email")
        if email is None:
            raise LookupError("the tenant has no e-mail provider configured (Notifications → providers)")
        settings: dict[str, Any] = email["settings"]
        return settings

    def _record(self, schedule_id: str, error: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(schedules).where(schedules.c.schedule_id == schedule_id).values(last_error=error))

    async def tick(self) -> int:
        """The periodic pass (`Periodic`)."""
        return await self.run_due()
