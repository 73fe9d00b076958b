"""`qms-edge update` on an appliance as enrolled: with its LAN certificate the appliance serves HTTPS only, so the
health check after a switch must reach it over HTTPS on loopback (else every update rolls back); a release key that
is not a PEM public key is refused in words, not with a traceback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cloud.ops import ca as hub_ca
from edge import tls, updates
from edge.cli import app
from tests.support.appliance import free_port, qms_edge_command, seed_demo


def test_the_update_health_check_reaches_an_appliance_serving_https(tmp_path: Path) -> None:
    authority = hub_ca.init_ca(tmp_path / "ca")
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    key, csr = tls.new_key_and_csr("qms-jkt-sudirman.local")
    tls.keep_key(data, key)  # signed as the hub signs it: the mDNS name and the LAN address, not 127.0.0.1
    cert = hub_ca.issue(authority, csr, dns_names=["qms-jkt-sudirman.local"], addresses=["192.0.2.10"])
    (data / tls.TLS_DIR / tls.CERT_FILE).write_text(cert)
    port = free_port()
    url = updates.local_health_url(port, data)
    assert url.startswith("https://127.0.0.1:")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*qms_edge_command(), "serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "QMS_MDNS": "0"},
    )  # fmt: skip
    try:
        assert updates.healthy(url, timeout=90, sleep=time.sleep), (tmp_path / "serve.log").read_text()
        with httpx.Client(timeout=2) as plain:  # what the update checked before: plain HTTP gets no answer
            try:
                refused = not plain.get(f"http://127.0.0.1:{port}/api/v1/health").is_success
            except httpx.HTTPError:
                refused = True
        assert refused
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
    assert updates.local_health_url(port, tmp_path / "no-cert").startswith("http://127.0.0.1:")


def test_a_release_key_that_is_not_a_pem_key_is_refused_in_words(tmp_path: Path) -> None:
    bad = tmp_path / "release.pub"
    bad.write_text("not a key\n")
    (tmp_path / "bundle").mkdir()
    done = CliRunner().invoke(app, ["update", "--key", str(bad), "--bundle", str(tmp_path / "bundle"),
                                    "--root", str(tmp_path / "root"), "--data-dir", str(tmp_path / "qms")])  # fmt: skip
    assert done.exit_code == 1
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert "the release key is not a PEM public key" in done.output
