"""The kiosk's camera check-in in Chromium (no BarcodeDetector on Linux: the vendored jsQR reads the frames): a fake
camera shows the booking's QR (Chromium's --use-file-for-fake-video-capture), the kiosk issues the appointment ticket.
The appliance has no hub link at all: the bookings document on its disk is all it needs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image
from playwright.sync_api import Browser, Playwright, expect

from edge.appointments import store
from edge.demo import DEMO_USERS
from sync.appointments import BookedVisit, BookingsDocument, CheckinCode, sign
from tests.support.appliance import RunningAppliance, mint_token, seed_demo
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow
USERS = [*DEMO_USERS, ("kiosk-1", "device", [])]
WIDTH, HEIGHT = 640, 480


def y4m_of(text: str, path: Path) -> Path:
    """A few frames of raw 4:2:0 video showing the QR of `text` (what Chromium's fake camera plays in a loop)."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=4, border=4)
    qr = Image.open(out).convert("L")
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(qr, ((WIDTH - qr.width) // 2, (HEIGHT - qr.height) // 2))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(5):
            f.write(b"FRAME\n" + frame.tobytes() + chroma + chroma)
    return path


@pytest.fixture
def camera_case(tmp_path: Path, playwright_instance: Playwright) -> Iterator[tuple[Browser, RunningAppliance, Path]]:
    data = tmp_path / "edge"
    config = seed_demo(data, None, USERS)
    key = Ed25519PrivateKey.generate()
    starts = datetime.now(UTC) + timedelta(minutes=10)
    day = starts.astimezone(ZoneInfo(config.timezone)).date()
    visit = BookedVisit(booking_id="CAMERAQRCAMERAQR", service_id="cs", starts_at=starts, day=day.isoformat(),
                        status="booked")  # fmt: skip
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    store.save(data, BookingsDocument(branch_id=config.branch_id, generated_at=starts, public_key=public,
                                      visits=[visit]))  # fmt: skip
    video = y4m_of(sign(CheckinCode(visit.booking_id, config.branch_id, day), key), tmp_path / "qr.y4m")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}"])  # fmt: skip
    try:
        with RunningAppliance(data) as appliance:
            yield browser, appliance, data
    finally:
        browser.close()


def test_the_camera_reads_the_qr_and_issues_the_ticket(camera_case: tuple[Browser, RunningAppliance, Path]) -> None:
    browser, appliance, data = camera_case
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.grant_permissions(["camera"], origin=appliance.base_url)
    page = context.new_page()
    page.goto(f"{appliance.base_url}/kiosk#token={mint_token(data, 'kiosk-1', users=USERS)}")
    page.click("#btn-checkin")
    expect(page.locator("#btn-camera")).to_be_visible()
    page.click("#btn-camera")
    expect(page.locator("#screen-ticket")).to_be_visible(timeout=20_000)
    expect(page.locator("#t-number")).to_have_text("B001")
    context.close()
