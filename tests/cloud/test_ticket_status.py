"""The cloud's public ticket status page (`/t/<token>`) over a store filled with a real branch's replicated events,
keyed by the seed `issue` wrote (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from cloud.apply import Incoming, apply_batch
from cloud.credentials import issue
from cloud.store import config_versions, create_store_engine, transaction, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from edge.engine import commands as c
from edge.engine.numbering import format_number
from edge.replication import read_outgoing
from edge.service import QueueService
from sync.links import seed_link_key, sign
from tests.cloud.branch_events import TENANT, subject
from tests.support.appliance import seed_demo

BRANCH = "jkt-sudirman"


@dataclass
class Branch:
    """An in-process appliance whose log is applied to the cloud store on `ship()`."""

    service: QueueService
    engine: Any
    shipped: int = 0

    def run(self, command: c.Command) -> dict[str, Any]:
        return self.service.execute(command).response  # type: ignore[no-any-return]

    def ship(self) -> None:
        """Apply every event not yet applied, as the relay and consumer would."""
        out = list(self.service.read(lambda conn: read_outgoing(conn, self.shipped, 1_000_000)))
        result = apply_batch(self.engine, [Incoming(subject(BRANCH), o.payload) for o in out])
        assert result.applied == len(out), result
        self.shipped = out[-1].seq if out else self.shipped


@dataclass
class Rig:
    branch: Branch
    client: TestClient[Any]
    key: bytes

    def page(self, ref: str, branch_id: str = BRANCH, key: bytes | None = None) -> Any:
        return self.client.get(f"/t/{sign(key or self.key, branch_id, ref)}")


@pytest.fixture
def rig(store_url: str, tmp_path: Path) -> Iterator[Rig]:
    seed_demo(tmp_path / "edge", demo_config(), users=[])
    engine = create_store_engine(store_url)
    issued = issue(engine, tmp_path / "keys", TENANT, BRANCH)
    service = QueueService(tmp_path / "edge")
    service.start()
    try:
        app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
        with TestClient(app=app) as client:
            yield Rig(Branch(service, engine), client, seed_link_key(issued.seed_file))
    finally:
        service.stop()
        engine.dispose()


def test_waiting_and_called_tickets_show_their_state_in_their_language(rig: Rig) -> None:
    branch = rig.branch
    first = branch.run(c.Enqueue(service_id="teller", lang="id"))
    second = branch.run(c.Enqueue(service_id="teller", lang="id"))
    third = branch.run(c.Enqueue(service_id="teller", lang="en", phone="081234567890", customer_ref="CIF123"))
    branch.run(c.Enqueue(service_id="cs"))  # another service's queue is not ahead
    called = branch.run(c.CallNext(counter_id="2"))["ticket"]
    assert called["ticket_id"] == first["ticket_id"]
    branch.ship()

    waiting = rig.page(f"t:{third['ticket_id']}")
    assert waiting.status_code == 200
    assert waiting.headers["cache-control"] == "no-store"
    assert waiting.headers["x-frame-options"] == "DENY"
    assert waiting.headers["referrer-policy"] == "no-referrer"
    text = waiting.text
    assert third["ticket_number"] in text
    assert "Bank Demo - KCP Sudirman" in text
    assert re.search(r'id="state">Waiting<', text)
    assert re.search(r'id="ahead">1<', text)  # the second ticket; the first was called
    assert 'http-equiv="refresh" content="15"' in text
    assert re.search(r'id="updated">Updated \d\d:\d\d', text)
    for personal in ("0812", "7890", "CIF123"):  # no phone, masked or not, and no customer reference
        assert personal not in text

    assert re.search(r'id="ahead">0<', rig.page(f"t:{second['ticket_id']}").text)
    calling = rig.page(f"t:{first['ticket_id']}").text
    assert "Dipanggil" in calling  # the ticket's language (id)
    assert re.search(r'id="counter">Loket 2<', calling)

    branch.run(c.Start(ticket_id=first["ticket_id"], counter_id="2"))
    branch.run(c.Complete(ticket_id=first["ticket_id"], counter_id="2"))
    branch.run(c.Cancel(ticket_id=second["ticket_id"]))
    branch.ship()
    assert re.search(r'id="state">Selesai<', rig.page(f"t:{first['ticket_id']}").text)
    assert re.search(r'id="state">Dibatalkan<', rig.page(f"t:{second['ticket_id']}").text)
    assert re.search(r'id="ahead">0<', rig.page(f"t:{third['ticket_id']}").text)


def test_forged_altered_foreign_and_unknown_links_are_plain_404s(rig: Rig) -> None:
    ticket = rig.branch.run(c.Enqueue(service_id="teller"))
    rig.branch.ship()
    good = sign(rig.key, BRANCH, f"t:{ticket['ticket_id']}")
    assert rig.client.get(f"/t/{good}").status_code == 200
    refused = [
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # altered tag
        sign(b"a forger's key", BRANCH, f"t:{ticket['ticket_id']}"),  # forged
        sign(rig.key, "bdg-dago", f"t:{ticket['ticket_id']}"),  # a branch the hub does not know
        "garbage",
        "a" * 2000,
    ]
    for token in refused:
        r = rig.client.get(f"/t/{token}")
        assert r.status_code == 404, token
        assert r.headers["cache-control"] == "no-store"
        assert "Link not found" in r.text
        assert ticket["ticket_number"] not in r.text
    assert rig.page("t:not-a-ticket-yet").status_code == 200  # valid, but not replicated yet: a waiting note


def test_an_offline_ticket_shows_its_number_before_and_its_state_after_it_synced(rig: Rig) -> None:
    branch = rig.branch
    lease = branch.run(c.LeaseNumbers(actor="kiosk-1", device_id="kiosk-1", service_id="cs", count=3))
    temp_id = f"off-{lease['lease_id']}-{lease['first_seq']}"
    branch.ship()
    number = format_number(demo_config().services[1], lease["first_seq"])
    pending = rig.page(f"o:{temp_id}")
    assert pending.status_code == 200
    assert re.search(rf'id="number">{number}<', pending.text)
    assert "akan muncul setelah tersinkron" in pending.text
    outside = f"off-{lease['lease_id']}-{lease['last_seq'] + 1}"
    assert 'id="number"' not in rig.page(f"o:{outside}").text  # not a number of that lease

    branch.run(c.EnqueueLeased(actor="kiosk-1", request_id=temp_id, lease_id=lease["lease_id"],
                               seq_no=lease["first_seq"], issued_at=datetime.now(UTC), device_id="kiosk-1",
                               lang="en"))  # fmt: skip
    branch.ship()
    synced = rig.page(f"o:{temp_id}").text
    assert re.search(rf'id="number">{number}<', synced)
    assert re.search(r'id="state">Waiting<', synced)
    assert "Customer Service" in synced  # the service's English name


def test_the_version_the_branch_runs_names_the_branch(rig: Rig) -> None:
    ticket = rig.branch.run(c.Enqueue(service_id="teller"))
    rig.branch.ship()
    renamed = msgspec.structs.replace(demo_config(), version=1, name="KCP Sudirman (HQ)")
    with transaction(rig.branch.engine) as conn:
        conn.execute(config_versions.insert().values(tenant_id=TENANT, branch_id=BRANCH, version=1,
                                                     doc=msgspec.json.encode(renamed).decode(),
                                                     created_at=utcnow_iso()))  # fmt: skip
    assert "KCP Sudirman (HQ)" in rig.page(f"t:{ticket['ticket_id']}").text
