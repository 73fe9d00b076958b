"""Role gating in the browser: agents never reach configuration or another counter; sessions end for real."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.appliance import RunningAppliance


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, staff_template: Path) -> Iterator[RunningAppliance]:
    """One appliance for the module: these tests only read pages and sign in and out."""
    target = tmp_path_factory.mktemp("gating") / "data"
    shutil.copytree(staff_template, target)
    with RunningAppliance(target) as running:
        yield running


@pytest.mark.parametrize("path", ["/staff/admin/", "/staff/admin/audit", "/staff/supervisor/"])
def test_an_agent_is_refused_on_supervisor_and_admin_pages(signed_in: Any, appliance: RunningAppliance,
                                                            path: str) -> None:  # fmt: skip
    page: Page = signed_in("agent1")
    expect(page.get_by_role("link", name="Konfigurasi")).to_have_count(0)
    response = page.goto(f"{appliance.base_url}{path}")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Tidak diizinkan")).to_be_visible()


def test_an_agent_is_refused_on_a_counter_not_theirs(signed_in: Any, appliance: RunningAppliance) -> None:
    page: Page = signed_in("agent1")
    for counter in ("3", "elsewhere-9"):  # another agent's counter; a counter this branch does not have
        response = page.goto(f"{appliance.base_url}/staff/counter/{counter}")
        assert response is not None
        assert response.status == 403
        expect(page.get_by_text("Loket ini bukan milik Anda.")).to_be_visible()


def test_signed_out_pages_go_to_login_and_come_back(new_context: Any, appliance: RunningAppliance) -> None:
    page: Page = new_context().new_page()
    page.goto(f"{appliance.base_url}/staff/counter/2")
    expect(page).to_have_url(re.compile(r"/staff/login\?next=/staff/counter/2$"))
    page.get_by_label("Nama pengguna").fill("agent1")
    page.get_by_label("Kata sandi").fill("salah")
    page.get_by_role("button", name="Masuk").click()
    expect(page.get_by_role("alert")).to_contain_text("Nama pengguna atau kata sandi salah")
    page.get_by_label("Kata sandi").fill("demo")
    page.get_by_role("button", name="Masuk").click()
    expect(page).to_have_url(re.compile(r"/staff/counter/2$"))
    page.get_by_role("button", name="Keluar").click()
    # the desk's live refresh may race the logout redirect and land on the login page with `next` kept
    expect(page).to_have_url(re.compile(r"/staff/login(\?next=/staff/counter/2)?$"))
    page.goto(f"{appliance.base_url}/staff/counter/2")
    expect(page).to_have_url(re.compile(r"/staff/login"))


def test_the_session_cookie_is_not_readable_by_scripts(signed_in: Any) -> None:
    page: Page = signed_in("agent1")
    assert "qms_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "qms_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
