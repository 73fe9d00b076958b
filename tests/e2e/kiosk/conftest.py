"""Kiosk browser tests: Debian's Chromium (Playwright) against a real `qms-edge serve` and a recording printer, over
plain HTTP or (parametrised `scheme`, tests/e2e/conftest.py) HTTPS with a test CA the browser trusts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from edge.demo import DEMO_USERS, demo_config
from edge.engine import commands as c
from edge.service import QueueService
from sync.contract_config import WEEKDAYS, BranchConfig, Kiosk, KioskPrinter
from tests.e2e.conftest import LanCA, chromium_options, https_ca, page_base
from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import RunningAppliance, free_port, mint_token, seed_demo
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401 - CHROMIUM_ARGS: the screenshot scripts' import

LANDSCAPE = {"width": 1920, "height": 1080}
PORTRAIT = {"width": 1080, "height": 1920}
KIOSK_USERS = [*DEMO_USERS, ("kiosk-1", "device", [])]

pytestmark = pytest.mark.slow


def kiosk_config(printer_port: int, **kiosk: Any) -> BranchConfig:
    """The demo branch with kiosk settings; loans open only tomorrow (a closed service to explain)."""
    config = demo_config()
    tomorrow = WEEKDAYS[(datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).weekday() + 1) % 7]
    services = [msgspec.structs.replace(s, hours={tomorrow: [("08:00", "15:00")]}) if s.id == "loan" else s
                for s in config.services]  # fmt: skip
    settings = {
        "phone_input": "optional",
        "idle_seconds": 5,
        "ticket_seconds": 30,
        "logo_text": "BANK DEMO",
        "printer": KioskPrinter(host="127.0.0.1", port=printer_port, paper_mm=80, timeout_seconds=2.0),
        "offline_lease_size": 5,
        **kiosk,
    }
    return msgspec.structs.replace(config, services=services, kiosk=Kiosk(**settings))


@dataclass
class KioskRig:
    """A running appliance, its data dir, the kiosk device token and the printer sink."""

    appliance: RunningAppliance
    data_dir: Path
    token: str
    sink: PrinterSink

    @property
    def url(self) -> str:
        """The kiosk page with its pairing token."""
        return f"{page_base(self.appliance)}/kiosk#token={self.token}"

    def admin(self) -> dict[str, str]:
        """Headers of the branch admin."""
        return {"Authorization": f"Bearer {mint_token(self.data_dir, 'admin', users=KIOSK_USERS)}"}

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket the engine holds today."""
        r = httpx.get(f"{self.appliance.api}/tickets", headers=self.admin(), timeout=10)
        r.raise_for_status()
        body = r.json()
        return list(body["tickets"] if isinstance(body, dict) else body)


@pytest.fixture(scope="module")
def browser(lan_ca: LanCA) -> Iterator[Browser]:
    """Debian's Chromium, headless, per module (Playwright's sync API holds an event loop while it runs), trusting
    the test CA."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, **chromium_options(lan_ca.home))
        yield b
        b.close()


@pytest.fixture(scope="session")
def sink() -> Iterator[PrinterSink]:
    """The recording printer of the session (jobs are cleared per test)."""
    with PrinterSink() as recording:
        yield recording


@pytest.fixture(scope="session")
def kiosk_template(tmp_path_factory: pytest.TempPathFactory, sink: PrinterSink) -> Path:
    """A data dir seeded once (users are slow to hash) with the kiosk branch; tests copy it."""
    data = tmp_path_factory.mktemp("kiosk-template") / "data"
    seed_demo(data, kiosk_config(sink.port), KIOSK_USERS)
    return data


def make_rig(tmp_path: Path, template: Path, sink: PrinterSink, https: LanCA | None = None,
             **kiosk: Any) -> Iterator[KioskRig]:  # fmt: skip
    """Copy the template, apply kiosk setting changes, start the appliance (over HTTPS with `https`'s certificate
    when given) and yield the rig."""
    data = tmp_path / "data"
    shutil.copytree(template, data)
    if https is not None:
        https.serve_https(data)
    if kiosk:
        service = QueueService(data)
        try:
            config = kiosk_config(sink.port, **kiosk)
            service.execute(c.ApplyConfig(actor="test", config=config, base_version=1, source="test"))
        finally:
            service.stop()
    sink.jobs.clear()
    token = mint_token(data, "kiosk-1", users=KIOSK_USERS)
    with RunningAppliance(data) as running:
        yield KioskRig(running, data, token, sink)


@pytest.fixture
def rig(tmp_path: Path, kiosk_template: Path, sink: PrinterSink, scheme: str, lan_ca: LanCA,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[KioskRig]:  # fmt: skip
    """A kiosk with a working printer, over `scheme`."""
    yield from make_rig(tmp_path, kiosk_template, sink, https_ca(scheme, lan_ca, monkeypatch))


@pytest.fixture
def rig_printer_down(tmp_path: Path, kiosk_template: Path, sink: PrinterSink) -> Iterator[KioskRig]:
    """A kiosk whose printer address has nothing listening."""
    down = KioskPrinter(host="127.0.0.1", port=free_port(), paper_mm=58, timeout_seconds=2.0)
    yield from make_rig(tmp_path, kiosk_template, sink, printer=down)


@pytest.fixture
def rig_patient(tmp_path: Path, kiosk_template: Path, sink: PrinterSink) -> Iterator[KioskRig]:
    """A kiosk that waits a minute before returning home (tests that span poll intervals)."""
    yield from make_rig(tmp_path, kiosk_template, sink, idle_seconds=60)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh 1080p landscape page (own storage: IndexedDB and localStorage start empty)."""
    context = browser.new_context(viewport=LANDSCAPE, has_touch=True)
    p = context.new_page()
    yield p
    context.close()


def open_kiosk(page: Page, rig: KioskRig) -> None:
    """Load the kiosk and wait until it has synced once (catalog, leases)."""
    page.goto(rig.url)
    page.wait_for_selector("#app[data-synced='true']", state="attached", timeout=15000)
