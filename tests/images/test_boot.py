"""`make image-test`: the built image boots under qemu-system-aarch64 -M virt (TCG), reaches multi-user.target,
answers /api/v1/health on a forwarded port, and its first-boot service pairs it with a hub this test starts (the
one-time code on the boot partition, the hub reached from the guest at QEMU's host address 10.0.2.2).

Slow (minutes of emulation): skipped unless QMS_IMAGE_TEST=1 (set by `make image-test`) and the image exists in
$QMS_IMAGE_OUT (default build/image). The timings are written to boot-test.json beside the image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.images.conftest import running_hub
from tests.support.appliance import free_port, terminate
from tests.support.cloud_hub import wait_until

IMAGE_DIR = Path(os.environ.get("QMS_IMAGE_OUT") or Path(__file__).resolve().parents[2] / "build" / "image")
IMAGE = IMAGE_DIR / "qms-appliance-arm64.img"
BOOT_PARTITION_OFFSET = "4M"  # images/build.sh: the FAT partition starts at 4 MiB
BOOT_MINUTES = float(os.environ.get("QMS_IMAGE_BOOT_MINUTES", "20"))

pytestmark = pytest.mark.skipif(
    os.environ.get("QMS_IMAGE_TEST") != "1", reason="slow: run by `make image-test` (QMS_IMAGE_TEST=1)"
)


@pytest.mark.timeout(int(BOOT_MINUTES * 60 * 3))
def test_the_image_boots_serves_and_pairs_with_the_hub(tmp_path: Path) -> None:
    assert IMAGE.exists(), f"no image at {IMAGE}: run `make image` first"
    disk = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(IMAGE), str(disk)], check=True)  # the flashed image stays pristine
    console = tmp_path / "console.log"
    port = free_port()
    timings: dict[str, float | str] = {}
    with running_hub(tmp_path) as (hub_url, code, store_url):  # the guest reaches 127.0.0.1 as 10.0.2.2
        hub_port = hub_url.rsplit(":", 1)[1]
        card = tmp_path / "qms-enrol.json"
        card.write_text(json.dumps({"hub": f"http://10.0.2.2:{hub_port}", "code": code}))
        subprocess.run(["mcopy", "-i", f"{disk}@@{BOOT_PARTITION_OFFSET}", str(card), "::qms-enrol.json"], check=True)
        qemu = [
            shutil.which("qemu-system-aarch64") or "qemu-system-aarch64",
            "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1536",
            "-kernel", str(IMAGE_DIR / "vmlinuz"), "-initrd", str(IMAGE_DIR / "initrd.img"),
            # journald forwards every service's log to the serial console: a stalled boot says what it waits for
            "-append", "root=LABEL=QMSROOT rw console=ttyAMA0 net.ifnames=0 systemd.journald.forward_to_console=1",
            "-drive", f"file={disk},if=virtio,format=raw",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080",
            "-device", "virtio-net-pci,netdev=n0,romfile=",  # no iPXE option ROM (not installed, not needed)
            "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(qemu, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = BOOT_MINUTES * 60

            def log() -> str:
                return console.read_text(errors="replace") if console.exists() else ""

            wait_until(lambda: "Reached target multi-user.target" in log() or "Multi-User System" in log(),
                       timeout=deadline, interval=1, what="multi-user.target")  # fmt: skip
            timings["multi_user_seconds"] = round(time.monotonic() - started, 1)

            def health() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).is_success
                except httpx.HTTPError:
                    return False

            wait_until(health, timeout=deadline, interval=2, what="/api/v1/health through the forwarded port")
            timings["health_seconds"] = round(time.monotonic() - started, 1)
            engine = sa.create_engine(store_url)

            def enrolled() -> bool:
                with engine.connect() as conn:
                    used = conn.execute(sa.text("SELECT used_at FROM enrolment_codes")).scalar()
                return used is not None

            wait_until(enrolled, timeout=deadline, interval=2, what="the first-boot enrolment spent the code")
            timings["enrolled_seconds"] = round(time.monotonic() - started, 1)
            engine.dispose()
            wait_until(health, timeout=deadline, interval=2, what="health again after the enrolment restart")
            timings["result"] = "pass"
        except BaseException:
            timings["result"] = "fail"
            print(log()[-6000:])
            raise
        finally:
            terminate(proc, 10)
            (IMAGE_DIR / "boot-test.json").write_text(json.dumps(timings, indent=2) + "\n")
            shutil.copy(console, IMAGE_DIR / "boot-test-console.log")
