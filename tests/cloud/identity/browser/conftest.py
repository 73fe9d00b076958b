"""Debian's Chromium for this package only (Playwright's sync API must end with the package that uses it), the hub
served with acme's local OpenID provider, a page, and signing in through that provider."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oidc_provider_mock import User, run_server_in_thread  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Page

from cloud.hq_users import upsert_user
from cloud.identity import sso
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.identity.conftest import PASSWORD
from tests.support.browser import browser, playwright_instance
from tests.support.providers.hub import served

__all__ = ["browser", "hub", "page", "playwright_instance"]


@contextmanager
def hub_with_idp(store_url: str, group: str, role: str) -> Iterator[str]:
    """The hub on a free port over `store_url` (prepared by the caller), with acme's OIDC provider running locally:
    alice is in `group`, which acme's provider settings map to `role`. Yields the hub's URL."""
    engine = create_store_engine(store_url)
    users = [User(sub="alice", claims={"email": "alice@acme.example", "groups": [group]})]
    try:
        with run_server_in_thread(require_nonce=True, user_claims=users,
                                  access_token_max_age=timedelta(minutes=5)) as idp:  # fmt: skip
            settings = sso.IdpSettings(roles={group: role}, issuer=f"http://localhost:{idp.server_port}",
                                       client_id="qms-hub", client_secret="hub-client-secret")  # fmt: skip
            sso.save(engine, "acme", "oidc", settings, datetime.now(UTC))
            with served(create_app(CloudSettings(db_url=store_url))) as url:
                yield url
    finally:
        engine.dispose()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """The hub with accounts tina (tenant admin) and audi (auditor); alice signs in through the provider as an
    auditor."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    upsert_user(engine, "tina", PASSWORD, "tenant_admin", ["acme"])
    upsert_user(engine, "audi", PASSWORD, "auditor", ["acme"])
    engine.dispose()
    with hub_with_idp(store_url, "qms-auditors", "auditor") as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (1100 x 720)."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    yield context.new_page()
    context.close()


def through_the_idp(page: Page, hub: str, tenant: str = "acme", sub: str = "alice") -> None:
    """From the hub's sign-in page on `page`, sign in with `tenant`'s provider as `sub`; lands on the overview."""
    page.fill("#tenant", tenant)
    page.click("#sso")
    page.wait_for_url("**/oauth2/authorize**")  # the provider's own consent page
    page.fill("input[name=sub]", sub)
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(f"{hub}/")
