"""HQ's anomaly alert reaches the branch floor, end to end: the hub's alert row is pushed to the branch's key in the
`qms_alerts` KV bucket of a real nats-server (the branch's own credentials read it), a real `qms-edge serve` keeps it
and its supervisor's floor in Debian's Chromium shows it live over the staff SSE stream (no reload), in Indonesian
and English, and it goes when HQ clears it. Screenshots docs/screenshots/floor-hq-alert-{id,en}.png."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import Engine

from cloud.analytics.alert_push import AlertPublisher, ensure_alerts_bucket
from cloud.analytics.tables import alerts
from cloud.credentials import HUB_KEY, authorization_block, issue
from cloud.store import create_store_engine
from tests.support.appliance import RunningAppliance, seed_demo
from tests.support.nats_server import NatsServer

SCREENSHOTS = Path(__file__).parents[4] / "docs" / "screenshots"
TENANT, BRANCH = "acme", "jkt-sudirman"  # the demo branch
LIVE_MS = 20_000  # the branch polls its key every 5 s; the floor's own periodic refresh is 30 s: this is the SSE


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[Engine, NatsServer, Path, RunningAppliance]]:
    """A hub store, a nats-server that knows the branch, and the demo appliance linked to it."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    keys = tmp_path / "keys"
    seed_file = issue(engine, keys, TENANT, BRANCH).seed_file
    server = NatsServer(tmp_path / "nats", config=authorization_block(engine, keys)).start()
    try:
        seed_demo(tmp_path / "edge")
        args = ("--nats-url", server.url, "--tenant", TENANT, "--nats-nkey", str(seed_file))
        with RunningAppliance(tmp_path / "edge", args=args) as appliance:
            yield engine, server, keys, appliance
    finally:
        server.stop()
        engine.dispose()


def publish(engine: Engine, server: NatsServer, keys: Path) -> int:
    """One pass of the hub's alert push (as the analytics lifespan runs it after each check)."""

    async def once() -> int:
        nc = await nats.connect(server.url, nkeys_seed=str(keys / HUB_KEY))
        try:
            await ensure_alerts_bucket(nc.jetstream())
            return await AlertPublisher(engine, nc.jetstream()).publish_changed()
        finally:
            await nc.close()

    with ThreadPoolExecutor(1) as pool:  # sync Playwright keeps an event loop in this thread
        return pool.submit(asyncio.run, once()).result()


def set_alert(engine: Engine, state: str) -> None:
    """The teller queue's alert row, as the anomaly check writes it."""
    row = {"state": state, "opened_at": "2026-12-07T02:00:00+00:00", "p90_seconds": 1650.0, "baseline_seconds": 410.0,
           "cleared_at": None if state == "open" else "2026-12-07T03:00:00+00:00",
           "updated_at": "2026-12-07T03:00:00+00:00"}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.delete(alerts))
        conn.execute(sa.insert(alerts).values(tenant_id=TENANT, branch_id=BRANCH, service_id="teller", **row))


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/staff/login")
    page.locator("input[name=username]").fill("supervisor")
    page.locator("input[name=password]").fill("demo")
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(lambda url: "/staff/login" not in url)


def test_the_floor_shows_hqs_alert_live_and_drops_it_when_cleared(
    browser: Browser, linked: tuple[Engine, NatsServer, Path, RunningAppliance]
) -> None:
    engine, server, keys, appliance = linked
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, appliance.base_url)
        page.goto(f"{appliance.base_url}/staff/supervisor/")
        region = page.locator('[data-region="hq-alerts"]')
        expect(region).to_be_hidden()
        set_alert(engine, "open")
        assert publish(engine, server, keys) == 1
        # No reload: the branch's watcher keeps the document and the staff stream's notice re-renders the floor.
        expect(page.locator('[data-hq-alert="teller"]')).to_be_visible(timeout=LIVE_MS)
        expect(region).to_contain_text("Peringatan HQ")
        expect(region).to_contain_text("27:30")  # p90 now (1650 s), shown like the floor's other durations
        expect(region).to_contain_text("09:00")  # opened 02:00 UTC, in the branch's time (Asia/Jakarta)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "floor-hq-alert-id.png"), full_page=False)
        page.goto(f"{appliance.base_url}/staff/lang/en?next=/staff/supervisor/")
        expect(region).to_contain_text("HQ alert: queues slower than usual")
        expect(region).to_contain_text("usually 6:50")
        page.screenshot(path=str(SCREENSHOTS / "floor-hq-alert-en.png"), full_page=False)
        set_alert(engine, "cleared")
        assert publish(engine, server, keys) == 1
        expect(region).to_be_hidden(timeout=LIVE_MS)
    finally:
        context.close()
