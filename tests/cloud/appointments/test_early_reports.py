"""A booking message's delivery report that arrives before its send is recorded is applied when it is (issue 12): a
WhatsApp stand-in posts its signed `sent` and `delivered` status notifications to the hub's webhook *before* it
answers the send, with the real hub app (webhook route and booking sender in one process) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from cloud.appointments import booking
from cloud.appointments.tables import appt_messages
from cloud.notify import policy
from cloud.notify.providers import REGISTRY
from cloud.notify.tables import parked_reports
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.support import add_branch
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
from tests.support.providers.stand_in import Answer, Recorded
from tests.support.providers.whatsapp import WhatsAppStandIn

SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
BOOKED_AT = datetime(2027, 3, 1, 8, 0, tzinfo=ZoneInfo("Asia/Jakarta"))


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


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


def test_an_early_report_of_a_booking_message_is_applied_when_the_send_is_recorded(
    tmp_path: Path, store_url: str, engine: sa.Engine
) -> None:
    add_branch(engine)
    with EagerWhatsApp() as wa:
        with transaction(engine) as conn:
            policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example"))
            policy.save_provider(conn, "acme", "whatsapp", "whatsapp", {
                "base_url": wa.base_url, "phone_number_id": wa.phone_number_id, "access_token": wa.access_token,
                "app_secret": wa.app_secret, "verify_token": "vt"}, REGISTRY["whatsapp"].SECRETS)  # fmt: skip
            branch = booking.load_branch(conn, "acme", "jkt-01")
            assert branch is not None
            visit = booking.book(conn, branch, "cs", SLOT, name="Siti Aminah", email=None, phone="081234567890",
                                 lang="id", actor="public", now=BOOKED_AT)  # fmt: skip
        with served(create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as base:
            wa.webhook_url = f"{base}/api/v1/notify/webhooks/whatsapp/acme"
            wa.hub_up.set()

            def row() -> Any:
                with engine.connect() as conn:
                    return conn.execute(
                        sa.select(appt_messages.c.status, appt_messages.c.provider_message_id)
                        .where(appt_messages.c.booking_id == visit.booking_id, appt_messages.c.status == "delivered")
                    ).first()  # fmt: skip

            delivered = wait_until(row, timeout=60, what="the confirmation delivered")
        # both reports came before the send was recorded: they matched no row and were parked, then applied by the
        # sender's record (the `sent` one is not kept: recording the send says as much)
        assert [(r.status_code, r.json()) for r in wa.callbacks] == [(200, {"updates": 1, "applied": 0})] * 2
        assert delivered.provider_message_id == wa.sent[0]["id"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(parked_reports)).scalar_one() == 0
