"""Identity fixtures: a hub store with two tenants' branches and one account per role, an app with a movable clock,
and sign-in helpers that go through the real sign-in page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.hq_users import upsert_user
from cloud.store import branches, create_store_engine, transaction
from cloud.web.app import CloudSettings, create_app
from cloud.web.console_auth import ConsoleAuth

PASSWORD = "correct-horse-battery"
BRANCHES = [("acme", "jkt-sudirman"), ("acme", "bdg-dago"), ("globex", "sby-tunjungan")]
# username -> (role, tenants, branches)
ACCOUNTS = {
    "root": ("platform_admin", ["*"], []),
    "tina": ("tenant_admin", ["acme"], []),
    "rina": ("branch_manager", ["acme"], ["acme/jkt-sudirman"]),
    "audi": ("auditor", ["acme"], []),
    "gus": ("tenant_admin", ["globex"], []),
}


@dataclass
class Clock:
    """The hub's clock for sessions and tokens, moved by the test."""

    now: datetime = field(default_factory=lambda: datetime(2026, 12, 4, 8, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def identity_store(store_url: str) -> str:
    """Three branches of two tenants and one account per role (argon2 hashes: created once per test)."""
    engine = create_store_engine(store_url)
    with transaction(engine) as conn:
        rows = [{"tenant_id": t, "branch_id": b, "next_seq": 1, "last_hash": "0" * 64, "events": 0, "duplicates": 0,
                 "status": "ok", "updated_at": "2026-12-04T00:00:00+00:00"} for t, b in BRANCHES]  # fmt: skip
        conn.execute(sa.insert(branches), rows)
    for name, (role, tenants, scoped) in ACCOUNTS.items():
        upsert_user(engine, name, PASSWORD, role, tenants, scoped)
    engine.dispose()
    return store_url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(identity_store: str, clock: Clock) -> Iterator[TestClient]:
    """The hub's app over the identity store, its clock under the test's control."""
    app = create_app(CloudSettings(db_url=identity_store))
    auth: ConsoleAuth = app.state["console_auth"]
    auth.clock = clock
    with TestClient(app=app, base_url="http://hub.test") as test_client:
        yield test_client


def form_token(page: httpx.Response) -> str:
    """The sign-in form's hidden login-CSRF token."""
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/") -> httpx.Response:
    """Open the sign-in page and post the form, as a browser does; the answer (303 on success)."""
    page = client.get("/signin", headers={"accept": "text/html"})
    data = {"username": username, "password": password, "_csrf_token": form_token(page), "next": next_path}
    return client.post("/signin", data=data, follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    """The signed-in session's CSRF token (as a page's script reads it)."""
    token = client.get("/api/v1/me").json()["csrf_token"]
    assert token
    return str(token)


def audit_trail(store_url: str) -> list[tuple[str, str, str | None]]:
    """(actor, action, target) of the hub audit log, in order."""
    from cloud.admin.tables import hub_audit

    engine = create_store_engine(store_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(hub_audit.c.actor, hub_audit.c.action, hub_audit.c.target).order_by(hub_audit.c.seq)
        )
        found = [(r.actor, r.action, r.target) for r in rows]
    engine.dispose()
    return found
