"""The kiosk and board browser suites over HTTPS as well as HTTP (issue 16): a test CA (trustme) stands in for the hub's
private CA and issues the appliance's LAN certificate for its mDNS name (and 127.0.0.1, for the tests' own API calls);
Chromium trusts that CA for real — a throwaway NSS database in the HOME it is started with (`certutil`, Debian's
libnss3-tools), no `--ignore-certificate-errors` — and resolves the mDNS name to 127.0.0.1.

Tests take the `scheme` fixture ("http"); `@pytest.mark.parametrize("scheme", ["http", "https"])` runs one twice,
and the rig and appliance fixtures then serve HTTPS with the test CA's certificate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from edge import tls
from tests.support.appliance import RunningAppliance
from tests.support.browser import CHROMIUM_ARGS

HOST = "qms-jkt-sudirman.local"  # the appliance's mDNS name, on its certificate
OTHER_HOST = "qms-bdg-dago.local"  # another appliance's name: resolves here too, but is not on the certificate


@dataclass(frozen=True)
class LanCA:
    """A test CA and a HOME whose NSS database trusts it (Chromium's trust store on Linux)."""

    ca: trustme.CA
    ca_file: Path
    home: Path

    def serve_https(self, data_dir: Path) -> None:
        """Give the appliance a certificate for its mDNS name and 127.0.0.1, where enrolment would put it."""
        cert = self.ca.issue_cert(HOST, "127.0.0.1")
        folder = data_dir / tls.TLS_DIR
        tls.keep_key(data_dir, cert.private_key_pem.bytes())
        (folder / tls.CERT_FILE).write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        (folder / tls.CA_FILE).write_bytes(self.ca.cert_pem.bytes())


def trusting_home(root: Path, ca_pem: bytes) -> Path:
    """A HOME with `~/.pki/nssdb` trusting `ca_pem` to identify web sites, and nothing else added."""
    db = root / ".pki" / "nssdb"
    db.mkdir(parents=True)
    (root / "ca.pem").write_bytes(ca_pem)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "qms-test-ca", "-i", str(root / "ca.pem")],
                   check=True, capture_output=True)  # fmt: skip
    return root


@pytest.fixture(scope="session")
def lan_ca(tmp_path_factory: pytest.TempPathFactory) -> LanCA:
    """The session's test CA and a Chromium HOME trusting it."""
    if shutil.which("certutil") is None:
        pytest.fail("certutil is missing: run `make system-deps` (Debian's libnss3-tools)")
    ca = trustme.CA(organization_name="QMS test hub CA")
    root = tmp_path_factory.mktemp("lan-ca")
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return LanCA(ca, root / "ca.pem", trusting_home(root / "home", ca.cert_pem.bytes()))


def chromium_options(home: Path) -> dict[str, Any]:
    """`chromium.launch` options: Debian's settings, the trust store in `home`, the mDNS names resolving locally."""
    rules = f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP {OTHER_HOST} 127.0.0.1"
    return {"args": [*CHROMIUM_ARGS, rules], "env": {**os.environ, "HOME": str(home)}}


@pytest.fixture
def scheme() -> str:
    """Plain HTTP unless a test is parametrised over ("http", "https")."""
    return "http"


def https_ca(scheme: str, lan_ca: LanCA, monkeypatch: pytest.MonkeyPatch) -> LanCA | None:
    """For "https": the CA whose certificate the appliance is to serve (`LanCA.serve_https`; `qms-edge serve` then
    speaks HTTPS only), and this process's httpx calls trust it (SSL_CERT_FILE, which httpx honours). None: HTTP."""
    if scheme != "https":
        return None
    monkeypatch.setenv("SSL_CERT_FILE", str(lan_ca.ca_file))
    return lan_ca


def page_base(appliance: RunningAppliance) -> str:
    """Where a browser opens the appliance: over HTTPS by its mDNS name (the name on its certificate)."""
    if appliance.base_url.startswith("https://"):
        return appliance.base_url.replace("127.0.0.1", HOST, 1)
    return appliance.base_url


SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page: Any, name: str) -> None:
    """docs/screenshots/NAME.png when QMS_SCREENSHOTS=1 (kept out of ordinary runs: the pictures change each time)."""
    if os.environ.get("QMS_SCREENSHOTS") == "1":
        page.screenshot(path=str(SHOTS / f"{name}.png"))
