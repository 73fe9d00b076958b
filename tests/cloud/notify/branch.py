"""A real branch for the notify tests: the appliance's writer in process (edge.service.QueueService over the demo
configuration) whose log is applied to a real hub store, as the consumer would, batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from cloud.apply import Incoming, apply_batch
from cloud.notify import policy
from cloud.notify.providers import email as email_provider
from cloud.notify.tables import outbox
from edge.demo import demo_config
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.relay import event_subject
from tests.support.appliance import seed_demo

TENANT = "acme"
BRANCH = "jkt-sudirman"


class Branch:
    """An appliance and the hub store its events go to; `ship()` applies what is new (or re-applies, to redeliver)."""

    def __init__(self, data_dir: Path, engine: sa.Engine, branch_id: str = BRANCH) -> None:
        seed_demo(data_dir, msgspec.structs.replace(demo_config(), branch_id=branch_id), users=[])
        self.branch_id = branch_id
        self.engine = engine
        self.service = QueueService(data_dir)
        self.service.start()
        self.shipped = 0
        self.at_counter: dict[str, str] = {}

    def do(self, command: Any) -> dict[str, Any]:
        """Run one command on the appliance; its response."""
        response: dict[str, Any] = self.service.execute(command).response
        return response

    def enqueue(self, service_id: str = "teller", **contact: Any) -> str:
        """A new ticket (with `phone=`, `email=`, `lang=`); its id."""
        return str(self.do(c.Enqueue(service_id=service_id, **contact))["ticket_id"])

    def call_next(self, counter_id: str = "1") -> str | None:
        """Call the next ticket to a counter (serving and completing what it held first); its id (None: nobody
        waits for that counter)."""
        held = self.at_counter.pop(counter_id, None)
        if held is not None:
            self.do(c.Start(ticket_id=held, counter_id=counter_id))
            self.do(c.Complete(ticket_id=held, counter_id=counter_id))
        called = self.do(c.CallNext(counter_id=counter_id))["ticket"]
        if called is None:
            return None
        self.at_counter[counter_id] = str(called["ticket_id"])
        return str(called["ticket_id"])

    def ship(self, *, from_seq: int | None = None, batch: int = 1000) -> int:
        """Apply the log from `from_seq` (default: what is new) to the hub in batches; returns events sent."""
        start = self.shipped if from_seq is None else from_seq
        out = self.service.read(lambda conn: read_outgoing(conn, start, 1_000_000))
        subject = event_subject(TENANT, self.branch_id)
        for i in range(0, len(out), batch):
            apply_batch(self.engine, [Incoming(subject, o.payload, o.contact_key) for o in out[i : i + batch]])
        if out:
            self.shipped = max(self.shipped, out[-1].seq)
        return len(out)

    def stop(self) -> None:
        """Stop the appliance's writer."""
        self.service.stop()


def use_email(engine: sa.Engine, settings: dict[str, Any], tenant: str = TENANT) -> None:
    """Configure the tenant's e-mail channel (the SMTP test server's settings)."""
    with engine.begin() as conn:
        policy.save_provider(conn, tenant, "email", "email", settings, email_provider.SECRETS)


def rows(engine: sa.Engine, **where: Any) -> list[dict[str, Any]]:
    """Outbox rows (optionally filtered by column values), oldest first."""
    query = sa.select(outbox).order_by(outbox.c.id)
    for column, value in where.items():
        query = query.where(outbox.c[column] == value)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
