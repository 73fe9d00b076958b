"""A sealed contact survives parking: its key comes in the message header, and once the event has to wait for a
predecessor (several consumers, a gap) the message is acknowledged and the header is gone. The key waits beside the
parked copy and opens the contact when the event is applied; it leaves the store with the parked row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.apply import Incoming, apply_batch
from cloud.notify import contacts
from cloud.store import create_store_engine, parked
from edge.replication import read_outgoing
from sync.relay import event_subject

from .branch import BRANCH, TENANT, Branch, use_email
from .smtp_server import SmtpServer


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def test_a_parked_ticket_created_still_opens_its_contact(
    tmp_path: Path, engine: sa.Engine, smtp_server: SmtpServer
) -> None:
    use_email(engine, smtp_server.settings)
    branch = Branch(tmp_path / "edge", engine)
    try:
        branch.enqueue()
        mine = branch.enqueue(email="andi@example.com", phone="081234567890")
        out = branch.service.read(lambda conn: read_outgoing(conn, 0, 100))
    finally:
        branch.stop()
    subject = event_subject(TENANT, BRANCH)
    *before, last = out
    assert last.contact_key, "the sealed ticket.created travels with its key"
    apply_batch(engine, [Incoming(subject, last.payload, last.contact_key)])  # ahead of its predecessors: parked
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(parked)).scalar_one() == 1
    apply_batch(engine, [Incoming(subject, o.payload, o.contact_key) for o in before])  # the gap fills (no key)
    with engine.connect() as conn:
        found = contacts.read_many(conn, TENANT, BRANCH, [mine])
        assert conn.execute(sa.select(sa.func.count()).select_from(parked)).scalar_one() == 0  # key gone with it
    assert mine in found
    assert found[mine].email == "andi@example.com"
    assert found[mine].phone == "+6281234567890"
