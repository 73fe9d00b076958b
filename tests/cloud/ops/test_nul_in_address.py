"""A NUL (%00) in a hub address's path or query is a 400 problem+json at the door: PostgreSQL refuses NUL in text, and
every route that passed one to a query (the audit log's filters, a branch's pages, the notify log, SSO settings,
appointments, releases, analytics) answered 500 (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.cloud.admin.conftest import add_accounts, sign_in

ADDRESSES = (
    "/admin/audit?actor=a%00b",
    "/admin/branches/acme/a%00b",
    "/admin/config/acme/a%00b",
    "/analytics/schedules/a%00b",
    "/api/v1/notify/messages?tenant=acme&trigger=a%00",
    "/api/v1/tenants/acme/sso/a%00b",
    "/api/v1/appointments/acme/a%00b/slots",
    "/api/v1/releases/assigned/acme/a%00b",
)


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_nul_in_the_address_is_a_400_problem(store_url: str, tmp_path: Path, address: str) -> None:
    engine = create_store_engine(store_url)
    add_accounts(engine, "root")
    engine.dispose()
    with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))) as client:
        sign_in(client, "root")
        answer = client.get(address)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "bad_request"
        assert client.get("/api/v1/health").status_code == 200  # the rest is unchanged
