"""Signing in to the HQ console in Debian's Chromium (Playwright) against a real hub (uvicorn on a free port): the
sign-in page in Indonesian and English (photographed to docs/screenshots/hq-signin-{id,en}.png), a wrong password,
lockout, sign-out, and the SSO button through a real local OpenID provider."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.identity.browser.conftest import through_the_idp
from tests.cloud.identity.conftest import PASSWORD
from tests.support.browser import SCREENSHOTS, submit_sign_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lang", ["id", "en"])
def test_signin_page_wrong_password_and_sign_out(hub: str, page: Page, lang: str) -> None:
    words = {"id": ("Masuk", "Nama pengguna atau kata sandi salah.", "Keluar", "Anda telah keluar."),
             "en": ("Sign in", "Wrong username or password.", "Sign out", "You have signed out.")}[lang]  # fmt: skip
    page.goto(f"{hub}/lang/{lang}?next=/")
    expect(page).to_have_url(f"{hub}/signin?next=%2F")  # the console sends a stranger to sign in
    expect(page.locator("#signin")).to_have_text(words[0])
    page.screenshot(path=str(SCREENSHOTS / f"hq-signin-{lang}.png"))
    submit_sign_in(page, "tina", "not-the-password")
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
        submit_sign_in(page, "audi", "wrong-password-x")
        expect(page.locator("#error")).to_have_text("Wrong username or password.")
    submit_sign_in(page, "audi", PASSWORD)
    expect(page.locator("#error")).to_contain_text("Too many failed attempts")


def test_sso_button_through_the_local_openid_provider(hub: str, page: Page) -> None:
    page.goto(f"{hub}/lang/en?next=/signin")
    through_the_idp(page, hub)
    page.goto(f"{hub}/api/v1/me")
    assert '"auth_method":"oidc"' in page.content()
    assert '"role":"auditor"' in page.content()
