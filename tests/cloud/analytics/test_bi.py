"""The BI API (US-ANALYT-006) over real replicated logs on SQLite and PostgreSQL: tokens per tenant with dataset
scopes and expiry, stored as SHA-256 and shown once, managed with `tokens.manage`; keyset pages with an opaque cursor
walk every row once in a stable order; each token has its own rate (429 problem+json with Retry-After); the routes
are in the OpenAPI schema; malformed input is 400 problem+json."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

from cloud.admin.tables import hub_audit
from cloud.analytics import bi
from cloud.analytics.tables import bi_tokens
from cloud.apply import Incoming, apply_batch
from cloud.hq_users import get_user, upsert_user
from cloud.identity import tokens
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.relay import event_subject
from tests.cloud.branch_events import TENANT, make_branch_events

PASSWORD = "correct horse battery staple 42"
BRANCH = "jkt-sudirman"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """acme/jkt-sudirman with 24 tickets, globex/jkt-sudirman with 6 (same branch id, another tenant)."""
    return {
        TENANT: make_branch_events(tmp_path_factory.mktemp("acme"), BRANCH, tickets=24),
        "globex": make_branch_events(tmp_path_factory.mktemp("globex"), BRANCH, tickets=6),
    }


@pytest.fixture
def hub(store_url: str, logs: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A hub with both tenants applied; acme's admin `ana` and globex's admin `gus` with console API tokens."""
    monkeypatch.setenv(bi.RATE_ENV, "14/minute")
    engine = create_store_engine(store_url)
    for tenant, log in logs.items():
        assert not apply_batch(engine, [Incoming(event_subject(tenant, BRANCH), o.payload) for o in log]).problems
    admins = {}
    for name, tenant in (("ana", TENANT), ("gus", "globex")):
        upsert_user(engine, name, PASSWORD, "tenant_admin", [tenant])
        user = get_user(engine, name)
        assert user is not None
        raw, _ = tokens.issue(engine, user, "bi admin", ["tokens.manage"], 30, datetime.now(UTC))
        admins[name] = {"Authorization": f"Bearer {raw}"}
    with TestClient(app=create_app(CloudSettings(db_url=store_url))) as client:
        yield client, admins, engine
    engine.dispose()


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_a_token_is_shown_once_stored_hashed_and_scoped(hub: Any) -> None:
    client, admins, engine = hub
    made = client.post("/api/v1/bi/tokens", json={"tenant": TENANT, "name": "Power BI", "datasets": ["tickets"],
                                                  "days": 30}, headers=admins["ana"])  # fmt: skip
    assert made.status_code == 201, made.text
    raw = made.json()["token"]
    assert raw.startswith(f"qms_bi_{made.json()['token_id']}_")
    with engine.connect() as conn:
        stored = conn.execute(sa.select(bi_tokens)).one()
    assert stored.secret_sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(tuple(stored))
    listed = client.get("/api/v1/bi/tokens", headers=admins["ana"])
    assert listed.status_code == 200
    assert raw not in listed.text
    assert "secret_sha256" not in listed.text
    assert [t["datasets"] for t in listed.json()["tokens"]] == [["tickets"]]
    assert client.get("/api/v1/bi/tokens", headers=admins["gus"]).json()["tokens"] == []  # another tenant's
    # Its own tenant only, its datasets only.
    first = client.get("/api/v1/bi/tickets", params={"limit": 1000}, headers=bearer(raw)).json()
    assert len(first["items"]) == 24
    assert {r["tenant_id"] for r in first["items"]} == {TENANT}
    refused = client.get("/api/v1/bi/kpis", headers=bearer(raw))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    # An admin of another tenant can neither issue for it nor revoke its tokens.
    other = {"tenant": TENANT, "name": "x", "datasets": ["kpis"]}
    assert client.post("/api/v1/bi/tokens", json=other, headers=admins["gus"]).status_code == 404
    token_id = made.json()["token_id"]
    assert client.delete(f"/api/v1/bi/tokens/{token_id}", headers=admins["gus"]).status_code == 404
    assert client.delete(f"/api/v1/bi/tokens/{token_id}", headers=admins["ana"]).status_code == 200
    assert client.get("/api/v1/bi/tickets", headers=bearer(raw)).status_code == 401
    with engine.connect() as conn:  # issued and revoked, by whom, in the hub's audit log (never the secret)
        audit = conn.execute(sa.select(hub_audit).where(hub_audit.c.target == token_id)).mappings().all()
    expected = [("bi_token.issue", "ana", TENANT), ("bi_token.revoke", "ana", TENANT)]
    assert [(a["action"], a["actor"], a["tenant_id"]) for a in audit] == expected
    assert raw not in str(audit)


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"tenant": "acme", "name": "x", "datasets": ["secrets"]}', b'{"tenant": "acme", "name": "x"}',
     b'{"tenant": "acme", "name": "x", "datasets": ["kpis"], "days": 0}', b'{"tenant": "acme", "name": "",'
     b' "datasets": ["kpis"]}', b'{"tenant": "acme", "name": "x", "datasets": ["kpis"], "admin": true}'],
)  # fmt: skip
def test_malformed_token_requests_are_400_problems(hub: Any, body: bytes) -> None:
    client, admins, _ = hub
    answer = client.post("/api/v1/bi/tokens", content=body,
                         headers={**admins["ana"], "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("name", ["Power\u202eBI", "a\x00b", "two\nlines", "zero\u200bwidth", "line\u2028sep"])
def test_a_name_with_control_or_format_characters_is_refused(hub: Any, name: str) -> None:
    client, admins, _ = hub
    answer = client.post("/api/v1/bi/tokens", json={"tenant": TENANT, "name": name, "datasets": ["kpis"]},
                         headers=admins["ana"])  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"].startswith("name: no control or format characters (U+")
    assert client.get("/api/v1/bi/tokens", headers=admins["ana"]).json()["tokens"] == []


def test_pages_walk_every_row_once_in_a_stable_order(hub: Any) -> None:
    client, admins, _ = hub
    made = client.post("/api/v1/bi/tokens", json={"tenant": TENANT, "name": "BI", "datasets": ["tickets", "kpis"]},
                       headers=admins["ana"])  # fmt: skip
    raw = made.json()["token"]
    seen: list[str] = []
    cursor = None
    for _ in range(6):
        params: dict[str, Any] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        answer = client.get("/api/v1/bi/tickets", params=params, headers=bearer(raw))
        assert answer.status_code == 200, answer.text
        seen += [r["ticket_id"] for r in answer.json()["items"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 24 == len(set(seen))
    everything = client.get("/api/v1/bi/tickets", params={"limit": 100}, headers=bearer(raw)).json()["items"]
    assert [r["ticket_id"] for r in everything] == seen
    kpis = client.get("/api/v1/bi/kpis", headers=bearer(raw)).json()["items"]
    assert sum(r["tickets"] for r in kpis) == 24
    for params in ({"cursor": "not-ours"}, {"limit": 0}, {"limit": "x"}, {"from": "2026-13-40"}):
        bad = client.get("/api/v1/bi/tickets", params=params, headers=bearer(raw))
        assert bad.status_code == 400, params
        assert bad.headers["content-type"].startswith("application/problem+json")


def test_each_token_has_its_own_rate_429_with_retry_after(hub: Any) -> None:
    client, admins, _ = hub
    raws = [client.post("/api/v1/bi/tokens", json={"tenant": TENANT, "name": f"t{i}", "datasets": ["kpis"]},
                        headers=admins["ana"]).json()["token"] for i in range(2)]  # fmt: skip
    answers = [client.get("/api/v1/bi/kpis", headers=bearer(raws[0])).status_code for _ in range(15)]
    assert answers == [200] * 14 + [429]
    spent = client.get("/api/v1/bi/kpis", headers=bearer(raws[0]))
    assert spent.headers["content-type"].startswith("application/problem+json")
    assert int(spent.headers["retry-after"]) >= 1
    assert client.get("/api/v1/bi/kpis", headers=bearer(raws[1])).status_code == 200  # the other token's budget
    for header in ({}, bearer("qms_bi_nope_nope"), bearer(raws[0] + "x"), {"Authorization": "Basic YTpi"}):
        assert client.get("/api/v1/bi/kpis", headers=header).status_code == 401


def test_the_bi_routes_are_in_the_openapi_schema(hub: Any) -> None:
    client, _, _ = hub
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert {"/api/v1/bi/tokens", "/api/v1/bi/{dataset}", "/api/v1/bi/tokens/{token_id}"} <= set(paths)


@given(st.lists(st.text(max_size=12), min_size=3, max_size=3))
def test_cursors_round_trip_and_garbage_is_refused(values: list[str]) -> None:
    assert bi.decode_cursor(bi.encode_cursor(values), 3) == values
    with pytest.raises(bi.BiRequestError):
        bi.decode_cursor(bi.encode_cursor(values), 2)


@given(st.text(max_size=40))
def test_any_cursor_text_is_a_value_or_a_400(text: str) -> None:
    with contextlib.suppress(bi.BiRequestError):
        assert len(bi.decode_cursor(text, 3)) == 3


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    """An expired token is refused (verify is pure over the stored row and the clock)."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    from cloud.store import metadata

    metadata.create_all(engine)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    raw, _ = bi.issue(engine, bi.TokenRequest(tenant=TENANT, name="n", datasets=["kpis"], days=1), "ana", now)
    assert bi.verify(engine, raw, now) is not None
    assert bi.verify(engine, raw, now.replace(day=5)) is None
    engine.dispose()
