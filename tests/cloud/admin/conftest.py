"""Admin-area fixtures: accounts, and a test client signed in through the real sign-in page (session cookie, the
session's CSRF token sent on every unsafe request, as the console's pages do)."""

from __future__ import annotations

import re

from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from cloud.hq_users import upsert_user

PASSWORD = "correct-horse-battery"
# username -> (role, tenants)
ACCOUNTS = {
    "root": ("platform_admin", ["*"]),
    "ana": ("tenant_admin", ["acme"]),
    "budi": ("tenant_admin", ["acme"]),
    "ira": ("auditor", ["acme"]),
}


def add_accounts(engine: Engine, *names: str) -> None:
    """Create the named accounts (argon2 hashes: only the ones a test needs)."""
    for name in names or tuple(ACCOUNTS):
        role, tenants = ACCOUNTS[name]
        upsert_user(engine, name, PASSWORD, role, tenants)


def sign_in(client: TestClient, username: str) -> None:
    """Sign in as a browser does, then send the session's CSRF token with every request of this client."""
    client.headers.pop("X-CSRFToken", None)
    page = client.get("/signin", headers={"accept": "text/html"})
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    done = client.post(
        "/signin",
        data={"username": username, "password": PASSWORD, "_csrf_token": found.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    token = client.get("/api/v1/me").json()["csrf_token"]
    assert token
    client.headers["X-CSRFToken"] = token
