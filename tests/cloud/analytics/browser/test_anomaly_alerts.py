"""The HQ dashboard's anomaly alerts in Debian's Chromium, Indonesian and English: an open alert is listed above the
live board with the current and usual p90 and its start in the branch's time; screenshots
docs/screenshots/hq-anomaly-alert-{id,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.analytics.anomalies import INTERVAL_ENV
from cloud.analytics.tables import alerts
from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.branch_events import TENANT, make_branch_events, subject
from tests.support.browser import SCREENSHOTS, basic_auth_page
from tests.support.providers.hub import served

PASSWORD = "correct horse battery staple 42"
BRANCH = "jkt-sudirman"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A hub (uvicorn, SQLite) with a branch's real log and one open alert on its teller queue; no live check."""
    monkeypatch.setenv(INTERVAL_ENV, "0")
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    assert not apply_batch(
        engine, [Incoming(subject(), o.payload) for o in make_branch_events(tmp_path / "e")]
    ).problems
    with engine.begin() as conn:
        conn.execute(sa.insert(alerts).values(tenant_id=TENANT, branch_id=BRANCH, service_id="teller", state="open",
                                              opened_at="2026-12-07T02:00:00+00:00", cleared_at=None,
                                              p90_seconds=1650.0, baseline_seconds=410.0,
                                              updated_at="2026-12-07T02:00:00+00:00"))  # fmt: skip
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    engine.dispose()
    with served(create_app(CloudSettings(db_url=url))) as base:
        yield base


def test_an_open_alert_is_listed_in_both_languages(browser: Browser, hub: str) -> None:
    page = basic_auth_page(browser, "ana", PASSWORD)
    try:
        for lang, heading in (("id", "antrean lebih lambat"), ("en", "slower than usual")):
            page.goto(f"{hub}/analytics?lang={lang}")
            expect(page.locator("#alerts")).to_contain_text(heading)
            row = page.locator("table.alerts tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("teller")
            expect(row).to_contain_text("27:30")  # p90 now, mm:ss
            expect(row).to_contain_text("2026-12-07 09:00 WIB")
            page.screenshot(path=str(SCREENSHOTS / f"hq-anomaly-alert-{lang}.png"))
    finally:
        page.context.close()
