"""Shared set-up for the appointments tests: a branch profile as cloud/admin stores it, a bookable service, the
tenant's providers, the senders' clock, bookings made in the store, and a WhatsApp that reports before it answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.admin.tables import branch_profiles
from cloud.appointments import booking
from cloud.appointments.tables import appt_messages
from cloud.notify import policy
from cloud.notify.providers import REGISTRY
from cloud.store import transaction
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.providers.stand_in import Answer, Recorded
from tests.support.providers.whatsapp import WhatsAppStandIn

HOURS = {d: [["08:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # Monday 08:00 in Jakarta
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=JKT)  # Wednesday


def add_branch(engine: Engine, tenant: str = "acme", branch_id: str = "jkt-01", zone: str = "Asia/Jakarta", *,
               name: str = "KCP Kuningan", address: str = "", hours: dict[str, list[list[str]]] = HOURS,
               service: tuple[str, str] = ("cs", "Customer service"), capacity: int = 2) -> None:  # fmt: skip
    """An active branch (open 08:00-12:00 on weekdays unless `hours` say otherwise), with one bookable service (by
    default `cs`: 30-minute slots, 2 places)."""
    with transaction(engine) as conn:
        conn.execute(
            branch_profiles.insert().values(
                tenant_id=tenant, branch_id=branch_id, name=name, timezone=zone, address=address,
                hours=json.dumps(hours), areas="[]", status="active", created_at="2026-01-01T00:00:00+00:00",
                updated_at="2026-01-01T00:00:00+00:00",
            )
        )  # fmt: skip
        booking.save_service(conn, tenant, branch_id, service[0], name=service[1], slot_minutes=30, capacity=capacity)


class Clock:
    """The senders' (and the app's) clock, moved by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def use_provider(engine: Engine, channel: str, provider: str, settings: dict[str, Any]) -> None:
    """Acme's `channel` through `provider` with `settings` (its secrets stored as the console stores them)."""
    with transaction(engine) as conn:
        policy.save_provider(conn, "acme", channel, provider, settings, REGISTRY[provider].SECRETS)


def use_whatsapp(engine: Engine, wa: WhatsAppStandIn) -> None:
    """Acme's WhatsApp through the stand-in."""
    use_provider(engine, "whatsapp", "whatsapp", {
        "base_url": wa.base_url, "phone_number_id": wa.phone_number_id, "access_token": wa.access_token,
        "app_secret": wa.app_secret, "verify_token": "vt"})  # fmt: skip


@contextmanager
def mail_relay(engine: Engine, tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP relay (aiosmtpd) as acme's e-mail, links to https://hq.example; stopped on exit."""
    smtp = SmtpServer(tmp_path / "smtp").start()
    try:
        use_provider(engine, "email", "email", smtp.settings)
        with transaction(engine) as conn:
            policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example"))
        yield smtp
    finally:
        smtp.stop()


def book(engine: Engine, *, email: str | None = None, phone: str | None = None, lang: str = "id",
         at: datetime = SLOT, now: datetime = NOW) -> str:  # fmt: skip
    """Siti's booking of `cs` at `at`, made in the store as the public page makes it; its id."""
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        visit = booking.book(conn, branch, "cs", at, name="Siti Aminah", email=email, phone=phone, lang=lang,
                             actor="public", now=now)  # fmt: skip
    return visit.booking_id


def message_rows(engine: Engine, booking_id: str, channel: str | None = None) -> list[Any]:
    """The booking's message rows (on `channel`, when given), oldest first."""
    query = sa.select(appt_messages).where(appt_messages.c.booking_id == booking_id).order_by(appt_messages.c.id)
    if channel:
        query = query.where(appt_messages.c.channel == channel)
    with engine.connect() as conn:
        return list(conn.execute(query))


class EagerWhatsApp(WhatsAppStandIn):
    """The Graph API calling the webhook with `sent` and `delivered` before its answer reaches the sender."""

    def __init__(self) -> None:
        super().__init__()
        self.webhook_url = ""
        self.hub_up = threading.Event()  # the sender may send while the hub's start is still being awaited
        self.callbacks: list[httpx.Response] = []

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Accept, report, then answer."""
        answer = super().answer(kind, request)
        if answer.status == 200:
            assert self.hub_up.wait(10)
            for status in ("sent", "delivered"):
                self.callbacks.append(self.report(self.webhook_url, self.sent[-1]["id"], status))
        return answer
