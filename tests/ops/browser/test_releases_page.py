"""The console's releases page in Debian's Chromium against a real hub (uvicorn), in Indonesian and English: a
registered release shown per branch with its canary wave and an appliance's failure report, then published to the
rest of the tenant through the page's form; photographed to docs/screenshots/hq-releases-<lang>.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.credentials import issue
from cloud.hq_users import upsert_user
from cloud.releases import fleet, signing
from cloud.releases.tables import release_reports
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.support.browser import SCREENSHOTS, console_page
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
PASSWORD = "correct-horse-battery"
WORDS = {"id": ("Rilis perangkat lunak", "Kanari", "Sisanya", "Terbitkan"),
         "en": ("Software releases", "Canary", "The rest", "Publish")}  # fmt: skip


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """A hub with two branches, release 0.3.0 on the canary branch (which reported a rollback), and account root."""
    db = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(db)
    for branch in ("jkt-sudirman", "bdg-dago"):
        issue(engine, tmp_path / "keys", "acme", branch)
    upsert_user(engine, "root", PASSWORD, "platform_admin", ["*"])
    wheel = tmp_path / "qms-0.3.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    key = signing.load_or_create_key(tmp_path / "release.key")
    fleet.register(engine, signing.make_bundle([wheel], "0.3.0", tmp_path / "releases" / "0.3.0", key))
    fleet.publish(engine, "0.3.0", "acme", "canary", branch_ids=["jkt-sudirman"], actor="root")
    with engine.begin() as conn:
        conn.execute(sa.insert(release_reports).values(tenant_id="acme", branch_id="jkt-sudirman", version="0.3.0",
                                                       status="rolled_back", running="0.2.0",
                                                       detail="health check failed after the switch",
                                                       reported_at="2026-12-05T01:00:00+00:00"))  # fmt: skip
    try:
        with served(create_app(CloudSettings(db_url=db))) as url:
            yield url
    finally:
        engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_releases_page_shows_waves_and_failures_and_publishes(browser: Browser, hub: str, lang: str) -> None:
    title, canary, rest, publish = WORDS[lang]
    page = console_page(browser, hub, "root", PASSWORD, lang)
    page.click("a[data-nav=releases]")
    expect(page.locator("h1")).to_have_text(title)
    row = page.locator('tr[data-branch="acme/jkt-sudirman"]')
    expect(row).to_contain_text("0.3.0")
    expect(row).to_contain_text(canary)
    expect(row).to_contain_text("rolled_back")
    page.screenshot(path=str(SCREENSHOTS / f"hq-releases-{lang}.png"), full_page=True)
    page.select_option("select[name=wave]", "rest")
    page.click(f"#publish-form button:has-text('{publish}')")
    expect(page.locator("#published")).to_be_visible()
    expect(page.locator('tr[data-branch="acme/bdg-dago"]')).to_contain_text(rest)
    page.context.close()
