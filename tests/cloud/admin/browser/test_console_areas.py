"""The console's admin areas in Debian's Chromium (Playwright) against a real hub (uvicorn, its consumer and NATS
connection on a real nats-server), in Indonesian and English: branches (inline errors, the one-time enrolment code),
services and counters (a form edit distributed), approvals (a second person approves) and the audit trail; each
page is photographed to docs/screenshots/hq-<area>-<lang>.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import Engine

from cloud.apply import Incoming, apply_batch
from cloud.liveness import record_beat
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from sync.liveness import DeviceState, Heartbeat
from tests.cloud.admin.conftest import PASSWORD, add_accounts
from tests.cloud.branch_events import make_branch_events, subject
from tests.support.browser import SCREENSHOTS, console_page
from tests.support.nats_server import NatsServer
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
WORDS = {
    "id": {
        "create": "Buat",
        "save": "Simpan",
        "bad_zone": "Zona waktu tidak dikenal.",
        "code": "Kode pendaftaran",
        "distributed": "Didistribusikan",
        "requested": "Perubahan menunggu persetujuan",
        "approve": "Setujui",
        "approved": "disetujui",
        "filter": "Saring",
        "switch_on": "Aktifkan",
        "called": "dipanggil",
        "overview": "Ringkasan",
        "printer": "printer tiket",
        "live": "langsung",
        "noanswer": "Cabang tidak menjawab dalam 5 detik",
    },
    "en": {
        "create": "Create",
        "save": "Save",
        "bad_zone": "Unknown time zone.",
        "code": "Enrolment code",
        "distributed": "Distributed",
        "requested": "Change waiting for approval",
        "approve": "Approve",
        "approved": "approved",
        "filter": "Filter",
        "switch_on": "Turn on",
        "called": "called",
        "overview": "Overview",
        "printer": "ticket printer",
        "live": "live",
        "noanswer": "The branch did not answer within 5 s",
    },
}


@dataclass
class Hub:
    url: str
    engine: Engine


@pytest.fixture
def hub(tmp_path: Path, nats_server: NatsServer) -> Iterator[Hub]:
    """The hub on a free port with one branch's replicated log (it runs v1) and accounts ana and budi."""
    store_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = create_store_engine(store_url)
    log = make_branch_events(tmp_path / "edge", "jkt-sudirman", tickets=12)
    apply_batch(engine, [Incoming(subject("jkt-sudirman"), o.payload) for o in log])
    add_accounts(engine, "ana", "budi")
    settings = CloudSettings(db_url=store_url, nats_servers=(nats_server.url,), keys_dir=tmp_path / "keys")
    try:
        with served(create_app(settings)) as url:
            yield Hub(url, engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_branches_config_approvals_and_audit_in_the_browser(browser: Browser, hub: Hub, lang: str) -> None:
    page = console_page(browser, hub.url, "ana", PASSWORD, lang)
    create_branch(page, hub, lang)
    edit_services(page, hub, lang)
    approver = approve_a_change(browser, page, hub, lang)
    read_the_audit(approver, hub, lang)
    page.context.close()
    approver.context.close()


def create_branch(page: Page, hub: Hub, lang: str) -> None:
    """Branches: a wrong time zone is shown beside its field; fixed, the branch gets its one-time enrolment code."""
    w = WORDS[lang]
    page.goto(f"{hub.url}/admin/branches/new")
    page.fill("#tenant", "acme")
    page.fill("#branch_id", "jkt-kuningan")
    page.fill("#name", "KCP Kuningan")
    page.fill("#timezone", "Asia/Atlantis")
    page.fill("input[name=open_mon]", "08:00")
    page.fill("input[name=close_mon]", "15:00")
    page.fill("#areas", "f1: Lantai 1\nf2: Lantai 2")
    page.click("#save")
    expect(page.locator("#error-timezone")).to_have_text(w["bad_zone"])
    page.fill("#timezone", "Asia/Jakarta")
    page.click("#save")
    expect(page.locator("#enrolment-code")).to_contain_text(w["code"])
    expect(page.locator("#enrolment-code code")).to_have_text(re.compile(r"^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$"))
    page.screenshot(path=str(SCREENSHOTS / f"hq-branches-{lang}.png"), full_page=True)


def edit_services(page: Page, hub: Hub, lang: str) -> None:
    """Services and counters: a new service distributed from the form."""
    w = WORDS[lang]
    page.goto(f"{hub.url}/admin/config/acme/jkt-sudirman")
    expect(page.locator("#services tr[data-service=teller]")).to_be_visible()
    page.fill("#s-id", "loans")
    page.fill("#s-name", "Kredit")
    page.fill("#s-name-en", "Loans")
    page.fill("#s-prefix", "K")
    page.click("#save-service")
    expect(page.locator("#notice")).to_contain_text(f"{w['distributed']} v2")
    expect(page.locator("#history tr[data-version='2']")).to_contain_text('"id": "loans"')
    page.screenshot(path=str(SCREENSHOTS / f"hq-config-{lang}.png"), full_page=True)

    # Staff accounts: made at HQ, sent to the branch as a hash.
    page.click("#staff-link")
    page.fill("#username", "siti")
    page.select_option("#role", "agent")
    page.check("input[name=counters][value='1']")
    page.fill("#password", "short")
    page.click("#save-staff")
    expect(page.locator("#error-password")).to_be_visible()
    page.fill("#password", "siti-password-1")
    page.click("#save-staff")
    expect(page.locator("#notice")).to_contain_text("v1")
    expect(page.locator("#staff tr[data-username=siti]")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"hq-staff-{lang}.png"), full_page=True)


def approve_a_change(browser: Browser, page: Page, hub: Hub, lang: str) -> Page:
    """Approvals: switched on, the next edit waits; another person approves it."""
    w = WORDS[lang]
    page.goto(f"{hub.url}/admin/approvals")
    page.click("#switch-acme")
    page.goto(f"{hub.url}/admin/config/acme/jkt-sudirman")
    page.fill("#s-id", "forex")
    page.fill("#s-name", "Valas")
    page.fill("#s-prefix", "V")
    page.click("#save-service")
    expect(page.locator("#notice")).to_contain_text(w["requested"])
    approver = console_page(browser, hub.url, "budi", PASSWORD, lang)
    approver.goto(f"{hub.url}/admin/approvals")
    pending = approver.locator("#requests tr[data-status=pending]")
    expect(pending).to_contain_text("service forex")
    approver.screenshot(path=str(SCREENSHOTS / f"hq-approvals-{lang}.png"), full_page=True)
    pending.locator("button.approve").click()
    expect(approver.locator("#requests tr[data-status=approved]")).to_contain_text("v3")
    return approver


def read_the_audit(approver: Page, hub: Hub, lang: str) -> None:
    """Audit: everything above, newest first, with the branch's own events among them."""
    w = WORDS[lang]
    approver.goto(f"{hub.url}/admin/audit")
    trail = approver.locator("#audit")
    for action in (
        "config.approve",
        "config.request",
        "tenant.approvals",
        "config.distribute",
        "branch.create",
        "config.applied",
    ):
        expect(trail.locator(f"tr[data-action='{action}']").first).to_be_visible()
    approver.fill("#actor", "ana")
    approver.click(f"text={w['filter']}")
    expect(trail.locator("tr[data-action='config.approve']")).to_have_count(0)
    approver.goto(f"{hub.url}/admin/audit")
    approver.screenshot(path=str(SCREENSHOTS / f"hq-audit-{lang}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["id", "en"])
def test_device_fleet_and_supervisor_floor_in_the_browser(browser: Browser, hub: Hub, lang: str) -> None:
    """The branch's heartbeat brought its devices; the floor comes from its replicated log."""
    now = datetime.now(UTC)
    devices = [
        DeviceState(
            device_id="kiosk-lobby",
            type="kiosk",
            name="Kios lobi",
            online=True,
            last_seen=now,
            config_version=2,
            applied_version=2,
        ),
        DeviceState(
            device_id="board-1",
            type="display",
            name="Papan lantai 1",
            online=True,
            last_seen=now - timedelta(minutes=5),
            config_version=1,
            applied_version=1,
        ),
        DeviceState(
            device_id="btn-4",
            type="button",
            name="Tombol loket 4",
            online=False,
            last_seen=now - timedelta(hours=2),
            config_version=3,
            applied_version=3,
        ),
        DeviceState(
            device_id="led-4",
            type="led",
            name="LED loket 4",
            online=True,
            last_seen=now - timedelta(hours=1),
            config_version=2,
            applied_version=1,
        ),
        DeviceState(device_id="printer-kiosk-lobby", type="printer", name="10.0.0.31:9100", online=False,
                    last_seen=now - timedelta(minutes=1)),  # its last print failed (paper out)
    ]  # fmt: skip
    record_beat(
        hub.engine,
        Heartbeat(
            tenant="acme",
            branch_id="jkt-sudirman",
            sent_at=now,
            last_seq=40,
            acked_seq=40,
            lag_events=0,
            software_version="test",
            devices=devices,
        ),
    )
    page = console_page(browser, hub.url, "ana", PASSWORD, lang)
    page.goto(f"{hub.url}/admin/fleet")
    expect(page.locator("#fleet-summary")).to_contain_text("2/5")
    expect(page.locator("tr[data-device=printer-kiosk-lobby]")).to_have_attribute("data-online", "0")
    expect(page.locator("tr[data-device=printer-kiosk-lobby]")).to_contain_text(WORDS[lang]["printer"])
    expect(page.locator("tr[data-device=kiosk-lobby]")).to_have_attribute("data-online", "1")
    expect(page.locator("tr[data-device=board-1]")).to_have_attribute("data-online", "0")  # silent for 5 min
    expect(page.locator("tr[data-device=led-4]")).to_contain_text("v1/v2")
    page.check("input[name=branches][value='acme/jkt-sudirman']")  # nobody answers for the branch on this NATS
    page.select_option("#device_type", "kiosk")
    page.fill("#config", '{"idle_seconds": 45}')
    page.click("#push")
    expect(page.locator("#push-results tr[data-branch='acme.jkt-sudirman']")).to_have_attribute(
        "data-outcome", "noanswer", timeout=15_000
    )
    page.screenshot(path=str(SCREENSHOTS / f"hq-fleet-{lang}.png"), full_page=True)
    page.goto(f"{hub.url}/admin/fleet")

    page.goto(f"{hub.url}/admin/supervisor")
    page.click("tr[data-branch=jkt-sudirman] a")
    expect(page.locator("#floor-counters tr[data-counter='2']")).to_contain_text(WORDS[lang]["called"])
    expect(page.locator("#floor-services tr[data-service=teller]")).to_contain_text("A0")
    assert page.locator("meta[http-equiv=refresh]").count() == 0  # kept current by its stream
    waiting = page.locator("#floor-tickets tr[data-status=waiting]").first
    expect(waiting.locator("button[data-action=transfer]")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"hq-supervisor-{lang}.png"), full_page=True)
    waiting.locator("button[data-action=cancel]").click()  # nobody answers for the branch on this NATS
    expect(page.locator("#intervention")).to_contain_text(WORDS[lang]["noanswer"], timeout=15_000)
    page.context.close()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_overview_in_the_browser_stays_current_without_reloading(
    browser: Browser, hub: Hub, lang: str, tmp_path: Path
) -> None:
    """Signing in lands on the overview; a branch that replicates later appears without a reload (the page's
    stream), and the page is never reloaded (a marker set by the test survives)."""
    page = console_page(browser, hub.url, "ana", PASSWORD, lang)
    expect(page.locator("h1")).to_contain_text(WORDS[lang]["overview"])
    expect(page.locator("#live-state")).to_have_text(WORDS[lang]["live"], timeout=15_000)
    expect(page.locator("#branches tr[data-branch=jkt-sudirman]")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    other = make_branch_events(tmp_path / "other", "bdg-dago", tickets=3)
    apply_batch(hub.engine, [Incoming(subject("bdg-dago"), o.payload) for o in other])
    expect(page.locator("#branches tr[data-branch=bdg-dago]")).to_be_visible(timeout=15_000)
    expect(page.locator("#queues tr[data-branch=bdg-dago]").first).to_be_visible()
    assert page.evaluate("window.notReloaded === true")
    page.screenshot(path=str(SCREENSHOTS / f"hq-overview-{lang}.png"), full_page=True)
    page.context.close()
