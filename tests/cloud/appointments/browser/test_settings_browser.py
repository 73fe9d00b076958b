"""The Appointments page's bookable-service form in Chromium (id/en): a branch's configured services to choose from,
and values out of bounds sent anyway (the browser's own checks off, as an old browser or a script would) come back
with the reason beside each field and nothing saved.
Screenshots: docs/screenshots/appointments-settings-error-{id,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.tables import appt_services
from cloud.hq_users import upsert_user
from cloud.store import config_versions, create_store_engine, transaction, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from tests.cloud.admin.conftest import PASSWORD
from tests.cloud.appointments.support import NOW, SLOT, add_branch
from tests.support.browser import console_page, shot
from tests.support.providers.hub import served

pytestmark = pytest.mark.slow
TENANT, BRANCH = "demo-bank", "jkt-sudirman"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """The demo branch with its configuration at the hub (teller, cs, loan; cs bookable) and ana, its tenant's admin."""
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = create_store_engine(url)
    add_branch(engine, TENANT, BRANCH)
    config = msgspec.structs.replace(demo_config(), version=1)
    with transaction(engine) as conn:
        conn.execute(config_versions.insert().values(tenant_id=TENANT, branch_id=BRANCH, version=1,
                                                     doc=msgspec.json.encode(config).decode(),
                                                     created_at=utcnow_iso()))  # fmt: skip
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    app = create_app(CloudSettings(db_url=url, keys_dir=tmp_path / "keys"))
    app.state["appt_clock"] = lambda: NOW
    app.state["appt_mail_seconds"] = 3600
    with served(app) as base:
        yield base, engine
    engine.dispose()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_bad_service_form_is_shown_again_with_its_errors(browser: Browser, hub: tuple[str, Engine],
                                                           lang: str) -> None:  # fmt: skip
    base, engine = hub
    page = console_page(browser, base, "ana", PASSWORD, lang, width=1280, height=1000)
    page.goto(f"{base}/appointments?tenant={TENANT}&branch={BRANCH}&lang={lang}")
    expect(page.locator("#sf-service option")).to_have_count(3)  # the configuration's services
    page.select_option("#sf-service", "teller")
    page.fill("#sf-name", "Teller")
    page.fill("#sf-slot", "-5")
    page.fill("#sf-capacity", "999")
    page.evaluate("document.getElementById('service-form').noValidate = true")
    page.click("#sf-submit")
    slot = {"id": "Isi 5-240 menit.", "en": "Enter 5-240 minutes."}[lang]
    expect(page.locator("#error-service-slot_minutes")).to_have_text(slot)
    expect(page.locator("#error-service-capacity")).to_be_visible()
    expect(page.locator("#sf-slot")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#sf-slot")).to_have_value("-5")  # what was typed stays
    page.locator("#service-form").scroll_into_view_if_needed()
    shot(page, f"appointments-settings-error-{lang}.png")
    with engine.connect() as conn:
        saved = conn.execute(sa.select(appt_services.c.service_id).where(appt_services.c.branch_id == BRANCH))
        assert sorted(saved.scalars()) == ["cs"]
    page.context.close()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_calendar_lists_bookings_on_a_day_closed_later(browser: Browser, hub: tuple[str, Engine],
                                                           lang: str) -> None:  # fmt: skip
    base, engine = hub
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, TENANT, BRANCH)
        assert branch is not None
        booking.book(conn, branch, "cs", SLOT, name="Siti", email=None, phone=None, lang="id", actor="public", now=NOW)
    page = console_page(browser, base, "ana", PASSWORD, lang, width=1280, height=1000)
    page.goto(f"{base}/appointments/{TENANT}/calendar?lang={lang}&year=2027")
    page.fill("#entry-form input[name=day]", SLOT.date().isoformat())
    page.select_option("#entry-scope", f"branch:{BRANCH}")
    page.fill("#entry-form input[name=name]", "Pemeliharaan listrik gedung " * 7)  # a long name wraps
    page.click("#entry-form button")
    expect(page.locator("#closed-bookings li")).to_have_count(1)
    expect(page.locator("#closed-bookings h2")).to_have_text(
        {"id": "1 pemesanan pada hari tutup", "en": "1 booking on a closed day"}[lang]
    )
    width = page.evaluate("document.getElementById('entries').getBoundingClientRect().right")
    assert width <= 1280  # the window's width: no sideways scrolling
    shot(page, f"appointments-calendar-{lang}.png")
    page.click("#closed-bookings a")
    expect(page.locator("#bookings [data-status='booked']")).to_have_count(1)  # that day's staff page
    page.context.close()
