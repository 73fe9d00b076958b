"""Accessibility basics with axe-core run in the page (WCAG 2.1 A/AA: labels, names, contrast) and focus order."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.staff.conftest import Kiosk
from tests.support.appliance import RunningAppliance

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, staff_template: Path) -> Iterator[RunningAppliance]:
    """One appliance with a busy-looking floor: waiting, called, serving and held tickets."""
    target = tmp_path_factory.mktemp("a11y") / "data"
    shutil.copytree(staff_template, target)
    with RunningAppliance(target) as running:
        kiosk = Kiosk(running)
        for service in ("teller", "teller", "teller", "cs", "loan"):
            kiosk.enqueue(service)
        running.token("admin")
        import httpx

        headers = running.headers("admin")
        httpx.post(f"{running.api}/counters/1/call-next", headers=headers, timeout=10).raise_for_status()
        yield running


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core in the page; the violations, each with its rule id and offending nodes."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


PAGES = {
    None: ["/staff/login"],
    "agent1": ["/staff/counter/1", "/staff/counter/2"],
    "supervisor": ["/staff/supervisor/"],
    "admin": ["/staff/admin/", "/staff/admin/services/teller", "/staff/admin/counters/4", "/staff/admin/users",
              "/staff/admin/audit"],
}  # fmt: skip


@pytest.mark.parametrize("lang", ["id", "en"])
@pytest.mark.parametrize("user", list(PAGES))
def test_pages_pass_axe(new_context: Any, appliance: RunningAppliance, user: str | None, lang: str) -> None:
    page: Page = new_context(bypass_csp=True).new_page()  # the test injects axe; the app's CSP forbids that
    page.goto(f"{appliance.base_url}/staff/lang/{lang}?next=/staff/login")
    if user is not None:
        page.locator("#username").fill(user)
        page.locator("#password").fill("demo")
        page.locator("form.stack button[type=submit]").click()
        page.wait_for_url(lambda url: "/staff/login" not in url)
    found = {}
    for path in PAGES[user]:
        page.goto(f"{appliance.base_url}{path}")
        found[path] = axe_violations(page)
    assert found == {path: [] for path in PAGES[user]}


def test_focus_order_follows_the_work(signed_in: Any) -> None:
    page: Page = signed_in("agent1")
    assert (
        page.evaluate('document.querySelectorAll(\'[tabindex]:not([tabindex="-1"]):not([tabindex="0"])\').length') == 0
    )
    order = []
    for _ in range(40):
        page.keyboard.press("Tab")
        order.append(page.evaluate("(document.activeElement.innerText || document.activeElement.id || '').trim()"))
    assert order[0] == "Lompat ke konten"
    call = next(i for i, text in enumerate(order) if text.startswith("Mulai layani"))  # A001 is called here
    presence = order.index("Istirahat")
    sign_out = order.index("Keluar")
    assert sign_out < presence < call
