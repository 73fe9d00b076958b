"""`make ansible-test`: ansible/appliance.yml provisions the image's cached base root filesystem (a plain Debian
bookworm arm64 without this project) through the `community.general.chroot` connection (arm64 binaries run under
qemu-user via binfmt), and a second run reports changed=0. Slow (emulated pip): skipped unless
QMS_ANSIBLE_CHROOT_TEST=1, and needs the base rootfs tarball (images/base.sh) and root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"

pytestmark = pytest.mark.skipif(
    os.environ.get("QMS_ANSIBLE_CHROOT_TEST") != "1", reason="slow: run by `make ansible-test`"
)


def run_playbook(root: Path, wheelhouse: Path, seed: Path) -> str:
    inventory = {"appliances": {"hosts": {str(root): {
        "ansible_connection": "community.general.chroot", "ansible_python_interpreter": "/usr/bin/python3",
        "qms_install_packages": False, "qms_start_services": False, "qms_wheelhouse": str(wheelhouse),
        "qms_tenant": "acme", "qms_branch": "jkt-sudirman", "qms_nkey_seed_file": str(seed),
        "qms_nats_servers": "nats://hub.example:4222"}}}}  # fmt: skip
    (root.parent / "inventory.json").write_text(json.dumps(inventory))
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(root.parent / "inventory.json"),
         "appliance.yml"],
        cwd=ANSIBLE, capture_output=True, text=True, timeout=3600, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(root.parent / ".ansible")},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.timeout(3 * 3600)  # two playbook runs, pip under qemu-user: far past the suite's 300 s per test
def test_appliance_playbook_provisions_the_rootfs_and_is_idempotent(tmp_path: Path) -> None:
    base = subprocess.run([str(REPO / "images" / "base.sh")], capture_output=True, text=True, check=True).stdout
    root = tmp_path / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", base.strip()], check=True)
    wheelhouse = tmp_path / "wheels"
    subprocess.run([str(REPO / "images" / "wheelhouse.sh"), str(wheelhouse), "aarch64"], check=True,
                   capture_output=True)  # fmt: skip
    seed = tmp_path / "acme.jkt-sudirman.nk"
    seed.write_text("SUAEXAMPLESEED\n")
    first = run_playbook(root, wheelhouse, seed)
    assert re.search(r"changed=[1-9]", first), first[-2000:]
    assert (root / "opt/qms/current/bin/qms-edge").exists()
    assert (root / "etc/systemd/system/multi-user.target.wants/qms-edge.service").is_symlink()
    assert "QMS_BRANCH=jkt-sudirman" in (root / "var/lib/qms/cloud.env").read_text()
    second = run_playbook(root, wheelhouse, seed)
    recap = re.search(r"ok=\d+\s+changed=(\d+)", second)
    assert recap, second[-2000:]
    assert recap.group(1) == "0", second[-3000:]
