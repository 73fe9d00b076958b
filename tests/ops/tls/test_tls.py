"""TLS (issue 16, E-PLAT-02) with real servers: the hub's private CA (cloud/ops/ca.py) signs an appliance's CSR for its
mDNS name and LAN address; `qms-edge serve` then speaks HTTPS only, trusted through that CA alone — another CA
(trustme) and another host name fail. The NATS link: a nats-server with a `tls { verify: true }` block (trustme certs),
the appliance's link settings connect with its CA and client certificate; without the certificate, or trusting another
CA, they do not."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509

from cloud.ops import ca as hub_ca
from edge import tls
from sync.relay import LinkSettings
from tests.support.appliance import free_port, qms_edge_command, seed_demo
from tests.support.cloud_hub import wait_until
from tests.support.nats_server import NatsServer

MDNS = "cabang-sudirman.qms.lan"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An appliance data dir with a certificate the hub's CA issued from its CSR; (data dir, CA certificate)."""
    root = tmp_path_factory.mktemp("tls")
    authority = hub_ca.init_ca(root / "ca")
    data = root / "qms"
    seed_demo(data, users=[])
    key, csr = tls.new_key_and_csr(MDNS)
    tls.keep_key(data, key)
    cert = hub_ca.issue(authority, csr, dns_names=[MDNS], addresses=["127.0.0.1"])
    (data / tls.TLS_DIR / tls.CERT_FILE).write_text(cert)
    (data / tls.TLS_DIR / tls.CA_FILE).write_text(authority.cert_pem)
    return data, root / "ca" / hub_ca.CA_CERT


@pytest.fixture(scope="module")
def https_appliance(enrolled: tuple[Path, Path]) -> Iterator[int]:
    """`qms-edge serve` on 127.0.0.1 with the issued certificate; its port."""
    data, ca_cert = enrolled
    port = free_port()
    log = (data.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*qms_edge_command(), "serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "QMS_MDNS": "0"},
    )  # fmt: skip
    context = tls.client_context(ca_cert)
    deadline = time.monotonic() + 90  # the hub's start: ~3 s idle, 30+ s on a loaded 2-core box
    try:
        while True:
            assert proc.poll() is None, (data.parent / "serve.log").read_text()
            try:
                if httpx.get(f"https://127.0.0.1:{port}/api/v1/health", verify=context, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (data.parent / "serve.log").read_text()
                time.sleep(0.1)  # polling the server's start, bounded by the deadline
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_the_certificate_names_the_appliance_and_serves_both_directions(enrolled: tuple[Path, Path]) -> None:
    data, _ = enrolled
    cert = x509.load_pem_x509_certificate((data / tls.TLS_DIR / tls.CERT_FILE).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [MDNS]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}  # server + client auth
    assert (data / tls.TLS_DIR / tls.KEY_FILE).stat().st_mode & 0o077 == 0  # the key never left, kept private


def test_https_with_the_hub_ca_and_only_with_it(https_appliance: int, enrolled: tuple[Path, Path]) -> None:
    _, ca_cert = enrolled
    ok = httpx.get(f"https://127.0.0.1:{https_appliance}/api/v1/health", verify=tls.client_context(ca_cert))
    assert ok.status_code == 200
    other = trustme.CA()
    wrong_ca = ssl.create_default_context()
    other.configure_trust(wrong_ca)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{https_appliance}/api/v1/health", verify=wrong_ca)
    with pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
        httpx.get(f"https://localhost:{https_appliance}/api/v1/health", verify=tls.client_context(ca_cert))
    with pytest.raises(httpx.HTTPError):  # no plain HTTP beside it
        httpx.get(f"http://127.0.0.1:{https_appliance}/api/v1/health", timeout=3)


def test_the_ca_refuses_a_forged_request_and_renewal_is_due_a_month_ahead(tmp_path: Path) -> None:
    authority = hub_ca.init_ca(tmp_path / "ca", now=NOW)
    with pytest.raises(FileExistsError):
        hub_ca.init_ca(tmp_path / "ca")
    _, csr = tls.new_key_and_csr(MDNS)
    with pytest.raises(hub_ca.CsrRefused):
        hub_ca.issue(authority, csr.replace("A", "B", 1)[:-60] + csr[-60:], dns_names=[MDNS], addresses=[])
    with pytest.raises(hub_ca.CsrRefused):
        hub_ca.issue(authority, "not a csr", dns_names=[MDNS], addresses=[])
    cert = hub_ca.issue(authority, csr, dns_names=[MDNS], addresses=["192.168.1.20"], now=NOW)
    assert not hub_ca.needs_renewal(cert, NOW + timedelta(days=59))
    assert hub_ca.needs_renewal(cert, NOW + timedelta(days=61))
    path = tmp_path / "appliance.crt"
    path.write_text(cert)
    assert tls.needs_renewal(path, NOW + timedelta(days=61))
    assert hub_ca.load_ca(tmp_path / "ca").cert == authority.cert


def _nats_tls(tmp_path: Path, ca: trustme.CA) -> NatsServer:
    server_cert = ca.issue_cert("127.0.0.1", "nats.qms.test")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = (
        "tls {\n"
        f'  cert_file: "{tmp_path / "server.pem"}"\n'
        f'  key_file: "{tmp_path / "server.pem"}"\n'
        f'  ca_file: "{tmp_path / "ca.pem"}"\n'
        "  verify: true\n"
        "  timeout: 5\n"
        "}\n"
    )
    return NatsServer(tmp_path / "nats", config=config).start()


def test_the_nats_link_is_mutual_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = _nats_tls(tmp_path, ca)
    client = ca.issue_cert("cabang-sudirman.qms.lan")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    base = LinkSettings(servers=(f"tls://127.0.0.1:{server.port}",), tenant="acme", branch_id="jkt-sudirman",
                        tls_ca=str(tmp_path / "ca.pem"), tls_cert=str(tmp_path / "client.crt"),
                        tls_key=str(tmp_path / "client.key"), connect_timeout=3)  # fmt: skip

    async def attempt(settings: LinkSettings) -> bool:
        try:
            nc = await settings.connect()
        except Exception:
            return False
        await nc.close()
        return True

    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "other.pem"))
    try:
        assert asyncio.run(attempt(base)) is True
        no_cert = LinkSettings(**{**base.__dict__, "tls_cert": None, "tls_key": None})
        assert asyncio.run(attempt(no_cert)) is False  # verify: true — a client without a certificate is refused
        assert asyncio.run(attempt(LinkSettings(**{**base.__dict__, "tls_ca": str(tmp_path / "other.pem")}))) is False
        wrong_host = LinkSettings(**{**base.__dict__, "servers": (f"tls://localhost:{server.port}",)})
        assert asyncio.run(attempt(wrong_host)) is False  # the server's certificate names 127.0.0.1, not localhost
    finally:
        server.stop()


def test_the_hub_serves_https_and_consumes_over_mutual_tls(tmp_path: Path) -> None:
    """`qms-cloud serve --tls-cert/--tls-key` (uvicorn's TLS) with QMS_CLOUD_NATS_TLS_* to a `verify: true` nats-server:
    the console answers over HTTPS to a client trusting the CA, not to one trusting another, and the consumer runs."""
    ca = trustme.CA()
    server = _nats_tls(tmp_path, ca)
    hub_cert = ca.issue_cert("127.0.0.1", "hub.qms.test")
    hub_cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "hub.pem"))
    consumer = ca.issue_cert("qms-cloud")
    consumer.cert_chain_pems[0].write_to_path(str(tmp_path / "consumer.crt"))
    consumer.private_key_pem.write_to_path(str(tmp_path / "consumer.key"))
    port = free_port()
    env = {**os.environ, "QMS_CLOUD_NATS_TLS_CA": str(tmp_path / "ca.pem"),
           "QMS_CLOUD_NATS_TLS_CERT": str(tmp_path / "consumer.crt"),
           "QMS_CLOUD_NATS_TLS_KEY": str(tmp_path / "consumer.key")}  # fmt: skip
    log = (tmp_path / "hub.log").open("wb")
    hub = subprocess.Popen(
        [sys.executable, "-c", "from cloud.cli import app; app()", "serve", "--db-url",
         f"sqlite:///{tmp_path / 'hub.sqlite3'}", "--nats-url", f"tls://127.0.0.1:{server.port}", "--port", str(port),
         "--tls-cert", str(tmp_path / "hub.pem"), "--tls-key", str(tmp_path / "hub.pem"), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    url = f"https://127.0.0.1:{port}/api/v1/health"

    def consuming() -> bool:
        assert hub.poll() is None, (tmp_path / "hub.log").read_text()
        try:
            return bool(httpx.get(url, verify=trusted, timeout=2).json()["consuming"])
        except httpx.HTTPError:
            return False

    try:
        wait_until(consuming, timeout=40, what="qms-cloud serve over HTTPS, consuming over TLS")
        other = ssl.create_default_context()
        trustme.CA().configure_trust(other)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url, verify=other)
    finally:
        hub.terminate()
        hub.wait(timeout=15)
        log.close()
        server.stop()


def test_qms_cloud_ca_init_and_issue(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cloud.cli import app

    runner = CliRunner()
    made = runner.invoke(app, ["ca", "init", "--ca-dir", str(tmp_path / "ca")])
    assert made.exit_code == 0, made.output
    assert "BEGIN CERTIFICATE" in made.output
    assert runner.invoke(app, ["ca", "init", "--ca-dir", str(tmp_path / "ca")]).exit_code == 1  # never replaced
    (tmp_path / "req.csr").write_text(tls.new_key_and_csr(MDNS)[1])
    issued = runner.invoke(app, ["ca", "issue", str(tmp_path / "req.csr"), "--name", MDNS, "--address",
                                 "192.168.1.20", "--ca-dir", str(tmp_path / "ca")])  # fmt: skip
    assert issued.exit_code == 0, issued.output
    cert = x509.load_pem_x509_certificate(issued.output.encode())
    assert cert.issuer == hub_ca.load_ca(tmp_path / "ca").cert.subject
    (tmp_path / "bad.csr").write_text("junk")
    assert runner.invoke(app, ["ca", "issue", str(tmp_path / "bad.csr"), "--name", MDNS,
                               "--ca-dir", str(tmp_path / "ca")]).exit_code == 1  # fmt: skip
