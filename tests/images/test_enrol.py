"""First-boot enrolment, appliance side (`qms-edge enrol`) against the hub's real `POST /api/v1/enrol` (a hub app served
by uvicorn on a free port): the code is spent once, the branch's NKey seed lands in the data dir (0600), `cloud.env`
carries the link for the systemd unit, and a refused or unreachable hub is one line saying what to do."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edge import enrol
from edge.demo import demo_config
from edge.store.db import connect
from edge.store.projections import current_config
from tests.images.conftest import running_hub
from tests.support.appliance import free_port, run_cli
from tests.support.nats_server import NatsServer


@pytest.fixture
def hub(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[str, str]]:
    """A hub giving appliances the test's NATS server, with a branch and a one-time code: (hub URL, code)."""
    with running_hub(tmp_path, (nats_server.url,)) as (url, code, _store):
        yield url, code


def test_enrol_from_the_boot_partition_file_pairs_once(
    hub: tuple[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    url, code = hub
    card = tmp_path / "qms-enrol.json"
    card.write_text(json.dumps({"hub": url, "code": code}))
    data = tmp_path / "qms"
    out = run_cli("enrol", "--from-file", str(card), "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    assert "enrolled as acme/jkt-sudirman" in out.stdout
    lines = (data / "cloud.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert env == {
        "QMS_HUB_URL": url,
        "QMS_NATS_URL": nats_server.url,
        "QMS_TENANT": "acme",
        "QMS_BRANCH": "jkt-sudirman",
        "QMS_NATS_NKEY": str(data / "nats.nk"),
    }
    assert (data / "nats.nk").read_text() == (tmp_path / "keys" / "acme.jkt-sudirman.nk").read_text().strip() + "\n"
    for name in ("cloud.env", "nats.nk"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    again = run_cli("enrol", "--hub", url, "--code", code, "--data-dir", str(tmp_path / "other"))
    assert again.returncode == 1
    assert "unknown, already used or expired — ask HQ for a new one" in again.stderr
    assert not (tmp_path / "other" / "cloud.env").exists()


def test_an_unreachable_hub_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    out = run_cli("enrol", "--hub", f"http://127.0.0.1:{free_port()}", "--code", "AAAA", "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert "cannot reach the hub" in out.stderr
    assert not (tmp_path / "cloud.env").exists()


def test_the_hubs_configuration_becomes_the_branchs_first(tmp_path: Path) -> None:
    doc = msgspec.to_builtins(demo_config())
    body = {"tenant": "acme", "branch_id": "jkt-sudirman", "nats_seed": "SUAxxx", "config": doc, "tls_cert": "PEM"}
    done = enrol.apply(tmp_path, "https://hub.example", body)
    assert done.config_version == 1
    conn = connect(tmp_path / "qms.sqlite3", readonly=True)
    try:
        config = current_config(conn)
    finally:
        conn.close()
    assert config is not None
    assert config.branch_id == "jkt-sudirman"
    assert (tmp_path / "tls" / "appliance.crt").read_text() == "PEM"
