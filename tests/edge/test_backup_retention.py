"""No backup outlives a contact's retention (issue 16, Must show: "after the retention period the contact cannot be
recovered from the appliance, the hub or a backup, and `qms-edge verify` still passes").

Every backup expires (QMS_BACKUP_MAX_AGE_DAYS, 7 days here) and leaves out the contact keys due before its expiry
plus a day's grace; the appliance deletes its expired archives and sealed copies, the hub its shipped ones. End to
end with the real writer, a real hub over HTTP (uploads signed with the branch's NKey) and the hub's backup key: a
ticket with a phone and an e-mail, backups shipped as the (controlled) days pass, the shred at the end of the
retention; then every backup that still exists, local or at the hub (opened with the hub's private key), yields no
trace of the contact, `qms-edge verify` passes and the drill still restores the newest backup."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.ops import backup_store
from edge import backup, backup_ship, pii
from edge.cli import app as edge_app
from edge.drill import run_drill
from edge.engine import commands as c
from edge.service import QueueService
from edge.store.db import connect
from sync import backup_seal, crypto
from tests.images.conftest import running_hub
from tests.support.appliance import seed_demo

TENANT, BRANCH = "acme", "jkt-sudirman"
PHONE_A, EMAIL_A, REF_A = "081299887766", "siti.rahma@example.co.id", "NIK-3174012345678901"
PHONE_B, EMAIL_B = "081355501234", "budi.santoso@example.co.id"
DAY = timedelta(days=1)


class Clock:
    """The appliance's clock, moved by the test (retention and backup lifetimes are days long)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, Path]]:
    """A running hub with a backup key and a store: (URL, store dir, private key file)."""
    key, store = tmp_path / "hub" / "backup.key", tmp_path / "hub" / "appliance-backups"
    made = CliRunner().invoke(cloud_app, ["backups", "keygen", "--key", str(key)])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("QMS_HUB_BACKUP_KEY", str(key))
    monkeypatch.setenv("QMS_HUB_BACKUP_STORE", str(store))
    monkeypatch.setenv("QMS_HUB_BACKUP_MAX_AGE_DAYS", "7")
    with running_hub(tmp_path) as (url, _code, _store_url):
        yield url, store, key


def _archive_bytes(archive: Path) -> bytes:
    """Every byte inside a backup archive (manifest, database, files), uncompressed."""
    with tarfile.open(archive) as tar:
        return b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]


def _keys_in(archive: Path, scratch: Path) -> dict[str, bytes]:
    """The contact keys a backup would give back when restored."""
    scratch.mkdir()
    backup.restore_backup(archive, scratch, replace=False)
    conn = connect(scratch / backup.DB_NAME, readonly=True)
    try:
        return pii.keys_of(conn)
    finally:
        conn.close()


def test_no_backup_anywhere_outlives_a_contacts_retention(  # noqa: PLR0915 - one story, end to end
    hub: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store, hub_key = hub
    monkeypatch.setenv(pii.RETENTION_ENV, "30")
    t0 = datetime.now(UTC).replace(microsecond=0)  # the hub checks upload times against its real clock
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    settings = backup_ship.ShipSettings.from_env(data, {
        "QMS_HUB_URL": url, "QMS_TENANT": TENANT, "QMS_BRANCH": BRANCH,
        "QMS_NATS_NKEY": str(tmp_path / "keys" / f"{TENANT}.{BRANCH}.nk"),
        "QMS_BACKUP_DIR": str(tmp_path / "backups"), "QMS_BACKUP_RECIPIENT": str(hub_key.with_suffix(".pub")),
        backup.LIFETIME_ENV: "7",
    })  # fmt: skip
    assert settings.ships
    assert settings.max_age == 7 * DAY
    clock = Clock(t0)
    service = QueueService(data, clock=clock)
    service.start()
    try:
        a = service.execute(c.Enqueue(service_id="teller", phone=PHONE_A, email=EMAIL_A, customer_ref=REF_A,
                                      notify_opt_in=True)).response["ticket_id"]  # fmt: skip
        key_a = service.read(lambda conn: pii.keys_of(conn, [a]))[a]
        # Day 1: a backup expiring on day 8 keeps A's contact (due on day 30): a restore would still notify A.
        early = backup_ship.run_once(settings, clock=t0 + DAY)
        assert early.get("backup_error") is None
        assert early["upload_error"] is None
        early_name = early["last_backup"]
        assert backup_seal.expires_of(early_name) == t0 + 8 * DAY
        assert a in _keys_in(tmp_path / "backups" / early_name, tmp_path / "restored-early")

        clock.now = t0 + 20 * DAY
        b = service.execute(c.Enqueue(service_id="teller", phone=PHONE_B, email=EMAIL_B,
                                      notify_opt_in=True)).response["ticket_id"]  # fmt: skip
        # Day 25: the backup would live until day 32, past A's retention (day 30): A's contact is left out of it,
        # B's (due on day 50) is kept. The live appliance still has both.
        late = backup_ship.run_once(settings, clock=t0 + 25 * DAY)
        assert late["upload_error"] is None
        late_name = late["last_backup"]
        late_archive = tmp_path / "backups" / late_name
        kept = _keys_in(late_archive, tmp_path / "restored-late")
        assert a not in kept
        assert b in kept
        manifest = backup.restore_backup(late_archive, tmp_path / "restored-late-2", replace=False).manifest
        stamp = {days: f"{(t0 + days * DAY).isoformat()[:19]}Z" for days in (32, 33)}
        assert manifest["contacts"] == {"kept": 1, "left_out": 1, "kept_if_due_after": stamp[33]}
        assert manifest["expires_at"] == stamp[32]
        late_bytes = _archive_bytes(late_archive)
        for secret in (key_a, crypto.encode_key(key_a).encode(), PHONE_A.encode(), EMAIL_A.encode(), REF_A.encode()):
            assert secret not in late_bytes, secret
        assert PHONE_B.encode() in late_bytes  # B's ticket still carries its contact in the projection
        assert service.read(lambda conn: set(pii.keys_of(conn))) == {a, b}
        # The early backup expired on day 8: the round on day 25 deleted it here; the hub deletes it by its name.
        assert not (tmp_path / "backups" / early_name).exists()
        shipped = {p.name for p in (store / TENANT / BRANCH).glob("qms-*.qmsseal")}
        assert shipped == {f"{early_name}{backup_seal.SUFFIX}", f"{late_name}{backup_seal.SUFFIX}"}

        # Day 30 and a minute: A's retention ends; the appliance shreds its key.
        clock.now = t0 + 30 * DAY + timedelta(minutes=1)
        assert service.shred_contacts().result(10) == [a]
        backup_ship.run_once(settings, backup_due=False, clock=clock.now)
        assert backup_store.sweep(store, clock.now) == [f"{TENANT}/{BRANCH}/{early_name}{backup_seal.SUFFIX}"]
    finally:
        service.stop()

    # Every backup that still exists: local archives, sealed copies waiting, the hub's copies opened with its key.
    local = sorted((tmp_path / "backups").glob("qms-*.tar.gz"))
    assert [p.name for p in local] == [late_name]
    assert not list((tmp_path / "backups" / "outgoing").glob("qms-*"))
    at_hub = backup_store.list_backups(store, TENANT, BRANCH, clock.now)
    assert [s.name for s in at_hub] == [f"{late_name}{backup_seal.SUFFIX}"]
    opened = tmp_path / "from-hub.tar.gz"
    backup_store.fetch(store, TENANT, BRANCH, hub_key.read_bytes(), opened, now=clock.now)
    for archive in [*local, opened]:
        raw = _archive_bytes(archive)
        for secret in (key_a, crypto.encode_key(key_a).encode(), PHONE_A.encode(), EMAIL_A.encode(), REF_A.encode()):
            assert secret not in raw, (archive.name, secret)
        assert a not in _keys_in(archive, tmp_path / f"check-{archive.name}")
    # Nor on the appliance itself, and its log still verifies.
    live = b"".join(p.read_bytes() for p in sorted(data.glob("qms.sqlite3*")))
    assert key_a not in live
    assert PHONE_A.encode() not in live
    verified = CliRunner().invoke(edge_app, ["verify", "--data-dir", str(data)])
    assert verified.exit_code == 0, verified.output
    # The drill still restores the newest backup (the one from the hub, too) and boots on it.
    assert run_drill(data, opened).events >= 3

    # Day 32: the late backup expires: gone here and at the hub, though B's contact (day 50) is still live.
    gone_at = t0 + 32 * DAY
    assert backup_ship.sweep_local(settings, gone_at) == [late_name]
    assert backup_store.sweep(store, gone_at) == [f"{TENANT}/{BRANCH}/{late_name}{backup_seal.SUFFIX}"]
    with pytest.raises(FileNotFoundError):
        backup_store.fetch(store, TENANT, BRANCH, hub_key.read_bytes(), tmp_path / "nothing.tar.gz", now=gone_at)


def test_the_scheduler_wakes_for_the_earliest_expiry(tmp_path: Path) -> None:
    """A daily round would leave an expired backup up to a day longer: the thread wakes when the first one expires."""
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    settings = backup_ship.ShipSettings(data_dir=data, backups=tmp_path / "backups", interval=30 * 86400.0,
                                        max_age=DAY)  # fmt: skip
    now = datetime.now(UTC)
    status = backup_ship.run_once(settings, clock=now)
    assert status.get("backup_error") is None
    delay = backup_ship.Scheduler(settings).next_delay(status, now.timestamp())
    assert 86400 - 5 < delay <= 86400
