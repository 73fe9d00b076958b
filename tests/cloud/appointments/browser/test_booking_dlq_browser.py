"""Booking messages in the notifications console, in Debian's Chromium against a real hub (uvicorn, its booking
sender) and a real SMTP relay, in Indonesian and English: the relay refuses the confirmations for good, the DLQ lists
them as booking confirmations with the contact masked, and its replay button sends one; photographed to
docs/screenshots/notify-booking-dlq-<lang>.png."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.appointments import booking
from cloud.appointments.tables import appt_messages
from cloud.hq_users import upsert_user
from cloud.notify import policy
from cloud.notify.providers import REGISTRY
from cloud.store import create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.appointments.support import add_branch
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.browser import SCREENSHOTS, console_page
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
SLOT = datetime(2027, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
WORDS = {"id": ("konfirmasi janji temu", "Dijadwalkan ulang."), "en": ("booking confirmation", "Scheduled again.")}


@dataclass
class Hub:
    url: str
    engine: sa.Engine
    smtp: SmtpServer


def _statuses(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(appt_messages.c.status).order_by(appt_messages.c.id)).scalars())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """The hub on a free port; two bookings whose confirmations the relay refused for good (dead)."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    smtp = SmtpServer(tmp_path / "smtp").start()
    smtp.fail_with("550 5.1.1 mailbox unavailable")
    add_branch(engine)
    upsert_user(engine, "nina", PASSWORD, "tenant_admin", ["acme"])
    with transaction(engine) as conn:
        policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example"))
        policy.save_provider(conn, "acme", "email", "email", smtp.settings, REGISTRY["email"].SECRETS)
        branch = booking.load_branch(conn, "acme", "jkt-01")
        assert branch is not None
        for name, email in (("Siti Aminah", "siti@example.com"), ("Budi Santoso", "budi@example.com")):
            booking.book(conn, branch, "cs", SLOT, name=name, email=email, phone=None, lang="id", actor="public",
                         now=NOW)  # fmt: skip
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    try:
        with served(app) as url:
            wait_until(lambda: _statuses(engine) == ["dead", "dead"], timeout=60, what="two dead confirmations")
            smtp.fail_with(None)
            yield Hub(url, engine, smtp)
    finally:
        smtp.stop()
        engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_booking_confirmations_in_the_dlq_are_replayed(browser: Browser, hub: Hub, lang: str) -> None:
    kind, replayed = WORDS[lang]
    page = console_page(browser, hub.url, "nina", PASSWORD, lang, height=700)
    page.goto(f"{hub.url}/notify/dlq")
    dead = page.locator("#messages tbody tr[data-source=booking][data-status=dead]")
    expect(dead).to_have_count(2)
    expect(dead.first).to_contain_text(kind)
    expect(dead.first).to_contain_text("@example.com")  # masked: s***@example.com
    assert "siti@example.com" not in page.content()
    assert "budi@example.com" not in page.content()
    page.screenshot(path=str(SCREENSHOTS / f"notify-booking-dlq-{lang}.png"), full_page=True)
    dead.first.locator("button.replay").click()
    expect(page.locator("#replayed")).to_have_text(replayed)
    hub.smtp.wait_for(1)
    wait_until(lambda: "sent" in _statuses(hub.engine), what="the replayed confirmation recorded")
    expect(page.locator("#messages tbody tr[data-source=booking]")).to_have_count(1)
    page.context.close()
