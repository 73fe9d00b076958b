"""The appliance's TLS identity (issue 16, E-PLAT-02): its own key, a CSR for the hub's private CA (cloud/ops/ca.py),
and the files `qms-edge serve` uses for HTTPS.

The key never leaves the appliance: enrolment sends a certificate signing request and gets back a certificate for the
appliance's mDNS name and LAN address, which it keeps under `<data>/tls/` with the CA's certificate (what kiosks,
boards and the NATS link check against). `QMS_TLS_CERT`/`QMS_TLS_KEY` point elsewhere when a technician installs
files by hand. With no certificate the appliance serves plain HTTP, as before enrolment. A certificate from enrolment
is renewed through the hub 30 days before it ends (`Renewer`, a thread of `qms-edge serve`) and swapped into the live
TLS context: nothing restarts, no connection drops.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.store.datadir import write_private

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE, KEY_FILE, CA_FILE = "appliance.crt", "appliance.key", "hub-ca.crt"
CERT_ENV, KEY_ENV = "QMS_TLS_CERT", "QMS_TLS_KEY"
RENEW_BEFORE = timedelta(days=30)


def new_key_and_csr(name: str) -> tuple[bytes, str]:
    """A fresh key for the appliance (PEM, kept by `keep_key` once the hub signed it) and a CSR for it (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def keep_key(data_dir: Path, key_pem: bytes) -> Path:
    """Store the appliance's key (0600 under `<data>/tls/`, a 0700 directory)."""
    (data_dir / TLS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / TLS_DIR / KEY_FILE
    write_private(path, key_pem)
    return path


PENDING_KEY, CSR_FILE = "appliance.key.new", "appliance.csr"


def write_csr(data_dir: Path, name: str) -> tuple[Path, Path]:
    """`qms-edge tls csr`: a new P-256 key beside the live one (`<data>/tls/appliance.key.new`, 0600: the serving
    pair stays as it is until the signed certificate is installed) and its CSR (`<data>/tls/appliance.csr`)."""
    folder = data_dir / TLS_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem, csr = new_key_and_csr(name)
    write_private(folder / PENDING_KEY, key_pem)
    write_private(folder / CSR_FILE, csr.encode())
    return folder / PENDING_KEY, folder / CSR_FILE


def install_certificate(data_dir: Path, cert_pem: bytes) -> Path:
    """`qms-edge tls install`: a certificate signed by hand for the key of `write_csr` (which then replaces the live
    key) or for the live key; any other certificate is refused (ValueError) and nothing changes."""
    folder = data_dir / TLS_DIR
    x509.load_pem_x509_certificate(cert_pem)  # ValueError: not a PEM certificate
    pending, live = folder / PENDING_KEY, folder / KEY_FILE
    for key in (pending, live):
        if key.is_file() and _certificate_matches(cert_pem, key.read_bytes()):
            if key == pending:  # the key first, then the certificate (as renew does)
                write_private(live, pending.read_bytes())
            write_private(folder / CERT_FILE, cert_pem)
            if key == pending:
                pending.unlink()
                (folder / CSR_FILE).unlink(missing_ok=True)
            return folder / CERT_FILE
    raise ValueError(f"the certificate is not for the key of `qms-edge tls csr` ({pending}) nor for {live}")


def lan_address(hub_url: str) -> str | None:
    """The address this appliance reaches the hub from (its LAN address for the certificate); None if unknown.
    A UDP "connect" sends nothing: it only asks the kernel for the route's source address."""
    host = urlparse(hub_url).hostname
    if not host:
        return None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def server_files(data_dir: Path, env: dict[str, str] | None = None) -> tuple[Path, Path] | None:
    """(certificate, key) for HTTPS: QMS_TLS_CERT/QMS_TLS_KEY, else what enrolment stored; None: plain HTTP."""
    env = dict(os.environ) if env is None else env
    if env.get(CERT_ENV) and env.get(KEY_ENV):
        return Path(env[CERT_ENV]), Path(env[KEY_ENV])
    cert, key = data_dir / TLS_DIR / CERT_FILE, data_dir / TLS_DIR / KEY_FILE
    return (cert, key) if cert.is_file() and key.is_file() else None


def needs_renewal(cert_path: Path, now: datetime | None = None) -> bool:
    """True when the certificate ends within 30 days (time to ask the hub for a new one)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - (now or datetime.now(UTC)) <= RENEW_BEFORE


def client_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A TLS client context that trusts only the hub's CA (host names checked), with the appliance's certificate
    for mutual TLS when given (the NATS link)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


# ---- automatic renewal ---------------------------------------------------------------------------------------------

RENEW_CHECK_ENV = "QMS_TLS_RENEW_CHECK_SECONDS"
RENEW_CHECK_SECONDS = 12 * 3600.0
RENEW_RETRY_SECONDS = 600.0
RENEWAL_STATUS = "renewal.json"


class RenewalFailed(Exception):
    """The hub did not renew the certificate; the message says why."""


def _certificate_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    return cert.public_key() == key.public_key()


def renew(
    data_dir: Path,
    hub: str,
    tenant: str,
    branch_id: str,
    seed: bytes,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> bool:
    """When `<data>/tls/appliance.crt` ends within 30 days: a new key and CSR, signed with the branch NKey, sent to
    the hub (`POST /api/v1/tls/renew`); the new key and certificate replace the old ones. True when renewed."""
    import nkeys

    folder = data_dir / TLS_DIR
    if not needs_renewal(folder / CERT_FILE, now):
        return False
    key_pem, csr = new_key_and_csr(f"qms-{branch_id}.local")
    request = json.dumps({"tenant": tenant, "branch_id": branch_id, "csr": csr,
                          "addresses": [a for a in [lan_address(hub)] if a], "timestamp": time.time()})  # fmt: skip
    keypair = nkeys.from_seed(bytearray(seed))
    try:
        signature = base64.b64encode(keypair.sign(request.encode())).decode()
    finally:
        keypair.wipe()
    owned = client is None
    client = client or httpx.Client(timeout=30)
    try:
        answer = client.post(f"{hub.rstrip('/')}/api/v1/tls/renew", json={"request": request, "signature": signature})
    except httpx.HTTPError as exc:
        raise RenewalFailed(f"cannot reach the hub at {hub}: {exc}") from None
    finally:
        if owned:
            client.close()
    if answer.status_code != 200:  # noqa: PLR2004
        raise RenewalFailed(f"the hub refused the renewal: {answer.status_code} {answer.text[:200]}")
    body = answer.json()
    cert_pem = str(body.get("tls_cert", "")).encode()
    if not cert_pem or not _certificate_matches(cert_pem, key_pem):
        raise RenewalFailed("the hub's certificate is not for the key this appliance sent")
    # The key first, then the certificate: each file is replaced whole; the pair is consistent again a moment later.
    write_private(folder / KEY_FILE, key_pem)
    write_private(folder / CERT_FILE, cert_pem)
    if body.get("tls_ca"):
        write_private(folder / CA_FILE, str(body["tls_ca"]).encode())
    return True


class Renewer:
    """The thread `qms-edge serve` runs beside an HTTPS appliance: checks the certificate every 12 h (retries every
    10 min after a failure) and, once renewed, hands the new files to `reload` — the live TLS context loads them, so
    new connections get the new certificate and open ones (boards' event streams, counters) are not dropped."""

    def __init__(self, data_dir: Path, hub: str, tenant: str, branch_id: str, seed_file: Path,
                 reload: Callable[[Path, Path], None], every: float = RENEW_CHECK_SECONDS) -> None:  # fmt: skip
        """Not started yet."""
        self.data_dir, self.hub, self.tenant, self.branch_id = data_dir, hub, tenant, branch_id
        self.seed_file, self.reload, self.every = seed_file, reload, every
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qms-tls-renew", daemon=True)

    def start(self) -> Renewer:
        """Start checking (the first check at once)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current check."""
        self._stop.set()
        self._thread.join(timeout)

    def check(self) -> bool:
        """One check; renewed and reloaded → True. Failures are recorded in `<data>/tls/renewal.json`."""
        folder = self.data_dir / TLS_DIR
        status: dict[str, object] = {"checked_at": time.time()}
        self.last_error = None
        try:
            renewed = renew(self.data_dir, self.hub, self.tenant, self.branch_id, self.seed_file.read_bytes().strip())
            if renewed:
                self.reload(folder / CERT_FILE, folder / KEY_FILE)
                status["renewed_at"] = time.time()
                log.info("LAN certificate renewed by the hub and loaded")
        except (RenewalFailed, OSError, ValueError, ssl.SSLError) as exc:
            status["error"] = self.last_error = str(exc)
            log.warning("certificate renewal failed, will retry: %s", exc)
            renewed = False
        write_private(folder / RENEWAL_STATUS, json.dumps(status).encode())
        return renewed

    def _loop(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            self.check()
            delay = min(self.every, RENEW_RETRY_SECONDS) if self.last_error else self.every


def start_renewer(
    data_dir: Path, reload: Callable[[Path, Path], None], env: dict[str, str] | None = None
) -> Renewer | None:
    """For `qms-edge serve`: renew the certificate enrolment stored (not one installed by hand with QMS_TLS_CERT)
    through the hub named in cloud.env; None when there is nothing to renew or no hub to ask."""
    env = dict(os.environ) if env is None else env
    hub, tenant, branch, seed = (env.get(k, "") for k in ("QMS_HUB_URL", "QMS_TENANT", "QMS_BRANCH", "QMS_NATS_NKEY"))
    if env.get(CERT_ENV) or not (data_dir / TLS_DIR / CERT_FILE).is_file() or not (hub and tenant and branch and seed):
        return None
    every = float(env.get(RENEW_CHECK_ENV) or RENEW_CHECK_SECONDS)
    return Renewer(data_dir, hub, tenant, branch, Path(seed), reload, every).start()


def live_context_reloader(config: object) -> Callable[[Path, Path], None]:
    """`reload` for a uvicorn server: load renewed files into its TLS context (`config.ssl`, made when it starts),
    which every new handshake uses; connections already open keep theirs."""

    def reload(cert: Path, key: Path) -> None:
        context = getattr(config, "ssl", None)
        if isinstance(context, ssl.SSLContext):
            context.load_cert_chain(str(cert), str(key))

    return reload
