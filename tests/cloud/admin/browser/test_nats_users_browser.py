"""The branch page in Debian's Chromium (id/en) where the hub operates nats-server: creating a branch says "NATS users
updated at …" after a real reload; with a wrong pid file a new NATS key says why the users were not updated and shows
the manual commands. Photographed to docs/screenshots/hq-nats-users{,-failed}-<lang>.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from cloud.credentials import write_authorization
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import PASSWORD, add_accounts
from tests.support.browser import SCREENSHOTS, console_page
from tests.support.nats_server import NatsServer
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
WORDS = {
    "id": {
        "updated": "Pengguna NATS diperbarui pada",
        "failed": "Pengguna NATS TIDAK diperbarui pada",
        "why": "gone.pid tidak ada",
    },
    "en": {"updated": "NATS users updated at", "failed": "NATS users NOT updated at", "why": "gone.pid does not exist"},
}


@pytest.fixture
def operated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, NatsServer]]:
    """A nats-server reading the hub's include (with a pid file) and a hub that operates it, account ana."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    add_accounts(engine, "ana")
    nats_dir = tmp_path / "nats"
    nats_dir.mkdir()
    write_authorization(engine, tmp_path / "keys", nats_dir / "auth.conf")
    server = NatsServer(nats_dir, config=f'pid_file: "{nats_dir / "nats.pid"}"\ninclude "auth.conf"\n').start()
    monkeypatch.setenv("QMS_NATS_AUTH_FILE", str(nats_dir / "auth.conf"))
    monkeypatch.setenv("QMS_NATS_PID_FILE", str(nats_dir / "nats.pid"))
    settings = CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys")
    try:
        with served(create_app(settings)) as url:
            yield url, server
    finally:
        server.stop()
        engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_branch_page_says_whether_nats_took_the_new_users(
    browser: Browser, operated_hub: tuple[str, NatsServer], lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, _server = operated_hub
    page = console_page(browser, hub, "ana", PASSWORD, lang)
    page.goto(f"{hub}/admin/branches/new")
    page.fill("#tenant", "acme")
    page.fill("#branch_id", "jkt-kuningan")
    page.fill("#name", "KCP Kuningan")
    page.click("#save")
    expect(page.locator("#nats-users")).to_contain_text(WORDS[lang]["updated"])
    expect(page.locator("#nats-users")).to_have_attribute("data-ok", "yes")
    expect(page.locator("#nats-step")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / f"hq-nats-users-{lang}.png"), full_page=True)

    monkeypatch.setenv("QMS_NATS_PID_FILE", str(tmp_path / "gone.pid"))  # the operator moved nats-server's pid file
    page.click("#rekey")
    expect(page.locator("#nats-users")).to_contain_text(WORDS[lang]["failed"])
    expect(page.locator("#nats-error")).to_contain_text(WORDS[lang]["why"])
    expect(page.locator("#nats-step pre")).to_contain_text("qms-cloud branch users")
    page.screenshot(path=str(SCREENSHOTS / f"hq-nats-users-failed-{lang}.png"), full_page=True)
    page.context.close()
