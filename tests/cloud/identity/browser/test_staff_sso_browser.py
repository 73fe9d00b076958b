"""Staff sign-in at the appliance through the hub's SSO in Debian's Chromium (Playwright), in Indonesian and English:
the appliance's sign-in page offers "Sign in with Acme ID", the browser goes through the real hub and the real local
OpenID provider and lands on the agent's desk; an IdP user without a staff account comes back with the reason.
Screenshots docs/screenshots/staff-sso-signin-{id,en}.png and staff-sso-refused-{id,en}.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.cloud.identity.staff_sso_rig import Rig, staff_sso_rig

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
WORDS = {
    "id": ("Masuk dengan Acme ID", "Identitas Anda tidak memiliki akun staf di cabang ini."),
    "en": ("Sign in with Acme ID", "Your identity has no staff account at this branch."),
}


def through_the_idp(page: Page, rig: Rig, lang: str, sub: str) -> None:
    """From the appliance's sign-in page, through hub and IdP as `sub`."""
    base = rig.appliance.base_url
    page.goto(f"{base}/staff/lang/{lang}?next=/staff/login")
    expect(page.locator("#sso-signin")).to_be_visible()
    page.locator("#sso-signin").click()
    page.wait_for_url("**/oauth2/authorize**")  # the provider's own consent page
    page.fill("input[name=sub]", sub)
    page.locator("button[type=submit]").first.click()


def test_staff_sign_in_through_the_hub_in_chromium(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with staff_sso_rig(tmp_path, monkeypatch) as rig:
        base = rig.appliance.base_url
        for lang in ("en", "id"):
            context = browser.new_context(viewport={"width": 1000, "height": 720})
            page = context.new_page()
            through_the_idp(page, rig, lang, "siti")
            page.wait_for_url(f"{base}/staff/counter/1")
            expect(page.locator("body")).to_contain_text("siti")
            page.goto(f"{base}/staff/login")  # a colleague's turn: the button now names the IdP
            expect(page.locator("#sso-signin")).to_have_text(WORDS[lang][0])
            page.screenshot(path=str(SCREENSHOTS / f"staff-sso-signin-{lang}.png"))
            context.close()

            context = browser.new_context(viewport={"width": 1000, "height": 720})
            page = context.new_page()
            through_the_idp(page, rig, lang, "dewi")
            page.wait_for_url(f"{base}/staff/login?sso_error=unknown_account")
            expect(page.locator("#sso-message")).to_contain_text(WORDS[lang][1])
            page.screenshot(path=str(SCREENSHOTS / f"staff-sso-refused-{lang}.png"))
            context.close()
