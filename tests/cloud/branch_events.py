"""Real branch events for cloud tests: an in-process appliance (the real writer) produces them."""

from __future__ import annotations

from pathlib import Path

import msgspec

from edge.demo import demo_config
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import Outgoing, event_subject
from tests.support.appliance import seed_demo

TENANT = "acme"


def make_branch_events(data_dir: Path, branch_id: str = "jkt-sudirman", tickets: int = 20) -> list[Outgoing]:
    """Seed a branch, enqueue `tickets`, call and complete some, and return its whole log as the relay ships it."""
    seed_demo(data_dir, msgspec.structs.replace(demo_config(), branch_id=branch_id), users=[])
    service = QueueService(data_dir)
    service.start()
    try:
        for i in range(tickets):
            service.execute(c.Enqueue(service_id="teller" if i % 3 else "cs"))
        called = service.execute(c.CallNext(counter_id="1")).response["ticket"]
        service.execute(c.Start(ticket_id=called["ticket_id"], counter_id="1"))
        service.execute(c.Complete(ticket_id=called["ticket_id"], counter_id="1"))
        service.execute(c.CallNext(counter_id="2"))
        service.execute(c.CallNext(counter_id="4"))
        return list(service.read(lambda conn: read_outgoing(conn, 0, 1_000_000)))
    finally:
        service.stop()


def subject(branch_id: str = "jkt-sudirman") -> str:
    """The branch's event subject."""
    return event_subject(TENANT, branch_id)
