"""`qms-edge tls csr` / `tls install`: the hand-signed way out of an expired certificate. The CSR is for a new EC
P-256 key kept beside the live pair; the certificate HQ signs for it (`qms-cloud ca issue`) replaces both; a
certificate for another key is refused and changes nothing."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

from cloud.ops.ca import init_ca, issue
from edge.cli import app
from edge.tls import new_key_and_csr
from tests.support.appliance import seed_demo


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_a_csr_signed_by_hq_is_installed_with_its_key(tmp_path: Path) -> None:
    data = tmp_path / "qms"
    seed_demo(data)
    tls = data / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    (tls / "appliance.key").write_bytes(b"the live key")
    (tls / "appliance.crt").write_bytes(b"the live, expired certificate")
    made = cli("tls", "csr", "--data-dir", str(data))
    assert made.exit_code == 0, made.output
    assert "qms-jkt-sudirman.local" in made.output
    csr = x509.load_pem_x509_csr((tls / "appliance.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "qms-jkt-sudirman.local"
    key = serialization.load_pem_private_key((tls / "appliance.key.new").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert stat.S_IMODE((tls / "appliance.key.new").stat().st_mode) == 0o600
    assert (tls / "appliance.key").read_bytes() == b"the live key"  # untouched until the certificate is installed

    authority = init_ca(tmp_path / "ca")
    _, other_csr = new_key_and_csr("qms-jkt-sudirman.local")
    stranger = tmp_path / "other.crt"
    stranger.write_text(issue(authority, other_csr, dns_names=["qms-jkt-sudirman.local"], addresses=[]))
    refused = cli("tls", "install", str(stranger), "--data-dir", str(data))
    assert refused.exit_code == 1
    assert "not installed" in refused.output
    assert (tls / "appliance.crt").read_bytes() == b"the live, expired certificate"

    signed = tmp_path / "appliance.crt"
    signed.write_text(issue(authority, (tls / "appliance.csr").read_bytes(), dns_names=["qms-jkt-sudirman.local"],
                            addresses=["192.168.1.10"]))  # fmt: skip
    done = cli("tls", "install", str(signed), "--data-dir", str(data))
    assert done.exit_code == 0, done.output
    installed = x509.load_pem_x509_certificate((tls / "appliance.crt").read_bytes())
    live = serialization.load_pem_private_key((tls / "appliance.key").read_bytes(), password=None)
    assert installed.public_key() == live.public_key() == key.public_key()
    assert not (tls / "appliance.key.new").exists()
    assert not (tls / "appliance.csr").exists()
    assert stat.S_IMODE((tls / "appliance.key").stat().st_mode) == 0o600
