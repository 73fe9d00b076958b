"""Appointments fixtures: a hub store (SQLite and PostgreSQL) with acme's branch, its bookable service and its public
URL (a module that needs another store defines its own `engine`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from cloud.notify import policy
from cloud.store import create_store_engine, transaction
from tests.cloud.appointments.support import add_branch


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store with acme's branch `jkt-01`, its service `cs` and links to https://hq.example."""
    engine = create_store_engine(store_url)
    add_branch(engine)
    with transaction(engine) as conn:
        policy.save(conn, "acme", policy.TenantPolicy(public_url="https://hq.example"))
    yield engine
    engine.dispose()
