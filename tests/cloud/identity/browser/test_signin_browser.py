"""Signing in to the HQ console in Debian's Chromium (Playwright) against a real hub (uvicorn on a free port): the
sign-in page in Indonesian and English (photographed to docs/screenshots/hq-signin-{id,en}.png), a wrong password,
lockout, sign-out, and the SSO button through a real local OpenID provider."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from oidc_provider_mock import User, run_server_in_thread  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Page, expect

from cloud.hq_users import upsert_user
from cloud.identity import sso
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.support.appliance import free_port
from tests.support.cloud_hub import wait_until

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """The hub on a free port with accounts tina (tenant admin) and audi (auditor), acme's OIDC provider running."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    upsert_user(engine, "tina", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "audi", PASSWORD, "auditor", ["acme"])
    users = [User(sub="alice", claims={"email": "alice@acme.example", "groups": ["qms-auditors"]})]
    with run_server_in_thread(require_nonce=True, user_claims=users, access_token_max_age=timedelta(minutes=5)) as idp:
        settings = sso.IdpSettings(roles={"qms-auditors": "auditor"}, issuer=f"http://localhost:{idp.server_port}",
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


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_signin_page_wrong_password_and_sign_out(hub: str, page: Page, lang: str) -> None:
    words = {"id": ("Masuk", "Nama pengguna atau kata sandi salah.", "Keluar", "Anda telah keluar."),
             "en": ("Sign in", "Wrong username or password.", "Sign out", "You have signed out.")}[lang]  # fmt: skip
    page.goto(f"{hub}/lang/{lang}?next=/")
    expect(page).to_have_url(f"{hub}/signin?next=%2F")  # the console sends a stranger to sign in
    expect(page.locator("#signin")).to_have_text(words[0])
    page.screenshot(path=str(SCREENSHOTS / f"hq-signin-{lang}.png"))
    page.fill("#username", "tina")
    page.fill("#password", "not-the-password")
    page.click("#signin")
    expect(page.locator("#error")).to_have_text(words[1])
    expect(page.locator("#username")).to_have_value("tina")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    expect(page).to_have_url(f"{hub}/")
    expect(page.locator("#signed-in")).to_contain_text("tina")  # the overview is on the shared layout
    expect(page.locator('nav.main a[data-nav="tokens"]')).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"hq-overview-{lang}.png"))
    page.goto(f"{hub}/api/v1/me")
    assert '"role":"tenant_admin"' in page.content()
    page.goto(f"{hub}/admin/branches")  # a console page on the shared layout: who is signed in, and sign-out
    expect(page.locator("#signed-in")).to_contain_text("tina")
    page.click("#signout")
    expect(page.locator("#notice")).to_have_text(words[3])
    page.goto(f"{hub}/admin/branches")
    expect(page).to_have_url(f"{hub}/signin?next=%2Fadmin%2Fbranches")  # the session is gone on the server


def test_lockout(hub: str, page: Page) -> None:
    page.goto(f"{hub}/lang/en?next=/signin")
    for _ in range(5):
        page.fill("#username", "audi")
        page.fill("#password", "wrong-password-x")
        page.click("#signin")
        expect(page.locator("#error")).to_have_text("Wrong username or password.")
    page.fill("#username", "audi")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    expect(page.locator("#error")).to_contain_text("Too many failed attempts")


def test_sso_button_through_the_local_openid_provider(hub: str, page: Page) -> None:
    page.goto(f"{hub}/lang/en?next=/signin")
    page.fill("#tenant", "acme")
    page.click("#sso")
    page.wait_for_url("**/oauth2/authorize**")  # the provider's own consent page
    page.fill("input[name=sub]", "alice")
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(f"{hub}/")
    page.goto(f"{hub}/api/v1/me")
    assert '"auth_method":"oidc"' in page.content()
    assert '"role":"auditor"' in page.content()
