"""Sealed backups shipped to an S3-compatible store (issue 16: "shipped to the hub (or any S3-compatible store)").

Against a real S3 API server started here (moto's ThreadedMotoServer speaks the S3 protocol over HTTP; boto3 signs
and sends real requests): the scheduler's round seals the backup to the hub's key and uploads it, the store never
holds a readable byte, `qms-cloud backups fetch --from-s3` opens the newest with the hub's private key and the drill
restores it; retention deletes objects past their expiry; a missing bucket, refused credentials or an unreachable
endpoint are recorded and retried, and the appliance's local backup is written all the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from edge import backup_ship
from edge.doctor import check_backup_shipping
from edge.drill import run_drill
from sync import backup_s3, backup_seal
from tests.edge.conftest import S3_BRANCH, S3_BUCKET, S3_TENANT, s3_shipping_env
from tests.support.appliance import free_port, seed_demo

TENANT, BRANCH, BUCKET = S3_TENANT, S3_BRANCH, S3_BUCKET
DAY = timedelta(days=1)


def _objects(endpoint: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_sealed_backups_go_to_s3_expire_there_and_restore(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    env = s3_shipping_env(tmp_path, s3)
    settings = backup_ship.ShipSettings.from_env(data, env)
    assert settings.to_s3
    assert not settings.ships  # no hub here: S3 alone
    t0 = datetime.now(UTC).replace(microsecond=0)
    first = backup_ship.run_once(settings, clock=t0)
    assert first.get("backup_error") is None
    assert first["s3_error"] is None
    assert first["s3_pending"] == 0
    name = f"{first['last_backup']}{backup_seal.SUFFIX}"
    assert _objects(s3) == [f"branches/{TENANT}/{BRANCH}/{name}"]
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
    body = client.get_object(Bucket=BUCKET, Key=f"branches/{TENANT}/{BRANCH}/{name}")["Body"].read()
    assert body.startswith(backup_seal.MAGIC)
    assert b"SQLite format 3" not in body  # the store never holds a readable backup
    assert check_backup_shipping(data).status != "fault"

    # The hub's operator fetches the newest from the bucket and opens it with the hub's key; the drill restores it.
    for variable, value in env.items():
        if variable.startswith("QMS_BACKUP_S3_"):
            monkeypatch.setenv(variable, value)
    opened = tmp_path / "from-s3.tar.gz"
    hub_key = str(tmp_path / "hub" / "backup.key")
    fetched = CliRunner().invoke(cloud_app, ["backups", "fetch", "--from-s3", "--tenant", TENANT, "--branch", BRANCH,
                                             "--out", str(opened), "--key", hub_key])  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    assert name in fetched.output
    assert run_drill(data, opened).events >= 1

    # Eight days later the first backup has expired (7 days): the round uploads a new one and deletes the old object.
    later = backup_ship.run_once(settings, clock=t0 + 8 * DAY)
    assert later["s3_error"] is None
    assert later["s3_swept"] == 1
    assert _objects(s3) == [f"branches/{TENANT}/{BRANCH}/{later['last_backup']}{backup_seal.SUFFIX}"]


def test_a_missing_bucket_is_recorded_and_retried_never_raised(s3: str, tmp_path: Path) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    settings = backup_ship.ShipSettings.from_env(data, s3_shipping_env(tmp_path, s3, bucket="no-such-bucket"))
    status = backup_ship.run_once(settings)
    assert status.get("backup_error") is None  # the local backup is written all the same
    assert len(list((tmp_path / "backups").glob("qms-*.tar.gz"))) == 1
    assert "NoSuchBucket" in status["s3_error"]
    assert "qms-test-secret" not in status["s3_error"]
    assert status["s3_failures"] == 1
    assert status["s3_pending"] == 1
    assert backup_ship.Scheduler(settings).next_delay(status, datetime.now(UTC).timestamp()) == backup_ship.RETRY_BASE

    boto3.client("s3", endpoint_url=s3, region_name="us-east-1").create_bucket(Bucket="no-such-bucket")
    retried = backup_ship.run_once(settings, backup_due=False)
    assert retried["s3_error"] is None
    assert retried["s3_failures"] == 0
    assert retried["s3_pending"] == 0


def test_refused_credentials_and_an_unreachable_store_degrade(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    data = tmp_path / "qms"
    seed_demo(data)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
    env = s3_shipping_env(tmp_path, s3)
    settings = backup_ship.ShipSettings.from_env(data, {**env, "QMS_BACKUP_S3_ACCESS_KEY": "AKIAUNKNOWN000000000"})
    status = backup_ship.run_once(settings)
    assert status.get("backup_error") is None
    assert " 403 " in status["s3_error"]
    assert status["s3_pending"] == 1

    down = backup_ship.ShipSettings.from_env(data, {**env, "QMS_BACKUP_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    status = backup_ship.run_once(down, backup_due=False)
    assert "failed" in status["s3_error"]
    assert status["s3_failures"] == 2  # counted on from the refusal: the same queue still waits
    assert status["s3_pending"] == 1
    with pytest.raises(backup_s3.S3Failed):
        backup_ship.ship_pending_s3(down)
