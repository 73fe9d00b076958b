"""The HQ dashboard in Debian's Chromium: a call applied at the hub shows on the open dashboard within 1 s (SSE, no
reload); filters and drill-down; screenshots in Indonesian and English (docs/screenshots/hq-dashboard-{id,en}.png).

The hub runs for real (uvicorn on a free port, SQLite store); the branch's events are the appliance's own log
(`make_branch_events`), applied by the consumer's `apply_batch` in the test's thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from cloud.apply import Incoming, apply_batch
from cloud.hq_users import upsert_user
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.relay import Outgoing
from tests.cloud.branch_events import TENANT, make_branch_events, subject
from tests.support.browser import SCREENSHOTS, basic_auth_page
from tests.support.providers.hub import served

PASSWORD = "correct horse battery staple 42"
BRANCH = "jkt-sudirman"


@pytest.fixture(scope="module")
def branch_log(tmp_path_factory: pytest.TempPathFactory) -> list[Outgoing]:
    """The appliance's real log: 20 tickets, one done, two called (the last event is the second call)."""
    return make_branch_events(tmp_path_factory.mktemp("edge"))


@pytest.fixture
def hub(tmp_path: Path, branch_log: list[Outgoing]) -> Iterator[tuple[str, sa.Engine]]:
    """The hub behind uvicorn with every event but the last call applied, and acme's admin."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(url)
    assert not apply_batch(engine, [Incoming(subject(), o.payload) for o in branch_log[:-1]]).problems
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    try:
        with served(create_app(CloudSettings(db_url=url))) as base:
            yield base, engine
    finally:
        engine.dispose()


def test_dashboard_follows_a_call_filters_and_drills_down(
    browser: Browser, hub: tuple[str, sa.Engine], branch_log: list[Outgoing]
) -> None:
    """Open the dashboard, apply the branch's next call: the row changes within 1 s; filter by service, open the
    tickets behind a figure; screenshots in both languages."""
    base, engine = hub
    page = basic_auth_page(browser, "ana", PASSWORD, height=1000)
    page.goto(f"{base}/analytics?lang=en")
    row = page.locator(f"#live-{TENANT}-{BRANCH}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    waiting_before = int(row.locator('[data-k="waiting"]').inner_text())
    started = time.monotonic()
    assert not apply_batch(engine, [Incoming(subject(), branch_log[-1].payload)]).problems
    expect(row.locator('[data-k="waiting"]')).to_have_text(str(waiting_before - 1), timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    page.wait_for_timeout(1000)  # let the highlight fade before the picture
    page.screenshot(path=str(SCREENSHOTS / "hq-dashboard-en.png"), full_page=True)

    page.select_option("select[name=group_by]", "service")
    page.click("#apply-filters")
    expect(page.locator("#kpi-table tbody tr")).to_have_count(2)
    expect(page.locator("#kpi-table tbody tr").first).to_contain_text("cs")
    page.locator("#kpi-table a.drill").first.click()
    expect(page.locator("#drill-table tbody tr")).not_to_have_count(0)
    assert all(text == "cs" for text in page.locator("#drill-table tbody tr td:nth-child(3)").all_inner_texts())

    page.goto(f"{base}/analytics?lang=id")
    expect(page.locator("h1")).to_have_text("Analitik")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    page.screenshot(path=str(SCREENSHOTS / "hq-dashboard-id.png"), full_page=True)
    page.context.close()
