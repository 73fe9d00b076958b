"""A booking message's delivery report that arrives before its send is recorded is applied when it is (issue 12): a
WhatsApp stand-in posts its signed `sent` and `delivered` status notifications to the hub's webhook *before* it
answers the send, with the real hub app (webhook route and booking sender in one process) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cloud.appointments.tables import appt_messages
from cloud.notify.tables import parked_reports
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.support import EagerWhatsApp, book, use_whatsapp
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served


def test_an_early_report_of_a_booking_message_is_applied_when_the_send_is_recorded(
    tmp_path: Path, store_url: str, engine: sa.Engine
) -> None:
    with EagerWhatsApp() as wa:
        use_whatsapp(engine, wa)
        booking_id = book(engine, phone="081234567890")  # booked Monday 08:00 in Jakarta
        with served(create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as base:
            wa.webhook_url = f"{base}/api/v1/notify/webhooks/whatsapp/acme"
            wa.hub_up.set()

            def row() -> Any:
                with engine.connect() as conn:
                    return conn.execute(
                        sa.select(appt_messages.c.status, appt_messages.c.provider_message_id)
                        .where(appt_messages.c.booking_id == booking_id, appt_messages.c.status == "delivered")
                    ).first()  # fmt: skip

            delivered = wait_until(row, timeout=60, what="the confirmation delivered")
        # both reports came before the send was recorded: they matched no row and were parked, then applied by the
        # sender's record (the `sent` one is not kept: recording the send says as much)
        assert [(r.status_code, r.json()) for r in wa.callbacks] == [(200, {"updates": 1, "applied": 0})] * 2
        assert delivered.provider_message_id == wa.sent[0]["id"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(parked_reports)).scalar_one() == 0
