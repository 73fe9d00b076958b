"""Every page has an icon: no page load of the appliance logs a 404, and the hub's pages carry their own icon inline."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Response

from edge.auth import load_secret
from edge.web.board.access import Scope, board_path
from tests.e2e.kiosk.conftest import KioskRig, open_kiosk

pytestmark = pytest.mark.slow
HUB_TEMPLATES = Path(__file__).resolve().parents[3] / "cloud" / "web" / "templates"


def icon_of(page: Page) -> str:
    """The page's `<link rel="icon">` address, fetched by the page itself: it must load as an image."""
    href = str(page.evaluate("document.querySelector('link[rel=icon]').href"))
    icon = page.request.get(href)
    assert (icon.status, icon.headers["content-type"]) == (200, "image/svg+xml"), (page.url, href)
    return href


def test_no_page_of_the_appliance_logs_a_404(page: Page, rig: KioskRig) -> None:
    missing: list[str] = []

    def record(response: Response) -> None:
        if response.status == 404:
            missing.append(response.url)

    page.on("response", record)
    base = rig.appliance.base_url
    issued = httpx.post(f"{base}/kiosk/api/tickets", json={"service_id": "teller", "request_id": "icon-1"},
                        headers={"Authorization": f"Bearer {rig.token}"}, timeout=10)  # fmt: skip
    assert issued.status_code == 201, issued.text
    board = base + board_path(load_secret(rig.data_dir), "jkt-sudirman", Scope("area", "lantai-1"))
    icons = set()
    open_kiosk(page, rig)
    icons.add(icon_of(page))
    for url in (issued.json()["status_url"], board, f"{base}/staff/login", f"{base}/board?area=lantai-1&key=wrong"):
        page.goto(url)
        page.wait_for_load_state("load")
        icons.add(icon_of(page))
    assert icons == {f"{base}/static/favicon.svg"}
    page.goto(f"{base}/schema/openapi.json")  # a page without a <head>: the browser asks for /favicon.ico
    ico = httpx.get(f"{base}/favicon.ico", timeout=10)
    assert (ico.status_code, ico.headers["content-type"]) == (200, "image/svg+xml")
    assert missing == []


def test_the_hubs_pages_carry_their_icon_inline() -> None:
    # The hub serves no edge files (cloud never imports edge): its pages embed the same mark as a data: URL.
    templates = sorted(HUB_TEMPLATES.glob("*.html"))
    assert {t.name for t in templates} >= {"console.html", "status.html"}
    for template in templates:
        text = template.read_text(encoding="utf-8")
        if text.startswith("{#- The") and "live part" in text.split("\n", 1)[0]:
            continue  # a page's live fragment (re-rendered into the page over SSE), not a page of its own
        if text.startswith('{% extends "layout.html" %}'):
            text = (HUB_TEMPLATES / "layout.html").read_text(encoding="utf-8")  # the console pages' shared head
        head = text.split("</head>", 1)[0]
        assert '<link rel="icon" href="data:image/svg+xml,' in head, template.name
