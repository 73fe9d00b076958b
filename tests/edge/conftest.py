"""Fixtures shared by the appliance's tests: a real S3 API server for the backups shipped to an S3-compatible store
(boto3, moto and the hub's CLI imported only by the tests that use them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.appliance import free_port

S3_BUCKET = "qms-backups-test"
S3_TENANT, S3_BRANCH = "acme", "jkt-sudirman"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API server (moto's, over HTTP) on a free port with one bucket, S3_BUCKET; its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "qms-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "qms-test-secret")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        httpx.post(f"{endpoint}/moto-api/reset", timeout=10)  # moto's store is per process, not per server
        server.stop()


def s3_shipping_env(tmp_path: Path, endpoint: str, bucket: str = S3_BUCKET) -> dict[str, str]:
    """An appliance's settings shipping sealed backups to that server (the hub's key pair made under tmp_path/hub)."""
    from typer.testing import CliRunner

    from cloud.cli import app as cloud_app

    key = tmp_path / "hub" / "backup.key"
    if not key.exists():
        made = CliRunner().invoke(cloud_app, ["backups", "keygen", "--key", str(key)])
        assert made.exit_code == 0, made.output
    return {
        "QMS_TENANT": S3_TENANT, "QMS_BRANCH": S3_BRANCH, "QMS_BACKUP_DIR": str(tmp_path / "backups"),
        "QMS_BACKUP_RECIPIENT": str(key.with_suffix(".pub")), "QMS_BACKUP_MAX_AGE_DAYS": "7",
        "QMS_BACKUP_S3_BUCKET": bucket, "QMS_BACKUP_S3_ENDPOINT": endpoint, "QMS_BACKUP_S3_PREFIX": "branches",
        "QMS_BACKUP_S3_ACCESS_KEY": "qms-test", "QMS_BACKUP_S3_SECRET_KEY": "qms-test-secret",
    }  # fmt: skip
