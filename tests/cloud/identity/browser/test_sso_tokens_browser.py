"""An SSO user's API token in Debian's Chromium (id/en) against a real hub and a real local OpenID provider: alice,
acme's admin by her IdP group, signs in through the provider and creates a token on the API tokens page (it works
with Bearer); tina disables her on the Single sign-on page and the token stops. A user whose name a URL path would
mangle (`dept/bob ü#?%`) is disabled and enabled there too. Screenshots
docs/screenshots/hq-tokens-sso-{id,en}.png and docs/screenshots/hq-sso-users-{id,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from cloud.hq_users import upsert_user
from cloud.identity import sso, sso_accounts
from cloud.store import branches, create_store_engine, transaction
from tests.cloud.identity.browser.conftest import hub_with_idp, through_the_idp
from tests.cloud.identity.conftest import PASSWORD
from tests.support.browser import SCREENSHOTS, submit_sign_in

pytestmark = pytest.mark.slow
BOB = "dept/bob ü#?%"


@pytest.fixture
def sso_hub(tmp_path: Path) -> Iterator[str]:
    """The hub: acme with one branch, tina (tenant admin, password), acme's OIDC provider mapping the group qms-admins
    to tenant_admin, alice in that group, and BOB, who signed in through it before."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    with transaction(engine) as conn:
        row = {"tenant_id": "acme", "branch_id": "jkt-sudirman", "next_seq": 1, "last_hash": "0" * 64, "events": 0,
               "duplicates": 0, "status": "ok", "updated_at": "2026-12-04T00:00:00+00:00"}  # fmt: skip
        conn.execute(branches.insert().values(**row))
    upsert_user(engine, "tina", PASSWORD, "tenant_admin", ["acme"])
    with hub_with_idp(store_url, "qms-admins", "tenant_admin") as url:
        idp = sso.load(engine, "acme", "oidc")
        assert idp is not None
        sso_accounts.signed_in(engine, idp, {"email": BOB, "groups": ["qms-admins"]}, datetime.now(UTC))
        engine.dispose()
        yield url


@pytest.mark.parametrize("lang", ["id", "en"])
def test_an_sso_user_creates_a_token_and_is_disabled(sso_hub: str, page: Page, lang: str) -> None:
    words = {"id": ("Salin sekarang", "Pengguna dinonaktifkan.", "nonaktif", "Pengguna diaktifkan."),
             "en": ("Copy it now", "User disabled.", "disabled", "User enabled.")}[lang]  # fmt: skip
    page.goto(f"{sso_hub}/lang/{lang}?next=/signin")
    through_the_idp(page, sso_hub)
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
    submit_sign_in(page, "tina", PASSWORD)
    page.goto(f"{sso_hub}/sso-settings")
    bob = page.locator(f'#sso-users tr[data-user="{BOB}"]')
    bob.locator("button").click()
    expect(page.locator("#notice")).to_have_text(words[1])
    expect(bob).to_contain_text(words[2])
    bob.locator("button").click()
    expect(page.locator("#notice")).to_have_text(words[3])
    expect(bob).not_to_contain_text(words[2])
    row = page.locator('#sso-users tr[data-user="alice@acme.example"]')
    expect(row).to_contain_text("tenant_admin")
    row.locator("button").click()
    expect(page.locator("#notice")).to_have_text(words[1])
    expect(page.locator('#sso-users tr[data-user="alice@acme.example"]')).to_contain_text(words[2])
    page.screenshot(path=str(SCREENSHOTS / f"hq-sso-users-{lang}.png"), full_page=True)
    assert httpx.get(f"{sso_hub}/api/v1/branches", headers=bearer).status_code == 401
