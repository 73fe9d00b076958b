"""The display board in Debian's Chromium over HTTPS with the hub CA's certificate (issue 16): the browser trusts only
that CA (`--ignore-certificate-errors-spki-list` with the CA key's SPKI hash; the appliance presents its full chain),
the board loads and its live stream connects; a browser pinned to another CA refuses the page."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from cloud.ops import ca as hub_ca
from edge import tls
from edge.auth import load_secret
from edge.web.board.access import Scope, board_path
from tests.support.appliance import free_port, qms_edge_command, seed_demo
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow
SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def spki_hash(cert: x509.Certificate) -> str:
    """Chromium's pin: base64 of the SHA-256 of the key's SubjectPublicKeyInfo."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, x509.Certificate, Path]]:
    """(https base URL, the CA certificate, the data dir) of a `qms-edge serve` with an issued certificate."""
    root = tmp_path_factory.mktemp("https-board")
    authority = hub_ca.init_ca(root / "ca")
    data = root / "qms"
    seed_demo(data, users=[])
    key, csr = tls.new_key_and_csr("qms-jkt-sudirman.local")
    tls.keep_key(data, key)
    cert = hub_ca.issue(authority, csr, dns_names=["qms-jkt-sudirman.local"], addresses=["127.0.0.1"])
    (data / tls.TLS_DIR / tls.CERT_FILE).write_text(cert)
    port = free_port()
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*qms_edge_command(), "serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "QMS_MDNS": "0"},
    )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    context = tls.client_context(root / "ca" / hub_ca.CA_CERT)
    deadline = time.monotonic() + 90  # the hub's start: ~3 s idle, 30+ s on a loaded 2-core box
    try:
        while True:
            assert proc.poll() is None, (root / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/v1/health", verify=context, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (root / "serve.log").read_text()
                time.sleep(0.1)  # polling the server's start, bounded by the deadline
        yield base, authority.cert, data
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_the_board_over_https_pinned_to_the_hub_ca(served: tuple[str, x509.Certificate, Path]) -> None:
    base, ca_cert, data = served
    url = base + board_path(load_secret(data), "jkt-sudirman", Scope("service", "teller"))
    other = x509.load_pem_x509_certificate(trustme.CA().cert_pem.bytes())
    with sync_playwright() as p:
        for pin, works in ((spki_hash(ca_cert), True), (spki_hash(other), False)):
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"]
            )
            try:
                page = browser.new_context(
                    ignore_https_errors=False, viewport={"width": 1920, "height": 1080}
                ).new_page()
                if works:
                    page.goto(url)
                    page.wait_for_function("document.body.dataset.online === '1'", timeout=15_000)  # stream live
                    expect(page.locator("#now-number")).to_be_visible()
                    assert page.evaluate("location.protocol") == "https:"
                    page.screenshot(path=str(SHOTS / "board-https.png"))
                else:
                    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                        page.goto(url)
            finally:
                browser.close()
