"""Release bundles and their Ed25519 signature (the hub signs, appliances verify with edge.updates.verify_bundle).

A bundle is a directory: the wheels, `manifest.json` (format, version, each file's name, size and SHA-256 — the
exact bytes are what is signed) and `manifest.sig` (base64). The hub's release key is a PEM file kept beside the
NATS keys; appliances get its public half (`release.pub`) with their image or provisioning."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORMAT = "qms-release"
KEY_ENV = "QMS_RELEASE_KEY"  # the hub's release signing key (PEM); `qms-cloud release` creates it on first use


def key_path() -> Path | None:
    """Where the hub keeps its release key (QMS_RELEASE_KEY); None when unset."""
    value = os.environ.get(KEY_ENV, "")
    return Path(value) if value else None


def release_public_pem() -> str | None:
    """The public half of the hub's release key for appliances (enrolment), None when the hub has none yet."""
    path = key_path()
    if path is None or not path.is_file():
        return None
    return public_pem(load_or_create_key(path)).decode()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The hub's release signing key (created 0600 on first use)."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """What appliances keep to verify releases."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_bundle(wheels: list[Path], version: str, out: Path, key: Ed25519PrivateKey) -> Path:
    """Copy the wheels into `out`, write the manifest and sign it."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for wheel in sorted(wheels):
        target = out / wheel.name
        shutil.copyfile(wheel, target)
        files.append({"name": wheel.name, "size": target.stat().st_size, "sha256": _sha256(target)})
    manifest = {"format": FORMAT, "version": version, "created_at": datetime.now(UTC).isoformat(), "files": files}
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (out / "manifest.json").write_bytes(raw)
    (out / "manifest.sig").write_bytes(base64.b64encode(key.sign(raw)) + b"\n")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
