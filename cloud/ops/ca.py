"""The hub's private certificate authority for appliances (issue 16, E-PLAT-02).

Kiosks, boards and launchers on a branch LAN talk HTTPS to the appliance, and the appliance talks TLS to NATS; both
need a certificate a LAN device can check without the public web PKI (an appliance has no public name). The hub keeps
one small CA (an ECDSA P-256 key, `ca.key` 0600, and its self-signed `ca.crt`) and signs each appliance's key from a
certificate signing request: the hub, not the CSR, decides the names (SANs = the appliance's mDNS name and LAN
address), the certificate is short-lived (90 days) and valid for server and client auth (mutual TLS to NATS), and an
appliance renews it when less than 30 days remain (`needs_renewal`), through `renew_certificate` with a CSR signed by
its branch NKey, and keeps serving while it swaps the certificate in. Devices pin this CA only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.engine import Engine

CA_CERT, CA_KEY = "ca.crt", "ca.key"
CERT_DAYS = 90
CA_YEARS = 10
RENEW_BEFORE = timedelta(days=30)


class CsrRefused(ValueError):
    """The request is not a valid, self-signed CSR with a key we accept."""


@dataclass(frozen=True)
class Authority:
    """The CA's certificate and key, loaded."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> str:
        """The CA certificate devices pin."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def init_ca(directory: Path, name: str = "QMS hub private CA", now: datetime | None = None) -> Authority:
    """Create the CA in `directory` (refuses to overwrite one: every issued certificate hangs on it)."""
    now = now or datetime.now(UTC)
    if (directory / CA_KEY).exists():
        raise FileExistsError(f"{directory / CA_KEY} exists: the CA is already there")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / CA_KEY
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key)


def load_ca(directory: Path) -> Authority:
    """The CA kept in `directory`."""
    cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an EC key")
    return Authority(cert, key)


def issue(
    ca: Authority,
    csr_pem: str | bytes,
    *,
    dns_names: list[str],
    addresses: list[str],
    days: int = CERT_DAYS,
    now: datetime | None = None,
) -> str:
    """Sign an appliance's CSR: its key, our names (the CSR's own SANs are ignored), server + client auth; returns the
    certificate followed by the CA's (PEM)."""
    now = now or datetime.now(UTC)
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
    except ValueError as exc:
        raise CsrRefused(f"not a PEM certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CsrRefused("the request's signature does not match its key")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) and getattr(public, "key_size", 0) < 2048:  # noqa: PLR2004
        raise CsrRefused("the request's key is too weak (EC or RSA >= 2048 bits)")
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    if not names:
        raise CsrRefused("a certificate needs at least one name or address")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns_names or addresses)[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    # The full chain (leaf, then the CA): a browser pinned to the CA's key finds it in what the server presents.
    return (cert.public_bytes(serialization.Encoding.PEM) + ca.cert.public_bytes(serialization.Encoding.PEM)).decode()


def needs_renewal(cert_pem: str | bytes, now: datetime | None = None, before: timedelta = RENEW_BEFORE) -> bool:
    """True when the certificate ends within `before` (or already has)."""
    now = now or datetime.now(UTC)
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    return cert.not_valid_after_utc - now <= before


CA_DIR_ENV = "QMS_HUB_CA_DIR"
MAX_ADDRESSES = 4


def enrolment_certificate(tenant: str, branch_id: str, csr_pem: str | None, addresses: list[str]) -> dict[str, str]:
    """What `POST /api/v1/enrol` adds for an appliance that sent a CSR, when the hub has a CA (QMS_HUB_CA_DIR): its
    certificate for `qms-<branch>.local` (its mDNS name, decided here) and the private LAN addresses it reported,
    and the CA's certificate. Empty when either is missing or the request is unusable: enrolment goes on without TLS
    (the technician can issue one later with `qms-cloud ca issue`)."""
    ca_dir = os.environ.get(CA_DIR_ENV, "")
    if not csr_pem or not ca_dir or not (Path(ca_dir) / CA_KEY).is_file():
        return {}
    lan: list[str] = []
    for raw in addresses[:MAX_ADDRESSES]:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            continue
        if address.is_private and str(address) not in lan:  # loopback and RFC 1918 / ULA only: a LAN name
            lan.append(str(address))
    authority = load_ca(Path(ca_dir))
    try:
        cert = issue(authority, csr_pem[:8192], dns_names=[f"qms-{branch_id}.local"], addresses=lan)
    except CsrRefused:
        return {}
    del tenant  # the name is per branch; the tenant is implied by the code that was spent
    return {"tls_cert": cert, "tls_ca": authority.cert_pem}


RENEW_SKEW_SECONDS = 600


class RenewalRefused(Exception):
    """A renewal the hub will not sign; `status` is the HTTP answer (400, 403, 503)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def renew_certificate(engine: Engine, request: str, signature: str, now: float | None = None) -> dict[str, str]:
    """`POST /api/v1/tls/renew`: an enrolled appliance's new CSR, in a JSON request (tenant, branch_id, csr, addresses,
    timestamp) signed with its branch NKey (edge/tls.py). The hub signs it for the same names enrolment gives
    (`qms-<branch>.local` and the private LAN addresses reported) and answers {tls_cert, tls_ca}."""
    from cloud.ops.backup_store import branch_signed

    try:
        body = json.loads(request)
        tenant, branch_id, csr = str(body["tenant"]), str(body["branch_id"]), str(body["csr"])
        addresses = [str(a) for a in body.get("addresses") or []]
        stamp = float(body["timestamp"])
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RenewalRefused(400, f"malformed renewal request: {exc}") from None
    if not math.isfinite(stamp) or abs((now or time.time()) - stamp) > RENEW_SKEW_SECONDS:  # NaN compares false
        raise RenewalRefused(403, "the request's time is too far from the hub's clock (check the appliance's clock)")
    if not branch_signed(engine, tenant, branch_id, raw_signature, request.encode()):
        raise RenewalRefused(403, "the signature does not match this branch's key")
    ca_dir = os.environ.get(CA_DIR_ENV, "")
    if not ca_dir or not (Path(ca_dir) / CA_KEY).is_file():
        raise RenewalRefused(503, f"this hub has no CA ({CA_DIR_ENV})")
    issued = enrolment_certificate(tenant, branch_id, csr, addresses)
    if not issued:
        raise RenewalRefused(400, "the certificate request is not usable (a PEM CSR signed by its own key)")
    return issued
