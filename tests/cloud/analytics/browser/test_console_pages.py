"""The analytics console pages in Debian's Chromium (a real hub over uvicorn, signed in through the form, so every form
posts its CSRF token), in Indonesian and English: the settings page (PII switch, alert recipients), scheduled reports
(add, edit, delete) and BI tokens (issued once, revoked). Screenshots docs/screenshots/hq-analytics-{settings,
schedules,bi-tokens}-{id,en}.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from cloud.analytics.anomalies import INTERVAL_ENV
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine, register_branch, transaction
from cloud.web.app import CloudSettings, create_app
from tests.support.browser import SCREENSHOTS, submit_sign_in
from tests.support.providers.hub import served

PASSWORD = "correct horse battery staple 42"
TENANT = "acme"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A hub (uvicorn, SQLite) with one tenant, two branches and its admin."""
    monkeypatch.setenv(INTERVAL_ENV, "0")
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    with transaction(engine) as conn:
        register_branch(conn, TENANT, "jkt-sudirman")
        register_branch(conn, TENANT, "bdg-dago")
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    engine.dispose()
    with served(create_app(CloudSettings(db_url=url))) as base:
        yield base


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_as_ana(page: Page, hub: str, path: str, lang: str) -> None:
    """Open a console page in a language, signing in through the form when sent there."""
    page.goto(f"{hub}/lang/{lang}?next={path}")
    if "/signin" in page.url:
        submit_sign_in(page, "ana", PASSWORD)
    page.wait_for_url(re.compile(re.escape(path)))


def test_settings_page_pii_switch_and_recipients(hub: str, page: Page) -> None:
    for lang, words in (("id", ("Data pribadi", "Tersimpan.", "Tidak tersimpan")),
                        ("en", ("Personal data", "Saved.", "Not saved"))):  # fmt: skip
        open_as_ana(page, hub, "/analytics/settings", lang)
        expect(page.locator("#pii-title")).to_contain_text(words[0])
        box = page.locator("input[name=show_contacts]")
        box.set_checked(lang == "en")  # id: switch contacts off; en: back on
        page.locator("#pii button[type=submit]").click()
        expect(page.locator("[data-saved=pii]")).to_have_text(words[1])
        expect(box).to_be_checked(checked=lang == "en")
        page.fill("#alert_recipients", "ops@bank.example\nnot an address")
        page.locator("#recipients button[type=submit]").click()
        expect(page.locator("p.error")).to_contain_text(words[2])
        expect(page.locator("#alert_recipients")).to_have_value("ops@bank.example\nnot an address")
        page.fill("#alert_recipients", f"ops@bank.example\nlead-{lang}@bank.example")
        page.locator("#recipients button[type=submit]").click()
        expect(page.locator("[data-saved=recipients]")).to_be_visible()
        expect(page.locator("#alert_recipients")).to_have_value(f"ops@bank.example\nlead-{lang}@bank.example")
        page.screenshot(path=str(SCREENSHOTS / f"hq-analytics-settings-{lang}.png"), full_page=True)


def test_schedules_page_add_edit_delete(hub: str, page: Page) -> None:
    for lang, name in (("id", "Laporan harian"), ("en", "Weekly report")):
        open_as_ana(page, hub, "/analytics/schedules", lang)
        add = page.locator("#add")
        add.locator("input[name=name]").fill(name)
        add.locator("select[name=branch_id]").select_option("jkt-sudirman")
        add.locator("input[name=cron]").fill("0 7 * * 1-5")
        add.locator("textarea[name=recipients]").fill("ops@bank.example")
        add.locator("button[type=submit]").click()
        row = page.locator("tr[data-schedule]", has_text=name)
        expect(row).to_contain_text("Asia/Jakarta")
        row.get_by_role("link").click()
        page.locator("#edit input[name=cron]").fill("bad cron")
        page.locator("#edit button[type=submit]").click()
        expect(page.locator("p.error")).to_contain_text("cron:")
        page.locator("#edit input[name=cron]").fill("30 6 * * 1")
        page.locator("#edit button[type=submit]").click()
        row = page.locator("tr[data-schedule]", has_text=name)
        expect(row).to_contain_text("30 6 * * 1")
        page.screenshot(path=str(SCREENSHOTS / f"hq-analytics-schedules-{lang}.png"), full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("form button[type=submit]").click()
        expect(page.locator("[data-saved=deleted]")).to_be_visible()
        expect(page.locator("tr[data-schedule]", has_text=name)).to_have_count(0)


def test_bi_tokens_page_issue_once_and_revoke(hub: str, page: Page) -> None:
    for lang, once in (("id", "hanya ditampilkan sekali"), ("en", "shown only once")):
        open_as_ana(page, hub, "/analytics/bi-tokens", lang)
        page.locator("#issue input[name=name]").fill(f"Power BI {lang}")
        page.locator("#issue button[type=submit]").click()
        expect(page.locator("#secret")).to_contain_text(once)
        secret = page.locator("[data-secret]").input_value()
        assert re.fullmatch(r"qms_bi_[0-9a-f]{16}_[A-Za-z0-9_-]+", secret)
        token_id = secret.split("_")[2]
        row = page.locator(f'tr[data-token="{token_id}"]')
        expect(row).to_have_attribute("data-state", "valid")
        page.screenshot(path=str(SCREENSHOTS / f"hq-analytics-bi-tokens-{lang}.png"), full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("form button[type=submit]").click()
        expect(page.locator(f'tr[data-token="{token_id}"]')).to_have_attribute("data-state", "revoked")
        assert secret not in page.content()  # never shown again
