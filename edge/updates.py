"""Fleet software updates, appliance side (US-ADMIN-010): verify a signed release, install it beside the running
version, switch between calls, check health, roll back on failure, report the outcome to the hub.

A release bundle is a directory: `manifest.json` (format, version, every file's SHA-256 and size), `manifest.sig`
(Ed25519 over the manifest's exact bytes, base64, made by the hub: cloud/releases/signing.py) and the wheels it
lists. Layout on the appliance: `/opt/qms/venvs/<version>/` per installed version and `/opt/qms/current` -> the
running one (the unit runs `/opt/qms/current/bin/qms-edge serve`).

The steps, each a function so a test drives them with real processes:
1. `verify_bundle` — signature against the hub's release key, then every file's digest (nothing unsigned is used);
2. `install_beside` — a new venv from a copy of the running one (dependencies already present stay, changed ones
   come from the bundle's wheels; no index is contacted), then the release's wheels with `--no-index`;
3. `wait_between_calls` — never switch while a customer is being served: wait until no ticket is `serving`;
4. `switch` — the `current` symlink replaced atomically (rename), then the service restarted;
5. `healthy` — `/api/v1/health` answers within the deadline, else `switch` back, restart, and report `rolled_back`.
The outcome is kept in `<data>/update-status.json` and reported to the hub signed with the branch's NKey.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT = "qms-release"
STATUS_FILE = "update-status.json"
HEALTH_SECONDS = 120.0
SERVING_POLL_SECONDS = 1.0


class UpdateRefused(Exception):
    """The bundle cannot be trusted or installed; the running version stays untouched."""


@dataclass(frozen=True)
class Release:
    """A verified bundle: its version and the wheel files to install."""

    version: str
    directory: Path
    wheels: list[Path]


@dataclass(frozen=True)
class Outcome:
    """What happened, as kept in update-status.json and reported to the hub."""

    version: str  # the version that was offered
    status: str  # "running" (switched and healthy), "rolled_back", "refused"
    running: str  # the version running afterwards
    detail: str
    at: str


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The hub's release key (PEM, SubjectPublicKeyInfo)."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise UpdateRefused("the release key is not a PEM public key (the hub's release.pub)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateRefused("the release key is not an Ed25519 public key")
    return key


def verify_bundle(directory: Path, public_key: Ed25519PublicKey) -> Release:
    """Check the signature over manifest.json, then each listed file's size and SHA-256."""
    try:
        raw = (directory / MANIFEST).read_bytes()
        signature = base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise UpdateRefused(f"incomplete bundle in {directory}: {exc}") from None
    try:
        public_key.verify(signature, raw)
    except InvalidSignature:
        raise UpdateRefused("the bundle's signature does not match the hub's release key") from None
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise UpdateRefused("not a qms release manifest")
    wheels = []
    for entry in manifest["files"]:
        name = str(entry["name"])
        if "/" in name or name.startswith("."):
            raise UpdateRefused(f"unsafe file name in the manifest: {name!r}")
        path = directory / name
        if not path.is_file() or path.stat().st_size != int(entry["size"]) or _sha256(path) != entry["sha256"]:
            raise UpdateRefused(f"{name} does not match the signed manifest")
        wheels.append(path)
    return Release(str(manifest["version"]), directory, wheels)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def install_beside(root: Path, release: Release) -> Path:
    """`<root>/venvs/<version>`: a copy of the running venv, then the release's wheels installed offline."""
    current = (root / "current").resolve()
    target = root / "venvs" / release.version
    if target.resolve() == current:
        raise UpdateRefused(f"version {release.version} is already running")
    staging = target.with_name(f".{release.version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(current, staging, symlinks=True)
    python = staging / "bin" / "python"
    offline = ["--quiet", "--no-index", "--disable-pip-version-check", "--find-links", str(release.directory)]
    cmd = [str(python), "-m", "pip", "install", *offline, "--force-reinstall", "--no-deps", *map(str, release.wheels)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)  # noqa: S603 - fixed argv
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise UpdateRefused(f"installing {release.version} failed: {done.stderr.strip()[-500:]}")
    _rewrite_paths(staging, current, target)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _rewrite_paths(venv: Path, old: Path, new: Path) -> None:
    """A copied venv's scripts name the old venv in their `#!` line and `activate` files: point them at the new one."""
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") or script.name.startswith("activate"):
            fixed = data.replace(str(old).encode(), str(new).encode()).replace(str(venv).encode(), str(new).encode())
            if fixed != data:
                script.write_bytes(fixed)


def someone_is_served(data_dir: Path) -> bool:
    """True while a ticket is being served (or just called) at a counter: the moment an update must not restart."""
    try:
        conn = sqlite3.connect(f"file:{data_dir / 'qms.sqlite3'}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT count(*) FROM tickets WHERE status IN ('called', 'serving')").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return bool(row and row[0])


def wait_between_calls(
    data_dir: Path,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    busy: Callable[[Path], bool] = someone_is_served,
) -> bool:
    """Wait (bounded) until no customer is at a counter; False when the moment never came (try again later)."""
    deadline = time.monotonic() + timeout
    while busy(data_dir):
        if time.monotonic() >= deadline:
            return False
        sleep(SERVING_POLL_SECONDS)
    return True


def switch(root: Path, version_dir: Path) -> Path:
    """Point `<root>/current` at `version_dir` atomically; returns what it pointed at before."""
    link = root / "current"
    previous = link.resolve()
    tmp = root / ".current.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(version_dir, root))
    tmp.replace(link)
    return previous


def local_health_url(port: int, data_dir: Path, env: dict[str, str] | None = None) -> str:
    """The appliance's health URL on loopback: HTTPS when it has a certificate (it then serves HTTPS only)."""
    from edge.tls import server_files

    scheme = "https" if server_files(data_dir, env) else "http"
    return f"{scheme}://127.0.0.1:{port}/api/v1/health"


def healthy(url: str, timeout: float = HEALTH_SECONDS, sleep: Callable[[float], None] = time.sleep) -> bool:
    """`/api/v1/health` answers 2xx within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # A self-probe on loopback: the certificate names the appliance's mDNS name and LAN address, not 127.0.0.1.
            if httpx.get(url, timeout=5, verify=False).is_success:  # noqa: S501  # nosec B501  # nosemgrep
                return True
        except httpx.HTTPError:
            pass
        sleep(0.5)
    return False


def apply_release(
    *,
    bundle: Path,
    public_key: Ed25519PublicKey,
    root: Path,
    data_dir: Path,
    restart: Callable[[], None],
    health_url: str,
    wait_seconds: float = 3600.0,
    health_seconds: float = HEALTH_SECONDS,
) -> Outcome:
    """The whole update; the outcome is written to `<data>/update-status.json` whatever happens."""
    running = (root / "current").resolve().name
    offered = "?"
    try:
        release = verify_bundle(bundle, public_key)
        offered = release.version
        target = install_beside(root, release)
    except UpdateRefused as exc:
        return _record(data_dir, Outcome(offered, "refused", running, str(exc), _now()))
    if not wait_between_calls(data_dir, wait_seconds):
        return _record(data_dir, Outcome(offered, "refused", running, "customers were served throughout", _now()))
    previous = switch(root, target)
    restart()
    if healthy(health_url, health_seconds):
        return _record(data_dir, Outcome(offered, "running", offered, f"switched from {previous.name}", _now()))
    switch(root, previous)
    restart()
    back = healthy(health_url, health_seconds)
    detail = f"{offered} did not answer {health_url} within {health_seconds:.0f} s; rolled back to {previous.name}"
    return _record(
        data_dir, Outcome(offered, "rolled_back", previous.name, detail + ("" if back else " (unhealthy!)"), _now())
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(data_dir: Path, outcome: Outcome) -> Outcome:
    from edge.store.datadir import write_private

    write_private(data_dir / STATUS_FILE, json.dumps(asdict(outcome), indent=2).encode())
    return outcome


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The last update's outcome, or None."""
    try:
        return dict(json.loads((data_dir / STATUS_FILE).read_text()))
    except (OSError, ValueError):
        return None


def signed_report(outcome: Outcome, tenant: str, branch: str, seed: bytes) -> dict[str, Any]:
    """The ack for the hub: the outcome with tenant and branch, signed with the branch's NKey (the hub checks it
    against the public key it issued, so an appliance can report only for its own branch)."""
    import nkeys

    body = json.dumps({**asdict(outcome), "tenant": tenant, "branch_id": branch}, sort_keys=True)
    keypair = nkeys.from_seed(seed)
    signature = base64.b64encode(keypair.sign(body.encode())).decode()
    return {"report": body, "signature": signature}


def report(hub: str, outcome: Outcome, tenant: str, branch: str, seed: bytes) -> None:
    """POST the signed ack to the hub (`/api/v1/releases/report`)."""
    body = signed_report(outcome, tenant, branch, seed)
    response = httpx.post(f"{hub.rstrip('/')}/api/v1/releases/report", json=body, timeout=15)
    response.raise_for_status()


def systemd_restart() -> None:
    """What `restart` is on the appliance: systemd restarts the unit (the new `current` is picked up)."""
    subprocess.run(["/bin/systemctl", "restart", "qms-edge.service"], check=True, timeout=120)


def python_of(root: Path) -> str:
    """The running version's interpreter (for tools that re-exec)."""
    return str(root / "current" / "bin" / "python") if (root / "current").exists() else sys.executable


def fetch_assigned(hub: str, tenant: str, branch: str, dest: Path) -> Path | None:
    """Download the release the hub assigned to this branch into `dest` (verified later by `verify_bundle`), or None
    when nothing is assigned or it is the version already running under `dest`'s name."""
    base = hub.rstrip("/")
    with httpx.Client(timeout=60) as client:
        answer = client.get(f"{base}/api/v1/releases/assigned/{tenant}/{branch}")
        answer.raise_for_status()
        if answer.status_code == 204:  # noqa: PLR2004 - nothing assigned
            return None
        found = answer.json()
        version = str(found["version"])
        bundle = dest / version
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / MANIFEST).write_text(found["manifest"])
        (bundle / SIGNATURE).write_text(found["signature"] + "\n")
        for entry in json.loads(found["manifest"]).get("files", []):
            name = str(entry["name"])
            if "/" in name or name.startswith("."):
                raise UpdateRefused(f"unsafe file name in the manifest: {name!r}")
            with client.stream("GET", f"{base}/api/v1/releases/{version}/files/{name}") as r:
                r.raise_for_status()
                with (bundle / name).open("wb") as out:
                    for chunk in r.iter_bytes():
                        out.write(chunk)
    return bundle
