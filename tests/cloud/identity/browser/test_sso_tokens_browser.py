"""An SSO user's API token in Debian's Chromium (id/en) against a real hub and a real local OpenID provider: alice,
acme's admin by her IdP group, signs in through the provider and creates a token on the API tokens page (it works
with Bearer); tina disables her on the Single sign-on page and the token stops. Screenshots
docs/screenshots/hq-tokens-sso-{id,en}.png and docs/screenshots/hq-sso-users-{id,en}.png."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from oidc_provider_mock import User, run_server_in_thread  # type: ignore[import-untyped]
from playwright.sync_api import Page, expect

from cloud.hq_users import upsert_user
from cloud.identity import sso
from cloud.store import branches, create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from tests.cloud.identity.browser.test_signin_browser import PASSWORD, page
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
__all__ = ["page"]  # the page fixture of the sign-in tests


@pytest.fixture
def sso_hub(tmp_path: Path) -> Iterator[str]:
    """The hub on a free port: acme with one branch, tina (tenant admin, password), acme's OIDC provider mapping
    the group qms-admins to tenant_admin, and alice in that group."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    with transaction(engine) as conn:
        row = {"tenant_id": "acme", "branch_id": "jkt-sudirman", "next_seq": 1, "last_hash": "0" * 64, "events": 0,
               "duplicates": 0, "status": "ok", "updated_at": "2026-12-04T00:00:00+00:00"}  # fmt: skip
        conn.execute(branches.insert().values(**row))
    upsert_user(engine, "tina", PASSWORD, "tenant_admin", ["acme"])
    users = [User(sub="alice", claims={"email": "alice@acme.example", "groups": ["qms-admins"]})]
    with run_server_in_thread(require_nonce=True, user_claims=users, access_token_max_age=timedelta(minutes=5)) as idp:
        settings = sso.IdpSettings(roles={"qms-admins": "tenant_admin"}, issuer=f"http://localhost:{idp.server_port}",
                                   client_id="qms-hub", client_secret="hub-client-secret")  # fmt: skip
        sso.save(engine, "acme", "oidc", settings, datetime.now(UTC))
        port = free_port()
        app = create_app(CloudSettings(db_url=store_url))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, what="the hub to listen")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)
            engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_an_sso_user_creates_a_token_and_is_disabled(sso_hub: str, page: Page, lang: str) -> None:
    words = {"id": ("Salin sekarang", "Pengguna dinonaktifkan.", "nonaktif"),
             "en": ("Copy it now", "User disabled.", "disabled")}[lang]  # fmt: skip
    page.goto(f"{sso_hub}/lang/{lang}?next=/signin")
    page.fill("#tenant", "acme")
    page.click("#sso")
    page.wait_for_url("**/oauth2/authorize**")  # the provider's own consent page
    page.fill("input[name=sub]", "alice")
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(f"{sso_hub}/")
    expect(page.locator("#signed-in")).to_contain_text("alice@acme.example")
    page.goto(f"{sso_hub}/tokens")
    page.fill("#token-form input[name=name]", "nightly export")
    page.fill("#token-form input[name=days]", "30")
    page.check("#token-form input[value='branches.read']")
    page.check("#token-form input[value='analytics.export']")
    page.click("#create-token")
    expect(page.locator("#new-token")).to_contain_text(words[0])
    raw = page.locator("#new-token code").inner_text()
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / f"hq-tokens-sso-{lang}.png"), full_page=True)
    bearer = {"authorization": f"Bearer {raw}"}
    seen = httpx.get(f"{sso_hub}/api/v1/branches", headers=bearer)
    assert seen.status_code == 200, seen.text
    assert [b["branch_id"] for b in seen.json()["branches"]] == ["jkt-sudirman"]

    page.click("#signout")
    page.fill("#username", "tina")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.goto(f"{sso_hub}/sso-settings")
    row = page.locator('#sso-users tr[data-user="alice@acme.example"]')
    expect(row).to_contain_text("tenant_admin")
    row.locator("button").click()
    expect(page.locator("#notice")).to_have_text(words[1])
    expect(page.locator('#sso-users tr[data-user="alice@acme.example"]')).to_contain_text(words[2])
    page.screenshot(path=str(SCREENSHOTS / f"hq-sso-users-{lang}.png"), full_page=True)
    assert httpx.get(f"{sso_hub}/api/v1/branches", headers=bearer).status_code == 401
