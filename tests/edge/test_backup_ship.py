"""Scheduled appliance backups sealed to the hub's key and shipped to a real hub (issue 16, E-PLAT-03).

End to end: an appliance enrolled with a hub that has a backup key (enrolment hands it the public half) runs
`qms-edge serve` with a short interval; its scheduler writes, seals and uploads backups while tickets are issued;
`qms-cloud backups fetch` opens the newest with the hub's private key, `qms-edge drill --backup` passes on it and
`qms-edge restore` brings every acknowledged ticket back on a blank box. A hub that is down leaves the sealed copy
waiting (recorded for doctor and /metrics) and it ships on the next attempt; the hub refuses another branch's
signature, a body that does not match its digest, an oversized upload, and keeps only the newest per branch."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.credentials import issue
from cloud.store import create_store_engine
from edge import backup_ship
from edge.doctor import check_backup_shipping
from sync import backup_seal
from tests.images.conftest import running_hub
from tests.support import appliance as appliance_support
from tests.support.appliance import RunningAppliance, free_port, run_cli, seed_demo
from tests.support.cloud_hub import wait_until

TENANT, BRANCH = "acme", "jkt-sudirman"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Path]]:
    """A hub with a backup key and a store: (URL, one-time code, store dir)."""
    key, store = tmp_path / "hub" / "backup.key", tmp_path / "hub" / "appliance-backups"
    made = CliRunner().invoke(cloud_app, ["backups", "keygen", "--key", str(key)])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("QMS_HUB_BACKUP_KEY", str(key))
    monkeypatch.setenv("QMS_HUB_BACKUP_STORE", str(store))
    with running_hub(tmp_path) as (url, code, _store_url):
        yield url, code, store


def _settings(tmp_path: Path, data: Path, hub_url: str, **overrides: object) -> backup_ship.ShipSettings:
    env = {
        "QMS_HUB_URL": hub_url, "QMS_TENANT": TENANT, "QMS_BRANCH": BRANCH,
        "QMS_NATS_NKEY": str(tmp_path / "keys" / f"{TENANT}.{BRANCH}.nk"),
        "QMS_BACKUP_DIR": str(tmp_path / "backups"),
        "QMS_BACKUP_RECIPIENT": str(tmp_path / "hub" / "backup.pub"),
    }  # fmt: skip
    settings = backup_ship.ShipSettings.from_env(data, env)
    return backup_ship.ShipSettings(**{**settings.__dict__, **overrides})


def _tickets(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT ticket_id FROM tickets")}


def test_served_appliance_ships_sealed_backups_the_hub_opens_and_restores(
    hub: tuple[str, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, code, store = hub
    data, backups = tmp_path / "qms", tmp_path / "backups"
    seed_demo(data)
    enrolled = run_cli("enrol", "--hub", url, "--code", code, "--data-dir", str(data))
    assert enrolled.returncode == 0, enrolled.stderr
    assert (data / "backup-recipient.pem").read_bytes() == (tmp_path / "hub" / "backup.pub").read_bytes()
    for line in (data / "cloud.env").read_text().splitlines():
        if not line.startswith("#") and not line.startswith("QMS_NATS_URL"):
            monkeypatch.setenv(*line.split("=", 1))
    monkeypatch.setenv("QMS_BACKUP_DIR", str(backups))
    monkeypatch.setattr(appliance_support, "STARTUP_SECONDS", 90.0)  # a loaded 2-core box takes >20 s to import
    monkeypatch.setenv("QMS_BACKUP_INTERVAL_SECONDS", "6")  # rounds apart: start-up under load
    shipped = store / TENANT / BRANCH
    with RunningAppliance(data) as appliance:
        auth = {"Authorization": f"Bearer {appliance.token('admin')}"}
        acknowledged = set()
        for i in range(8):
            r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller", "request_id": f"ship-{i}"},
                           headers=auth, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text  # issued while backups are taken and shipped
            acknowledged.add(r.json()["ticket_id"])
        issued_at = time.time()

        def shipped_after_last_ticket() -> bool:  # a backup begun after the last ticket, and that very one shipped
            status = backup_ship.read_status(data)
            begun_after = float(status.get("last_backup_at") or 0) > issued_at
            return begun_after and status.get("last_uploaded") == f"{status.get('last_backup')}{backup_seal.SUFFIX}"

        wait_until(shipped_after_last_ticket, timeout=120, what="a backup taken after the last ticket shipped")
        metrics = httpx.get(f"{appliance.base_url}/metrics", timeout=10).text
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples["qms_backup_upload_last_success_timestamp_seconds"] > issued_at
    assert samples["qms_backup_upload_failures"] == 0
    stored = sorted(shipped.glob("qms-*.qmsseal"))
    assert stored, "nothing arrived at the hub"
    assert b"SQLite format 3" not in stored[-1].read_bytes()  # sealed: the hub holds no readable copy

    opened = tmp_path / "fetched.tar.gz"
    fetched = CliRunner().invoke(cloud_app, ["backups", "fetch", "--tenant", TENANT, "--branch", BRANCH, "--out",
                                             str(opened), "--store", str(store), "--key",
                                             str(tmp_path / "hub" / "backup.key")])  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    drilled = run_cli("drill", "--backup", str(opened), "--data-dir", str(data))
    assert drilled.returncode == 0, drilled.stderr
    blank = tmp_path / "new-box"
    restored = run_cli("restore", str(opened), "--data-dir", str(blank))
    assert restored.returncode == 0, restored.stderr
    assert acknowledged <= _tickets(blank / "qms.sqlite3")


def test_hub_down_leaves_the_sealed_copy_waiting_then_it_ships(hub: tuple[str, str, Path], tmp_path: Path) -> None:
    url, _code, store = hub
    data = tmp_path / "qms"
    seed_demo(data)
    down = _settings(tmp_path, data, f"http://127.0.0.1:{free_port()}")
    status = backup_ship.run_once(down)
    assert status["pending"] == 1
    assert status["upload_failures"] == 1
    assert "cannot reach the hub" in status["upload_error"]
    finding = check_backup_shipping(data)
    assert finding.status == "warn"
    assert "1 sealed backup(s) wait for the hub" in finding.message
    assert len(list((tmp_path / "backups").glob("qms-*.tar.gz"))) == 1  # the local archive is there all the same
    scheduler = backup_ship.Scheduler(down)
    assert scheduler.next_delay(status, time.time()) == backup_ship.RETRY_BASE  # retried soon, not in a day

    up = _settings(tmp_path, data, url)
    status = backup_ship.run_once(up, backup_due=False)
    assert status["pending"] == 0
    assert status["upload_failures"] == 0
    assert check_backup_shipping(data).status == "ok"
    assert len(list((store / TENANT / BRANCH).glob("qms-*.qmsseal"))) == 1


def _put(url: str, name: str, body: bytes, seed_file: Path, *, tenant: str = TENANT, branch: str = BRANCH,
         digest: str | None = None) -> httpx.Response:  # fmt: skip
    import base64

    import nkeys

    digest = digest or hashlib.sha256(body).hexdigest()
    stamp = int(time.time())
    message = backup_seal.upload_message(tenant, branch, name, len(body), digest, stamp)
    signature = base64.b64encode(nkeys.from_seed(bytearray(seed_file.read_bytes().strip())).sign(message)).decode()
    headers = {backup_seal.SIGNATURE_HEADER: signature, backup_seal.TIMESTAMP_HEADER: str(stamp),
               backup_seal.SHA256_HEADER: digest}  # fmt: skip
    return httpx.put(f"{url}/api/v1/backups/{tenant}/{branch}/{name}", content=body, headers=headers, timeout=10)


def test_the_hub_checks_who_what_and_how_much_and_keeps_the_newest(
    hub: tuple[str, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _code, store = hub
    keys = tmp_path / "keys"
    own = keys / f"{TENANT}.{BRANCH}.nk"
    issue(create_store_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}"), keys, TENANT, "bdg-dago")
    other = keys / f"{TENANT}.bdg-dago.nk"

    assert _put(url, "qms-1.qmsseal", b"x" * 10, own).status_code == 201
    assert _put(url, "qms-1.qmsseal", b"x" * 10, own).status_code == 200  # a retry of a confirmed upload
    assert _put(url, "qms-1.qmsseal", b"y" * 10, own).status_code == 409
    refused = _put(url, "qms-2.qmsseal", b"x" * 10, other)  # bdg-dago's key for jkt-sudirman's backups
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert _put(url, "qms-2.qmsseal", b"x" * 10, own, digest="0" * 64).status_code == 400  # body != its digest
    assert _put(url, "../qms-2.qmsseal", b"x", own).status_code in {400, 404}
    assert _put(url, "evil.sh", b"x", own).status_code == 400
    monkeypatch.setenv("QMS_HUB_BACKUP_MAX_BYTES", "100")
    assert _put(url, "qms-3.qmsseal", b"x" * 101, own).status_code == 413
    monkeypatch.setenv("QMS_HUB_BACKUP_KEEP", "2")
    for n in (4, 5, 6):
        assert _put(url, f"qms-{n}.qmsseal", b"z" * n, own).status_code == 201
    assert sorted(p.name for p in (store / TENANT / BRANCH).glob("qms-*.qmsseal")) == ["qms-5.qmsseal", "qms-6.qmsseal"]
    assert not list((store / TENANT / BRANCH).glob(".*.part"))
