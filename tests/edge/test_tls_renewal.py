"""Automatic renewal of the appliance's LAN certificate (issue 16, E-PLAT-02) against a real hub with a CA: a
certificate 10 days from its end is renewed through `POST /api/v1/tls/renew` (a new key, a CSR signed with the branch
NKey), swapped into the serving appliance's live TLS context — new connections get the new certificate while an
event stream opened before keeps streaming — and is not renewed again; another branch's key is refused."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509

from cloud.ops import ca as hub_ca
from edge import tls
from edge.web.app import Settings, create_app
from tests.images.conftest import running_hub
from tests.support.appliance import free_port, mint_token, seed_demo
from tests.support.cloud_hub import wait_until

BRANCH_SEED = ("keys", "acme.jkt-sudirman.nk")


@pytest.fixture
def appliance_with_a_due_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A data dir whose certificate (the hub CA's) ends in 10 days, and a hub with that CA: (data dir, hub URL)."""
    authority = hub_ca.init_ca(tmp_path / "ca")
    monkeypatch.setenv(hub_ca.CA_DIR_ENV, str(tmp_path / "ca"))
    data = tmp_path / "qms"
    seed_demo(data)
    key, csr = tls.new_key_and_csr("qms-jkt-sudirman.local")
    tls.keep_key(data, key)
    cert = hub_ca.issue(authority, csr, dns_names=["qms-jkt-sudirman.local"], addresses=["127.0.0.1"], days=10)
    (data / tls.TLS_DIR / tls.CERT_FILE).write_text(cert)
    (data / tls.TLS_DIR / tls.CA_FILE).write_text(authority.cert_pem)
    with running_hub(tmp_path) as (url, _code, _store):
        yield data, url


def served_certificate(port: int, context: ssl.SSLContext) -> x509.Certificate:
    """The certificate a new TLS connection is given."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as conn:  # fmt: skip
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_renewal_swaps_the_certificate_without_dropping_an_open_stream(
    appliance_with_a_due_certificate: tuple[Path, str], tmp_path: Path
) -> None:
    data, hub = appliance_with_a_due_certificate
    folder = data / tls.TLS_DIR
    old = x509.load_pem_x509_certificate((folder / tls.CERT_FILE).read_bytes())
    port = free_port()
    cert, key = str(folder / tls.CERT_FILE), str(folder / tls.KEY_FILE)
    config = uvicorn.Config(create_app(Settings(data_dir=data)), host="127.0.0.1", port=port, log_level="warning",
                            ssl_certfile=cert, ssl_keyfile=key)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=60, what="appliance serving HTTPS")
        context = tls.client_context(folder / tls.CA_FILE)
        assert served_certificate(port, context).serial_number == old.serial_number
        auth = {"Authorization": f"Bearer {mint_token(data, 'admin')}"}
        base = f"https://127.0.0.1:{port}/api/v1"
        with httpx.Client(verify=context, timeout=30) as before, before.stream("GET", f"{base}/events",
                                                                               headers=auth) as events:  # fmt: skip
            assert events.status_code == 200
            renewer = tls.Renewer(data, hub, "acme", "jkt-sudirman", tmp_path.joinpath(*BRANCH_SEED),
                                  tls.live_context_reloader(config))  # fmt: skip
            assert renewer.check(), renewer.last_error
            new = x509.load_pem_x509_certificate((folder / tls.CERT_FILE).read_bytes())
            assert new.serial_number != old.serial_number
            assert new.not_valid_after_utc > old.not_valid_after_utc
            assert served_certificate(port, context).serial_number == new.serial_number  # new handshakes: new cert
            with httpx.Client(verify=context, timeout=30) as after:
                made = after.post(f"{base}/tickets", json={"service_id": "teller"}, headers=auth)
            assert made.status_code == 201, made.text
            ticket = made.json()["ticket_id"]
            for line in events.iter_lines():  # the stream opened under the old certificate still delivers
                if ticket in line:
                    break
        assert not renewer.check()  # 90 days left: nothing to do
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_another_branchs_key_is_refused(appliance_with_a_due_certificate: tuple[Path, str], tmp_path: Path) -> None:
    data, hub = appliance_with_a_due_certificate
    before = (data / tls.TLS_DIR / tls.CERT_FILE).read_bytes()
    seed = tmp_path.joinpath(*BRANCH_SEED).read_bytes().strip()
    with pytest.raises(tls.RenewalFailed, match="403"):
        tls.renew(data, hub, "acme", "bdg-dago", seed)  # jkt-sudirman's key asking for bdg-dago
    assert (data / tls.TLS_DIR / tls.CERT_FILE).read_bytes() == before
