"""The appliance's TLS identity (issue 16, E-PLAT-02): its own key, a CSR for the hub's private CA (cloud/ops/ca.py),
and the files `qms-edge serve` uses for HTTPS.

The key never leaves the appliance: enrolment sends a certificate signing request and gets back a certificate for the
appliance's mDNS name and LAN address, which it keeps under `<data>/tls/` with the CA's certificate (what kiosks,
boards and the NATS link check against). `QMS_TLS_CERT`/`QMS_TLS_KEY` point elsewhere when a technician installs
files by hand. With no certificate the appliance serves plain HTTP, as before enrolment.
"""

from __future__ import annotations

import os
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.store.datadir import write_private

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
