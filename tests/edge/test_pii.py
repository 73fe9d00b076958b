"""Crypto-shredding of customer contacts (issue 16, UU PDP 27/2022): the appliance's append-only log carries only a
ticket's sealed contact; its key lives outside the hash chain and is erased after the retention period, so the
appliance database, the hub's store and any backup taken afterwards cannot give the contact back while
`qms-edge verify` still passes. Real SQLite files, the real writer, the real hub store; no mocks."""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.apply import Incoming, apply_batch
from cloud.notify.contacts import purge, read
from cloud.notify.tables import contacts as contact_rows
from cloud.ops import pii as hub_pii
from cloud.store import create_store_engine
from edge import pii
from edge.cli import app
from edge.engine import commands as c
from edge.replication import read_outgoing
from edge.service import QueueService
from edge.store import rebuild
from edge.store.log import read_events
from sync import crypto
from sync.contract import TicketCreated
from sync.relay import event_subject
from tests.cloud.notify.branch import use_email
from tests.support.appliance import seed_demo

PHONE = "081299887766"
EMAIL = "siti.rahma@example.co.id"
REF = "NIK-3174012345678901"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class Clock:
    """The appliance's clock, moved by the test (retention is days long)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _raw(data_dir: Path) -> bytes:
    """Every byte the appliance keeps in its database files (main file, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("qms.sqlite3*")))


def _secrets(key: bytes) -> list[bytes]:
    return [PHONE.encode(), EMAIL.encode(), REF.encode(), key, crypto.encode_key(key).encode()]


def test_a_sealed_contact_opens_only_with_its_key_and_ticket() -> None:
    key = crypto.new_key()
    sealed = crypto.seal_contact(key, "t-1", {"phone": PHONE, "email": None, "customer_ref": REF})
    assert PHONE not in sealed
    assert REF not in sealed
    assert crypto.open_contact(key, "t-1", sealed) == {"phone": PHONE, "email": None, "customer_ref": REF}
    assert crypto.open_contact(crypto.new_key(), "t-1", sealed) is None  # another ticket's key
    assert crypto.open_contact(key, "t-2", sealed) is None  # moved onto another ticket
    assert crypto.open_contact(key, "t-1", sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]) is None


def test_contacts_are_shredded_at_the_appliance_the_hub_and_in_later_backups(tmp_path: Path) -> None:  # noqa: PLR0915
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    clock = Clock()
    service = QueueService(data, clock=clock)
    service.start()
    hub = create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    use_email(hub, {"host": "127.0.0.1", "port": 2525, "sender": "qms@example.co.id"})
    try:
        made = service.execute(c.Enqueue(service_id="teller", phone=PHONE, email=EMAIL, customer_ref=REF,
                                         notify_opt_in=True)).response  # fmt: skip
        ticket_id = made["ticket_id"]
        plain = service.execute(c.Enqueue(service_id="teller")).response["ticket_id"]
        # The ticket still shows its (masked) phone and reference while the contact is kept.
        assert made["customer_ref"] == REF
        assert made["phone"]
        assert made["phone"] != PHONE
        log = service.read(lambda conn: read_events(conn, 0))
        created = next(e for e in log if isinstance(e, TicketCreated) and e.ticket_id == ticket_id)
        assert (created.phone, created.email, created.customer_ref) == (None, None, None)
        assert created.contact_sealed
        bodies = b"".join(service.read(lambda conn: [r[0] for r in conn.execute("SELECT body FROM events")]))
        assert PHONE.encode() not in bodies
        assert EMAIL.encode() not in bodies
        assert REF.encode() not in bodies
        key = service.read(lambda conn: conn.execute("SELECT key FROM contact_keys WHERE ticket_id = ?",
                                                      (ticket_id,)).fetchone()[0])  # fmt: skip
        assert service.read(lambda conn: conn.execute("SELECT count(*) FROM contact_keys").fetchone()[0]) == 1
        # Replaying the log while the key is kept gives the same projections (the contact opened with its key).
        assert service.read(lambda conn: rebuild.differences(conn, rebuild.replay(conn))) == []

        # The hub gets the key beside the event (the relay's header), never inside it: notifications still work.
        outgoing = service.read(lambda conn: read_outgoing(conn, 0, 1000))
        assert [o.contact_key for o in outgoing if o.contact_key] == [crypto.encode_key(key)]
        subject = event_subject("acme", "jkt-sudirman")
        apply_batch(hub, [Incoming(subject, o.payload, contact_key=o.contact_key) for o in outgoing])
        with hub.connect() as conn:
            stored = read(conn, "acme", "jkt-sudirman", ticket_id)
            assert stored is not None
            assert stored.phone == "+6281299887766"
            assert stored.email == EMAIL
            hub_bodies = "".join(conn.execute(sa.text("SELECT body FROM events")).scalars())
        assert "6281299887766" not in hub_bodies.replace(PHONE, "")
        assert PHONE not in hub_bodies
        assert EMAIL not in hub_bodies
        assert REF not in hub_bodies

        before = tmp_path / "before.tar.gz"
        assert CliRunner().invoke(app, ["backup", str(before), "--data-dir", str(data)]).exit_code == 0

        # The retention period passes: the sweep erases the key and the projection's copy.
        clock.now = T0 + pii.retention() + timedelta(minutes=1)
        assert service.shred_contacts().result(10) == [ticket_id]
        shredded = service.state.tickets.get(ticket_id)
        assert shredded is None or (shredded.phone, shredded.email, shredded.customer_ref) == (None, None, None)
        assert service.read(lambda conn: conn.execute("SELECT count(*) FROM contact_keys").fetchone()[0]) == 0
        reread = next(e for e in service.events_after(0) if isinstance(e, TicketCreated) and e.ticket_id == ticket_id)
        assert (reread.phone, reread.email, reread.customer_ref) == (None, None, None)
        assert reread.contact_sealed == created.contact_sealed  # the log is unchanged: only its key is gone
        assert service.read(lambda conn: rebuild.differences(conn, rebuild.replay(conn))) == []
        assert plain
        with hub.begin() as conn:
            purge(conn, clock.now + timedelta(days=400))
            assert read(conn, "acme", "jkt-sudirman", ticket_id) is None
            assert conn.execute(sa.select(sa.func.count()).select_from(contact_rows)).scalar_one() == 0
        after = tmp_path / "after.tar.gz"
        assert CliRunner().invoke(app, ["backup", str(after), "--data-dir", str(data)]).exit_code == 0
    finally:
        service.stop()
        hub.dispose()

    # Nothing left anywhere after the shred: the appliance's files, the hub's file, the later backup's bytes.
    raw = _raw(data)
    hub_raw = (tmp_path / "hub.sqlite3").read_bytes()
    with tarfile.open(after) as tar:
        backup_raw = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    for secret in _secrets(key):
        assert secret not in raw, secret
        assert secret not in backup_raw, secret
    assert b"6281299887766" not in hub_raw
    assert EMAIL.encode() not in hub_raw
    assert REF.encode() not in hub_raw
    # Nor did the backup taken before the shred hold the key: it would have outlived the contact's retention, so it
    # was left out of the copy (edge/backup.py; tests/edge/test_backup_retention.py follows the days one by one).
    with tarfile.open(before) as tar:
        assert not any(key in tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    verified = CliRunner().invoke(app, ["verify", "--data-dir", str(data)])
    assert verified.exit_code == 0, verified.output


def test_events_from_before_sealing_keep_their_clear_fields(tmp_path: Path) -> None:
    """An event written before sealing existed (clear phone, no `contact_sealed` in its body) is read as it is: the
    engine and the hub's trigger see its clear fields, and a stray key header cannot change them."""
    old = TicketCreated(event_id="e-old", occurred_at=T0, actor="kiosk", ticket_id="t-old", service_id="teller",
                        ticket_number="A900", seq_no=900, business_date="2026-03-02", order=900,
                        phone=PHONE)  # fmt: skip
    body = msgspec.json.decode(msgspec.json.encode(old))
    del body["contact_sealed"]
    event = msgspec.json.decode(msgspec.json.encode(body), type=TicketCreated)
    assert event.contact_sealed is None
    assert event.phone == PHONE
    assert pii.opened(event, {"t-old": crypto.new_key()}) == event
    with hub_pii.offered_keys({("acme", "b", 0): crypto.encode_key(crypto.new_key()), ("acme", "b", 1): "junk"}):
        assert hub_pii.contact_of("acme", "b", event).phone == PHONE
    sealed = msgspec.structs.replace(event, phone=None, contact_sealed=crypto.seal_contact(
        crypto.new_key(), "t-old", {"phone": PHONE, "email": None, "customer_ref": None}))  # fmt: skip
    assert hub_pii.contact_of("acme", "b", sealed).phone is None  # no key came with it: nothing to open


@pytest.mark.parametrize("ref", ["booking:b-123"])
def test_a_booking_reference_stays_clear_for_the_hubs_check_in(tmp_path: Path, ref: str) -> None:
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    service = QueueService(data)
    service.start()
    try:
        made = service.execute(c.Enqueue(service_id="teller", customer_ref=ref)).response
        created = next(e for e in service.events_after(0) if isinstance(e, TicketCreated)
                       and e.ticket_id == made["ticket_id"])  # fmt: skip
        assert created.customer_ref == ref
        assert created.contact_sealed is None
    finally:
        service.stop()
