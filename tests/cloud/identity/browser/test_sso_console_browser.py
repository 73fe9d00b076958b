"""The SSO console page in Debian's Chromium (id/en) against a real hub: tina saves acme's SAML form with a wrong
role map (refused inline, what she typed kept), then the OIDC form; the secret box stays empty afterwards.
Screenshots docs/screenshots/hq-sso-{id,en}.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.identity.conftest import PASSWORD
from tests.support.browser import SCREENSHOTS, sign_in_to_console

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lang", ["id", "en"])
def test_sso_settings_page(hub: str, page: Page, lang: str) -> None:
    words = {"id": ("Tersimpan.", "Peta peran", "tersimpan — kosongkan untuk mempertahankan"),
             "en": ("Saved.", "Role map", "stored — leave empty to keep it")}[lang]  # fmt: skip
    sign_in_to_console(page, hub, "tina", PASSWORD, lang)
    page.goto(f"{hub}/sso-settings")
    saml = page.locator("#form-saml")
    saml.locator("textarea[name=roles]").fill("just-a-group")
    saml.locator("textarea[name=idp_metadata]").fill("<EntityDescriptor/>")
    page.click("#save-saml")
    expect(page.locator("#sso-saml #error")).to_contain_text(words[1])
    expect(page.locator("#form-saml textarea[name=roles]")).to_have_value("just-a-group")
    oidc = page.locator("#form-oidc")
    oidc.locator("input[name=display_name]").fill("Acme ID")
    oidc.locator("input[name=client_secret]").fill("a-new-secret-123")
    page.click("#save-oidc")
    expect(page.locator("#notice")).to_have_text(words[0])
    secret = page.locator("#form-oidc input[name=client_secret]")
    expect(secret).to_have_value("")
    expect(secret).to_have_attribute("placeholder", words[2])
    expect(page.locator('nav.main a[data-nav="sso"]')).to_have_attribute("aria-current", "page")
    page.screenshot(path=str(SCREENSHOTS / f"hq-sso-{lang}.png"), full_page=True)
