"""The notifications console in Debian's Chromium (Playwright) against a real hub (uvicorn, its dispatcher) and a
real SMTP relay, in Indonesian and English: the template editor's live preview and SMS segment count, saving a
wording, the message log with a filter, the DLQ with a replay that then sends; each page is photographed to
docs/screenshots/notify-<page>-<lang>.png."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from playwright.sync_api import Browser, Page, expect

from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.notify.branch import TENANT, Branch, rows, use_email
from tests.cloud.notify.smtp_server import SmtpServer
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
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
    port = free_port()
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="hub started")
    branch = Branch(tmp_path / "edge", engine)
    try:
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
        yield Hub(f"http://127.0.0.1:{port}", engine)
    finally:
        branch.stop()
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def signed_in(browser: Browser, hub: Hub, lang: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="id-ID" if lang == "id" else "en-US")
    page = context.new_page()
    page.goto(f"{hub.url}/lang/{lang}?next=/signin")
    page.fill("#username", "nina")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.wait_for_url(f"{hub.url}/**")
    return page


@pytest.mark.parametrize("lang", ["id", "en"])
def test_templates_log_and_dlq_in_the_browser(browser: Browser, hub: Hub, smtp_server: SmtpServer, lang: str) -> None:
    w = WORDS[lang]
    page = signed_in(browser, hub, lang)
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
    page = signed_in(browser, hub, lang)
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
