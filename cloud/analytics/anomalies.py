"""Anomaly alerts (US-ANALYT-007): a service's waits now are far above what is usual for this weekday and hour.

Every check compares, per branch and service, the rolling p90 wait of the tickets called in the last `window`
(exact, from the facts) with the baseline: the p90 of the same weekday and local hour over the previous `weeks`
weeks, from the hourly rollups' wait histograms (mergeable, so no scan of old facts). The decision is a pure state
machine (`decide`) so it is tested on synthetic series with a fixed clock:

- open when at least `min_sample` waits were measured, a baseline exists, and p90 > max(baseline * `factor`,
  `floor_s`) — the floor keeps a quiet service whose usual wait is 20 s from alerting at 40 s;
- clear only when p90 < max(baseline * `clear_factor`, `floor_s`) or nothing was measured (hysteresis: between the
  two thresholds the state stays as it is);
- after a clear, no new alert for `cooldown` (a flapping queue sends one e-mail, not one a minute).

An alert opening is written to `analytics_alerts` (one row per tenant, branch, service: the HQ dashboard lists the
open ones, and `cloud.analytics.alert_push` carries them to the branch's floor) and e-mailed to the tenant's alert
recipients (its own setting, edited on the console's analytics settings page) through the tenant's e-mail provider.
Several hub replicas: each check locks the tenant's branch settings rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL;
a replica finding them locked skips them, and since the state changes in that same transaction only the replica that
opened an alert sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiosmtplib
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.analytics import settings as tenant_settings
from cloud.analytics.tables import WAIT_BUCKETS, alerts, branch_settings, facts, rollups
from cloud.background import Periodic
from cloud.notify.mail import send_email
from cloud.notify.policy import provider_settings
from sync.kpi_facts import local_date_hour
from sync.kpi_stats import exact_percentile, hist_percentile

log = logging.getLogger("qms.cloud.analytics.anomalies")
INTERVAL_ENV = "QMS_ANOMALY_CHECK_SECONDS"  # how often a replica checks (0 = never)


@dataclass(frozen=True)
class Policy:
    """Thresholds of the detector (defaults: 30 min window, 4 weeks, x1.5 to open, x1.2 to clear, 5 min floor)."""

    window: timedelta = timedelta(minutes=30)
    weeks: int = 4
    factor: float = 1.5
    clear_factor: float = 1.2
    floor_s: float = 300.0
    min_sample: int = 5
    cooldown: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class AlertState:
    """One service's alert: open or not, when it opened and last cleared."""

    open: bool = False
    opened_at: datetime | None = None
    cleared_at: datetime | None = None


def decide(
    state: AlertState, p90: float | None, sample: int, baseline: float | None, now: datetime, policy: Policy
) -> tuple[AlertState, str | None]:
    """The next state and what happened: "opened", "cleared" or None (pure)."""
    if state.open:
        if p90 is None or baseline is None or p90 < max(baseline * policy.clear_factor, policy.floor_s):
            return replace(state, open=False, cleared_at=now), "cleared"
        return state, None
    if p90 is None or baseline is None or sample < policy.min_sample:
        return state, None
    if state.cleared_at is not None and now - state.cleared_at < policy.cooldown:
        return state, None
    if p90 > max(baseline * policy.factor, policy.floor_s):
        return AlertState(open=True, opened_at=now, cleared_at=state.cleared_at), "opened"
    return state, None


@dataclass(frozen=True)
class Opened:
    """An alert that just opened (to be e-mailed)."""

    tenant_id: str
    branch_id: str
    service_id: str
    p90_s: float
    baseline_s: float
    at: datetime


def window_p90(conn: Connection, tenant: str, branch: str, service: str, now: datetime, policy: Policy) -> tuple[
    float | None, int]:  # fmt: skip
    """The exact p90 wait of the tickets first called in the window, and how many there were."""
    since = (now - policy.window).isoformat()
    query = sa.select(facts.c.wait_seconds).where(
        facts.c.tenant_id == tenant, facts.c.branch_id == branch, facts.c.service_id == service,
        facts.c.called_at >= since, facts.c.called_at <= now.isoformat(), facts.c.wait_seconds.is_not(None),
    )  # fmt: skip
    waits = sorted(float(w) for w in conn.execute(query).scalars())
    return exact_percentile(waits, 0.9), len(waits)


def baseline_p90(conn: Connection, tenant: str, branch: str, service: str, local_day: date, hour: int,
                 policy: Policy) -> float | None:  # fmt: skip
    """The p90 wait of the same weekday and local hour over the previous weeks, from the rollups' histograms."""
    days = [(local_day - timedelta(weeks=w)).isoformat() for w in range(1, policy.weeks + 1)]
    sums = [sa.func.coalesce(sa.func.sum(rollups.c[name]), 0) for name in WAIT_BUCKETS]
    query = sa.select(*sums).where(
        rollups.c.tenant_id == tenant, rollups.c.branch_id == branch, rollups.c.service_id == service,
        rollups.c.local_date.in_(days), rollups.c.local_hour == hour,
    )  # fmt: skip
    hist = [int(v) for v in conn.execute(query).one()]
    return hist_percentile(hist, 0.9) if sum(hist) else None


def _state(row: Any) -> AlertState:
    if row is None:
        return AlertState()
    parse = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    return AlertState(row.state == "open", parse(row.opened_at), parse(row.cleared_at))


def check_tenant(conn: Connection, tenant: str, now: datetime, policy: Policy) -> list[Opened]:
    """Check every branch and service of a tenant seen in the window (claiming its branches); returns the alerts
    that opened. Runs inside the caller's transaction."""
    claim = sa.select(branch_settings.c.branch_id, branch_settings.c.timezone).where(
        branch_settings.c.tenant_id == tenant
    )
    if conn.dialect.name == "postgresql":
        claim = claim.with_for_update(skip_locked=True)
    opened: list[Opened] = []
    for branch, tz in conn.execute(claim).all():
        since = (now - policy.window).isoformat()
        active = (
            sa.select(facts.c.service_id)
            .distinct()
            .where(facts.c.tenant_id == tenant, facts.c.branch_id == branch, facts.c.called_at >= since)
        )
        existing = {r.service_id: r for r in conn.execute(
            sa.select(alerts).where(alerts.c.tenant_id == tenant, alerts.c.branch_id == branch))}  # fmt: skip
        local_day, hour = local_date_hour(now, tz)
        for service in sorted(set(conn.execute(active).scalars()) | set(existing)):
            p90, sample = window_p90(conn, tenant, branch, service, now, policy)
            baseline = baseline_p90(conn, tenant, branch, service, date.fromisoformat(local_day), hour, policy)
            before = _state(existing.get(service))
            after, what = decide(before, p90, sample, baseline, now, policy)
            if what is None:
                continue
            values = {"state": "open" if after.open else "cleared",
                      "opened_at": after.opened_at.isoformat() if after.opened_at else None,
                      "cleared_at": after.cleared_at.isoformat() if after.cleared_at else None,
                      "p90_seconds": p90, "baseline_seconds": baseline, "updated_at": now.isoformat()}  # fmt: skip
            if service in existing:
                key = (alerts.c.tenant_id == tenant, alerts.c.branch_id == branch, alerts.c.service_id == service)
                conn.execute(sa.update(alerts).where(*key).values(**values))
            else:
                conn.execute(sa.insert(alerts).values(tenant_id=tenant, branch_id=branch, service_id=service, **values))
            if what == "opened" and p90 is not None and baseline is not None:
                opened.append(Opened(tenant, branch, service, p90, baseline, now))
    return opened


def open_alerts(conn: Connection, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
    """The open alerts of these tenants (None = all), for the HQ dashboard."""
    query = sa.select(alerts).where(alerts.c.state == "open").order_by(alerts.c.tenant_id, alerts.c.branch_id,
                                                                       alerts.c.service_id)  # fmt: skip
    if tenants is not None:
        query = query.where(alerts.c.tenant_id.in_(sorted(tenants)))
    return [dict(r) for r in conn.execute(query).mappings()]


def recipients(conn: Connection, tenant: str) -> list[str]:
    """The tenant's anomaly alert recipients (its own setting, cloud/analytics/settings.py; none set: no e-mail)."""
    return list(tenant_settings.load(conn, tenant).alert_recipients)


def message(alert: Opened) -> tuple[str, str]:
    """Subject and text of an alert e-mail (Indonesian and English)."""
    minutes = alert.p90_s / 60
    usual = alert.baseline_s / 60
    subject = f"[QMS] Antrean lambat / Slow queue: {alert.branch_id} {alert.service_id}"
    text = (f"Waktu tunggu p90 {minutes:.1f} menit (biasanya {usual:.1f} menit) di {alert.branch_id}, layanan "
            f"{alert.service_id}.\nWait p90 {minutes:.1f} min (usually {usual:.1f} min) at {alert.branch_id}, "
            f"service {alert.service_id}, {alert.at.isoformat()}.\n")  # fmt: skip
    return subject, text


class AnomalyChecker(Periodic):
    """The background check of one hub replica: every `interval` seconds, each tenant in its own transaction."""

    def __init__(self, engine: Engine, policy: Policy | None = None, clock: Callable[[], datetime] | None = None,
                 interval: float = 60.0) -> None:  # fmt: skip
        self.engine, self.policy, self.interval = engine, policy or Policy(), interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sent = 0
        self.on_checked: Callable[[], None] | None = None  # after each check (the floor push publishes what changed)

    task_name = "analytics-anomalies"

    def _check_all(self, now: datetime) -> list[tuple[Opened, list[str], dict[str, Any] | None]]:
        with self.engine.connect() as conn:
            tenants = list(conn.execute(sa.select(branch_settings.c.tenant_id).distinct()).scalars())
        found = []
        for tenant in tenants:
            with self.engine.begin() as conn:
                opened = check_tenant(conn, tenant, now, self.policy)
                if opened:
                    email = provider_settings(conn, tenant).get("email")
                    to = recipients(conn, tenant)
                    found += [(o, to, email["settings"] if email else None) for o in opened]
        return found

    async def run_once(self) -> list[Opened]:
        """One check of every tenant; e-mails each alert that opened. Returns them."""
        found = await asyncio.to_thread(self._check_all, self.clock())
        for alert, to, settings in found:
            log.warning("anomaly: %s/%s %s p90 %.0f s (baseline %.0f s)", alert.tenant_id, alert.branch_id,
                        alert.service_id, alert.p90_s, alert.baseline_s)  # fmt: skip
            if settings is None:
                continue
            subject, text = message(alert)
            for address in to:
                try:
                    await send_email(settings, address, subject, text)
                    self.sent += 1
                except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                    log.warning("anomaly e-mail for %s failed: %s", alert.tenant_id, type(exc).__name__)
        if self.on_checked is not None:
            self.on_checked()
        return [alert for alert, _, _ in found]

    async def tick(self) -> list[Opened]:
        """The periodic pass (`Periodic`)."""
        return await self.run_once()
