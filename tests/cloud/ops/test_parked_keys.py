"""A contact key kept beside a parked event (cloud/ops/pii.py) is erased once the tenant's contact retention has passed
since the event arrived, by the running hub itself: an event whose predecessor never comes must not keep its contact
openable for ever (issue 16, crypto-shredding at the hub). Real hub store, real app and lifespan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import sqlalchemy as sa

from cloud.notify import policy
from cloud.ops import pii
from cloud.store import create_store_engine, parked
from tests.images.conftest import running_hub
from tests.support.cloud_hub import wait_until

KEY = "k" * 43


def _park(conn: sa.Connection, tenant: str, seq: int, received: datetime) -> None:
    conn.execute(sa.insert(parked).values(tenant_id=tenant, branch_id="jkt-sudirman", seq=seq, body="{}",
                                          received_at=received.isoformat(), contact_key=KEY))  # fmt: skip


def _keys(engine: sa.Engine) -> dict[tuple[str, int], str | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(parked.c.tenant_id, parked.c.seq, parked.c.contact_key))
        return {(tenant, seq): key for tenant, seq, key in rows}


def test_parked_keys_are_erased_after_the_tenants_retention(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        policy.save(conn, "bank-b", msgspec.structs.replace(policy.TenantPolicy(), retention_days=60))
        _park(conn, "acme", 5, now - timedelta(days=31))  # default retention 30 days: erased
        _park(conn, "acme", 6, now - timedelta(days=29))  # kept
        _park(conn, "bank-b", 5, now - timedelta(days=31))  # its tenant keeps contacts 60 days: kept
    with engine.begin() as conn:
        assert pii.forget_parked_keys(conn, now) == 1
    assert _keys(engine) == {("acme", 5): None, ("acme", 6): KEY, ("bank-b", 5): KEY}
    with engine.begin() as conn:
        assert pii.forget_parked_keys(conn, now + timedelta(days=31)) == 2
    engine.dispose()


def test_the_running_hub_erases_them_by_itself(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    with engine.begin() as conn:
        _park(conn, "acme", 7, datetime.now(UTC) - timedelta(days=40))
    with running_hub(tmp_path):
        wait_until(lambda: _keys(engine)[("acme", 7)] is None, timeout=30, what="the parked key erased")
    engine.dispose()
