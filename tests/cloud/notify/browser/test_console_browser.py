"""The notifications console in Debian's Chromium (Playwright) against a real hub (uvicorn, its dispatcher) and a
real SMTP relay, in Indonesian and English: the template editor's live preview and SMS segment count, saving a
wording, the message log with a filter, the DLQ with a replay that then sends; each page is photographed to
docs/screenshots/notify-<page>-<lang>.png."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.branch import TENANT, Branch, rows, use_email
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.browser import SCREENSHOTS, console_page
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
WORDS = {
    "id": {"segments": "Segmen SMS", "saved": "Tersimpan.", "replayed": "Dijadwalkan ulang.", "replay": "Kirim ulang"},
    "en": {"segments": "SMS segments", "saved": "Saved.", "replayed": "Scheduled again.", "replay": "Replay"},
}


@dataclass
class Hub:
    url: str
    engine: sa.Engine


@pytest.fixture
def hub(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Hub]:
    """The hub on a free port with a branch's tickets: messages sent, skipped, and two refused for good (dead)."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    upsert_user(engine, "nina", PASSWORD, "tenant_admin", [TENANT])
    use_email(engine, smtp_server.settings)
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    branch = Branch(tmp_path / "edge", engine)
    try:
        with served(app) as url:
            for i in range(3):
                branch.enqueue("teller", email=f"nasabah{i}@example.com", phone="081234567890", lang="id")
            branch.enqueue("cs")
            branch.ship()
            wait_until(lambda: len(smtp_server.messages) >= 3, what="three created e-mails")
            branch.call_next("1")
            branch.ship()
            wait_until(lambda: len(smtp_server.messages) >= 4, what="the called e-mail")
            smtp_server.fail_with("550 5.1.1 mailbox unavailable")
            branch.enqueue("teller", email="rudi@example.com", lang="en")
            branch.enqueue("teller", email="sari@example.com", lang="id")
            branch.ship()
            wait_until(lambda: len(rows(engine, status="dead")) >= 2, what="two dead letters")
            smtp_server.fail_with(None)
            yield Hub(url, engine)
    finally:
        branch.stop()
        engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_templates_log_and_dlq_in_the_browser(browser: Browser, hub: Hub, smtp_server: SmtpServer, lang: str) -> None:
    w = WORDS[lang]
    page = console_page(browser, hub.url, "nina", PASSWORD, lang, height=860)
    # template editor: live preview with the SMS segment count; an emoji switches to UCS-2
    page.goto(f"{hub.url}/notify/templates?tenant={TENANT}&trigger=ticket.called&channel=sms&tlang={lang}")
    expect(page.locator("#segments")).to_contain_text(w["segments"])
    body = "Nomor {{ ticket_number }} dipanggil ke {{ counter_name }} 🔔" if lang == "id" else (
        "Number {{ ticket_number }}: please go to {{ counter_name }} 🔔")  # fmt: skip
    page.fill("#body", body)
    expect(page.locator("#preview-text")).to_contain_text("A012")
    expect(page.locator("#segments")).to_contain_text("UCS2")
    page.click("#save")
    expect(page.locator("#saved")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"notify-templates-{lang}.png"), full_page=True)
    # message log, filtered to e-mails that were sent
    page.goto(f"{hub.url}/notify/messages?status=sent&channel=email")
    expect(page.locator("#messages tbody tr").first).to_be_visible()
    assert page.locator("#messages tbody tr[data-status=sent]").count() >= 4
    assert page.locator("#messages tbody tr:not([data-status=sent])").count() == 0
    assert "nasabah0@example.com" not in page.content()
    page.goto(f"{hub.url}/notify/messages")
    page.screenshot(path=str(SCREENSHOTS / f"notify-messages-{lang}.png"), full_page=True)
    # dead letters: replay one; it is sent
    page.goto(f"{hub.url}/notify/dlq")
    dead = page.locator("#messages tbody tr[data-status=dead]")
    expect(dead.first).to_be_visible()
    before = len(smtp_server.messages)
    if lang == "en":
        page.screenshot(path=str(SCREENSHOTS / f"notify-dlq-{lang}.png"), full_page=True)
    dead.first.locator("button.replay").click()
    expect(page.locator("#replayed")).to_have_text(w["replayed"])
    wait_until(lambda: len(smtp_server.messages) > before, what="the replayed e-mail")
    if lang == "id":
        page.screenshot(path=str(SCREENSHOTS / f"notify-dlq-{lang}.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_settings_are_edited_in_the_browser(browser: Browser, hub: Hub, lang: str) -> None:
    """The policy form saves a new threshold; the e-mail provider's password box stays empty (write-only)."""
    page = console_page(browser, hub.url, "nina", PASSWORD, lang, height=860)
    page.goto(f"{hub.url}/notify/settings?tenant={TENANT}&lang={lang}")
    page.fill("#policy input[name='to_go_threshold']", "4")
    page.click("#policy button[type='submit']")
    expect(page.locator("p.notice")).to_have_text(WORDS[lang]["saved"])
    expect(page.locator("#policy input[name='to_go_threshold']")).to_have_value("4")
    password = page.locator("section[data-channel='email'] input[name='password']")
    expect(password).to_have_value("")
    expect(password).to_have_attribute("placeholder", "••••")
    page.screenshot(path=str(SCREENSHOTS / f"notify-settings-{lang}.png"), full_page=True)
    page.context.close()
