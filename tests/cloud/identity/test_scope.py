"""The query-layer scope: `scope_filter` over a real (tenant_id, branch_id) table on SQLite and PostgreSQL, and the
404 helpers; Hypothesis checks the filter against the principal's own `sees_branch` for any scope."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.exceptions import NotFoundException

from cloud.identity.permissions import require_branch, require_tenant, scope_filter
from cloud.store import branches, create_store_engine
from cloud.web.console_auth import HqPrincipal
from tests.cloud.identity.conftest import BRANCHES

EVERY = HqPrincipal("root", "platform_admin", None)
ACME = HqPrincipal("tina", "tenant_admin", frozenset({"acme"}))
JKT = HqPrincipal("rina", "branch_manager", frozenset({"acme"}), frozenset({("acme", "jkt-sudirman")}))
REGION = HqPrincipal(
    "reg", "branch_manager", frozenset({"acme"}), frozenset({("acme", "jkt-sudirman"), ("acme", "bdg-dago")})
)


def visible(store_url: str, principal: HqPrincipal) -> set[tuple[str, str]]:
    engine = create_store_engine(store_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(branches.c.tenant_id, branches.c.branch_id).where(scope_filter(branches, principal))
        )
        found = {(r.tenant_id, r.branch_id) for r in rows}
    engine.dispose()
    return found


def test_scope_filter_on_the_store(identity_store: str) -> None:
    assert visible(identity_store, EVERY) == set(BRANCHES)
    assert visible(identity_store, ACME) == {("acme", "jkt-sudirman"), ("acme", "bdg-dago")}
    assert visible(identity_store, JKT) == {("acme", "jkt-sudirman")}
    assert visible(identity_store, REGION) == {("acme", "jkt-sudirman"), ("acme", "bdg-dago")}


def test_out_of_scope_ids_are_404() -> None:
    require_tenant(ACME, "acme")
    require_branch(JKT, "acme", "jkt-sudirman")
    with pytest.raises(NotFoundException):
        require_tenant(ACME, "globex")
    with pytest.raises(NotFoundException):
        require_branch(JKT, "acme", "bdg-dago")
    with pytest.raises(NotFoundException):
        require_branch(ACME, "globex", "sby-tunjungan")


TENANTS = st.sampled_from(["acme", "globex", "initech"])
PAIRS = st.tuples(TENANTS, st.sampled_from(["a", "b", "c"]))


@settings(max_examples=200, deadline=None)
@given(tenants=st.none() | st.frozensets(TENANTS), scoped=st.none() | st.frozensets(PAIRS, min_size=1),
       rows=st.lists(PAIRS, unique=True))  # fmt: skip
def test_scope_filter_agrees_with_sees_branch(
    tenants: frozenset[str] | None, scoped: frozenset[tuple[str, str]] | None, rows: list[tuple[str, str]]
) -> None:
    principal = HqPrincipal("p", "auditor", tenants, scoped)
    table = sa.table("t", sa.column("tenant_id"), sa.column("branch_id"))
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (tenant_id TEXT, branch_id TEXT)"))
        if rows:
            conn.execute(sa.insert(table), [{"tenant_id": t, "branch_id": b} for t, b in rows])
        found = {tuple(r) for r in conn.execute(sa.select(table).where(scope_filter(table, principal)))}
    assert found == {r for r in rows if principal.sees_branch(*r)}


def test_session_policy_from_the_environment() -> None:
    from datetime import timedelta

    from cloud.identity.sessions import SessionPolicy

    policy = SessionPolicy.from_env({"QMS_HUB_SESSION_IDLE_MINUTES": "5", "QMS_HUB_SESSION_HOURS": "1.5"})
    assert (policy.idle, policy.absolute) == (timedelta(minutes=5), timedelta(hours=1.5))
    assert SessionPolicy.from_env({}) == SessionPolicy()
    with pytest.raises(ValueError, match="QMS_HUB_SESSION_HOURS"):
        SessionPolicy.from_env({"QMS_HUB_SESSION_HOURS": "soon"})
    with pytest.raises(ValueError, match="QMS_HUB_SESSION_IDLE_MINUTES"):
        SessionPolicy.from_env({"QMS_HUB_SESSION_IDLE_MINUTES": "0"})
