"""Enrolment delivers the LAN certificate: `qms-edge enrol` sends a CSR (its key stays on the appliance) to the hub's
real `POST /api/v1/enrol`; a hub with a CA (QMS_HUB_CA_DIR) signs it for `qms-<branch>.local` and the appliance's LAN
address, and the appliance keeps certificate, CA and key under `<data>/tls/` (0600) — what `qms-edge serve` then uses
for HTTPS. A hub without a CA enrols the same way, without TLS files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cloud.ops import ca as hub_ca
from edge import enrol, tls
from tests.images.conftest import running_hub


def test_enrolment_brings_a_certificate_for_the_appliances_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = hub_ca.init_ca(tmp_path / "ca")
    monkeypatch.setenv(hub_ca.CA_DIR_ENV, str(tmp_path / "ca"))
    data = tmp_path / "qms"
    with running_hub(tmp_path) as (url, code, _store):
        enrol.enrol(data, url, code)
    assert tls.server_files(data, env={}) == (data / "tls" / tls.CERT_FILE, data / "tls" / tls.KEY_FILE)
    cert = x509.load_pem_x509_certificate((data / "tls" / tls.CERT_FILE).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["qms-jkt-sudirman.local"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]  # the route to the hub
    assert cert.issuer == authority.cert.subject
    key = serialization.load_pem_private_key((data / "tls" / tls.KEY_FILE).read_bytes(), password=None)
    assert key.public_key() == cert.public_key()  # signed for the key made on the appliance
    assert (data / "tls" / tls.CA_FILE).read_text() == authority.cert_pem
    for name in (tls.KEY_FILE, tls.CERT_FILE):
        assert stat.S_IMODE((data / "tls" / name).stat().st_mode) == 0o600


def test_a_hub_without_a_ca_enrols_without_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hub_ca.CA_DIR_ENV, raising=False)
    data = tmp_path / "qms"
    with running_hub(tmp_path) as (url, code, _store):
        enrol.enrol(data, url, code)
    assert (data / "cloud.env").is_file()
    assert tls.server_files(data, env={}) is None
    assert not (data / "tls").exists()
