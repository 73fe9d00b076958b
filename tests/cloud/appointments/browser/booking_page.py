"""The public booking page as a customer uses it in Chromium: book the first free time, get the signed code."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.browser import shot

TENANT, BRANCH = "demo-bank", "jkt-sudirman"


def book_first_free_time(page: Page, hub: str, lang: str, name: str, email: str = "", photo: str = "") -> str:
    """Book the first free time on the public page (e-mail given if any; photographed to `photo` before sending, if
    named); returns the signed code from the confirmation's address."""
    page.goto(f"{hub}/book/{TENANT}/{BRANCH}?lang={lang}")
    page.locator("#times label").first.click()
    page.fill("#name", name)
    if email:
        page.fill("#email", email)
    if photo:
        shot(page, photo)
    page.click("#submit")
    expect(page.locator("#qr svg")).to_be_visible()
    return page.url.split("/v/")[1].split("?")[0]
