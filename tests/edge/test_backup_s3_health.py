"""`qms-edge doctor` and `/metrics` report the backups shipped to an S3-compatible store (issue 16).

Against a real S3 API server (moto's, boto3 over HTTP) and injected failing endpoints: the doctor names an unreachable
store, a refused key and a missing bucket in words with what to do, turns a fault once no backup has reached the
store for a day, and is ok again after the retry; a served appliance's /metrics exports qms_backup_s3_failures and
_pending while the bucket is missing and the upload's time once it exists."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge import backup_ship
from edge.doctor import Probes, check_backup_s3
from tests.edge.conftest import s3_shipping_env
from tests.support import appliance as appliance_support
from tests.support.appliance import RunningAppliance, free_port, seed_demo
from tests.support.cloud_hub import wait_until


def _probes(env: dict[str, str], now: datetime | None = None) -> Probes:
    moment = now or datetime.now(UTC)
    return Probes(now=lambda: moment, env=env)


def test_the_doctor_names_each_s3_fault_and_what_to_do(s3: str, tmp_path: Path) -> None:
    import moto.settings

    data = tmp_path / "qms"
    seed_demo(data)
    env = s3_shipping_env(tmp_path, s3)
    unenrolled = {**env, "QMS_BACKUP_RECIPIENT": str(tmp_path / "none.pem")}  # no hub key to seal to
    finding = check_backup_s3(data, _probes(unenrolled))
    assert finding.status == "warn"
    assert "QMS_BACKUP_S3_BUCKET is set (qms-backups-test) but no sealed backup goes there yet" in finding.message
    assert "qms-edge enrol" in finding.fix
    finding = check_backup_s3(data, _probes(env))
    assert (finding.status, finding.message.split(";")[0]) == ("ok", "set to ship to qms-backups-test")

    down = {**env, "QMS_BACKUP_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
    backup_ship.run_once(backup_ship.ShipSettings.from_env(data, down))
    finding = check_backup_s3(data, _probes(down))
    assert finding.status == "warn"
    assert finding.message.startswith("the store cannot be reached; 1 sealed backup(s) wait, 1 failed attempt(s)")
    assert "QMS_BACKUP_S3_ENDPOINT" in finding.fix

    missing = {**env, "QMS_BACKUP_S3_BUCKET": "no-such-bucket"}
    backup_ship.run_once(backup_ship.ShipSettings.from_env(data, missing), backup_due=False)
    finding = check_backup_s3(data, _probes({}))  # the doctor run without the settings still names the bucket
    assert finding.message.startswith("the bucket no-such-bucket does not exist at the store")
    assert "create the bucket" in finding.fix

    refused = {**env, "QMS_BACKUP_S3_ACCESS_KEY": "AKIAUNKNOWN000000000"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
        backup_ship.run_once(backup_ship.ShipSettings.from_env(data, refused), backup_due=False)
    finding = check_backup_s3(data, _probes(refused))
    assert finding.status == "warn"
    assert finding.message.startswith("the store refused the key; 1 sealed backup(s) wait, 3 failed attempt(s)")
    assert "QMS_BACKUP_S3_SECRET_KEY" in finding.fix
    assert "qms-test-secret" not in finding.message

    # A day and more without a copy reaching the store is a fault (the copy waiting was taken 27 h ago).
    finding = check_backup_s3(data, _probes(refused, datetime.now(UTC) + timedelta(hours=27)))
    assert finding.status == "fault"
    assert finding.message.startswith("no backup has reached the S3 store for 27 h: the store refused the key")

    retried = backup_ship.run_once(backup_ship.ShipSettings.from_env(data, env), backup_due=False)
    assert retried["s3_error"] is None
    finding = check_backup_s3(data, _probes(env))
    assert (finding.status, finding.message) == ("ok", "shipped to the S3 store; 0 waiting")


def test_a_served_appliance_exports_s3_failures_then_the_upload(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    for variable, value in s3_shipping_env(tmp_path, s3, bucket="late-bucket").items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("QMS_BACKUP_INTERVAL_SECONDS", "6")  # rounds seconds apart
    monkeypatch.setattr(appliance_support, "STARTUP_SECONDS", 90.0)  # a loaded 2-core box takes >20 s to import
    started = time.time()

    def scrape(appliance: RunningAppliance) -> dict[str, float]:
        text = httpx.get(f"{appliance.base_url}/metrics", timeout=10).text
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    with RunningAppliance(data) as appliance:
        wait_until(lambda: backup_ship.read_status(data).get("s3_failures"), timeout=120, what="a failed S3 round")
        failing = scrape(appliance)
        assert failing["qms_backup_s3_failures"] >= 1
        assert failing["qms_backup_s3_pending"] >= 1
        assert "qms_backup_s3_last_success_timestamp_seconds" not in failing
        assert "qms_backup_upload_pending" not in failing  # no hub here: only the S3 target is exported

        boto3.client("s3", endpoint_url=s3, region_name="us-east-1").create_bucket(Bucket="late-bucket")
        wait_until(lambda: backup_ship.read_status(data).get("s3_last_upload_at"), timeout=120,
                   what="an S3 upload once the bucket exists")  # fmt: skip
        shipped = scrape(appliance)
    assert shipped["qms_backup_s3_last_success_timestamp_seconds"] > started
    assert shipped["qms_backup_s3_failures"] == 0
    assert shipped["qms_backup_s3_pending"] == 0
