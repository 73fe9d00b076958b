"""The status page's "notify me" in Debian's Chromium (Playwright) against a real hub (uvicorn) and a local push
service: permission granted, the service worker registers, the page's subscription reaches the hub, and a push the
hub sends with the web push provider is verified (VAPID) and decrypted (RFC 8291) by the push service.

Chromium's own `pushManager.subscribe` asks Google's push service (FCM) for an endpoint, which this machine cannot
reach; an init script stands in for that one browser-vendor call, returning a subscription on the local push service
whose keys the test holds. Everything of ours (page, script, service worker, routes, store, provider) is real."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from cloud.credentials import issue
from cloud.notify import policy, push_store
from cloud.notify.providers import webpush
from cloud.notify.providers.base import OutgoingMessage, SendResult
from cloud.store import create_store_engine
from cloud.ticket_status import words
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from edge.engine import commands as c
from edge.service import QueueService
from sync.links import seed_link_key, sign
from tests.cloud.branch_events import TENANT
from tests.cloud.test_ticket_status import BRANCH, Branch
from tests.support.appliance import seed_demo
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.cloud_hub import wait_until
from tests.support.providers.hub import served
from tests.support.providers.push_service import PushServiceStandIn

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}

# Stands in for the browser vendor's push registration only (see the module docstring).
FAKE_SUBSCRIBE = """
(() => {
  const sub = %s;
  const b64 = (t) => t.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((t.length + 3) %% 4);
  const bytes = (t) => Uint8Array.from(atob(b64(t)), (c) => c.charCodeAt(0)).buffer;
  const made = { endpoint: sub.endpoint, expirationTime: null, options: {},
    getKey: (name) => bytes(sub.keys[name]), toJSON: () => sub, unsubscribe: async () => true };
  let current = null;
  PushManager.prototype.subscribe = async function (options) {
    window.__applicationServerKey = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)));
    current = made;
    return made;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


@dataclass
class Hub:
    url: str
    engine: Any
    key: bytes

    def link(self, ticket_id: str) -> str:
        return f"{self.url}/t/{sign(self.key, BRANCH, f't:{ticket_id}')}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, per module (Playwright's sync API holds an event loop while it runs)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def push_service() -> Iterator[PushServiceStandIn]:
    with PushServiceStandIn() as server:
        yield server


@pytest.fixture
def branch(tmp_path: Path) -> Iterator[Branch]:
    seed_demo(tmp_path / "edge", demo_config(), users=[])
    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    service = QueueService(tmp_path / "edge")
    service.start()
    try:
        yield Branch(service, engine)
    finally:
        service.stop()
        engine.dispose()


@pytest.fixture
def hub(branch: Branch, tmp_path: Path, push_service: PushServiceStandIn,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:  # fmt: skip
    """The hub's web app on a free port (uvicorn in a thread), allowing the local push service's origin."""
    monkeypatch.setenv("QMS_PUSH_ORIGINS", push_service.base_url)
    issued = issue(branch.engine, tmp_path / "keys", TENANT, BRANCH)
    with branch.engine.begin() as conn:  # the tenant offers web push (its VAPID key is made on first use)
        policy.save_provider(
            conn, TENANT, "push", "webpush", {"vapid_subject": "mailto:hq@example.com"}, webpush.SECRETS
        )
    app = create_app(CloudSettings(db_url=str(branch.engine.url), keys_dir=tmp_path / "keys"))  # SQLite: no password
    with served(app) as url:
        yield Hub(url, branch.engine, seed_link_key(issued.seed_file))


def _browser_keys(push_service: PushServiceStandIn) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
    """A subscription on the local push service, as the browser's push registration would return it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return push_service.subscribe(private_key=key), key


def _page(browser: Browser, hub: Hub, lang: str, subscription: dict[str, Any]) -> Page:
    context = browser.new_context(viewport=PHONE, locale="id-ID" if lang == "id" else "en-US")
    context.grant_permissions(["notifications"], origin=hub.url)
    context.add_init_script(FAKE_SUBSCRIBE % json.dumps(subscription))
    page = context.new_page()
    return page


def _push(hub: Hub, subscription: str) -> SendResult:
    """Send one notice the way the dispatcher does: the tenant's VAPID settings, the stored subscription."""
    with hub.engine.begin() as conn:
        settings = push_store.push_settings(conn, TENANT)
    assert settings is not None

    async def send() -> Any:
        async with httpx.AsyncClient(timeout=5) as client:
            message = OutgoingMessage(key=f"{TENANT}/{BRANCH}/ticket-1/called/push", channel="push", to=subscription,
                                      subject="A003", text="Dipanggil ke Loket 2")  # fmt: skip
            return await webpush.build(settings, client).send(message)

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        return pool.submit(asyncio.run, send()).result()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_notify_me_subscribes_and_a_push_arrives_decrypted(
    browser: Browser, branch: Branch, hub: Hub, push_service: PushServiceStandIn, lang: str
) -> None:
    ticket = branch.run(c.Enqueue(service_id="teller", lang=lang))
    branch.run(c.Enqueue(service_id="teller", lang=lang))
    branch.ship()
    subscription, _ = _browser_keys(push_service)
    page = _page(browser, hub, lang, subscription)
    page.goto(hub.link(ticket["ticket_id"]))
    button = page.locator("#notify-me")
    expect(button).to_have_text("Beri tahu saya" if lang == "id" else "Notify me")
    page.screenshot(path=str(SCREENSHOTS / f"status-notify-{lang}.png"), full_page=True)
    button.click()
    expect(page.locator("#notify-state")).to_have_attribute("data-state", "on")
    page.screenshot(path=str(SCREENSHOTS / f"status-notify-on-{lang}.png"), full_page=True)
    registration = page.evaluate("navigator.serviceWorker.getRegistration('/t/').then(r => r && r.active && r.scope)")
    assert registration == f"{hub.url}/t/"
    with hub.engine.connect() as conn:
        public = push_store.vapid_public_key(conn, TENANT)
        [stored] = push_store.for_ticket(conn, TENANT, BRANCH, ticket["ticket_id"])
    sent_key = base64.urlsafe_b64encode(base64.b64decode(page.evaluate("window.__applicationServerKey")))
    assert sent_key.rstrip(b"=").decode() == public  # the page subscribed with the tenant's VAPID key
    assert json.loads(stored)["endpoint"] == subscription["endpoint"]
    assert _push(hub, stored).outcome == "sent", push_service.refused
    [push] = push_service.received
    assert push.payload == {"title": "A003", "body": "Dipanggil ke Loket 2", "tag": f"{TENANT}/{BRANCH}/ticket-1"}
    assert push.vapid_key == public
    page.reload()  # the page refreshes every 15 s: a subscribed browser keeps saying so
    expect(page.locator("#notify-state")).to_have_attribute("data-state", "on")
    page.context.close()


def test_the_service_worker_shows_a_push(browser: Browser, branch: Branch, hub: Hub,
                                         push_service: PushServiceStandIn) -> None:  # fmt: skip
    ticket = branch.run(c.Enqueue(service_id="teller", lang="id"))
    branch.ship()
    subscription, _ = _browser_keys(push_service)
    page = _page(browser, hub, "id", subscription)
    page.goto(hub.link(ticket["ticket_id"]))
    page.locator("#notify-me").click()
    expect(page.locator("#notify-state")).to_have_attribute("data-state", "on")
    [worker] = wait_until(lambda: page.context.service_workers, what="service worker")
    shown = worker.evaluate("""async () => {
        const data = JSON.stringify({title: 'A001', body: 'Dipanggil', tag: 't1'});
        self.dispatchEvent(new PushEvent('push', {data}));
        for (let i = 0; i < 50; i++) {
            const list = await self.registration.getNotifications();
            if (list.length) return list.map(n => [n.title, n.body, n.tag]);
            await new Promise(r => setTimeout(r, 100));
        }
        return [];
    }""")
    assert shown == [["A001", "Dipanggil", "t1"]]
    page.context.close()


def test_finished_ticket_and_bad_subscriptions_are_refused(branch: Branch, hub: Hub,
                                                           push_service: PushServiceStandIn) -> None:  # fmt: skip
    ticket = branch.run(c.Enqueue(service_id="teller"))
    branch.ship()
    link = hub.link(ticket["ticket_id"])
    good = push_service.subscribe()
    assert httpx.post(f"{link}/push", content=b"{not json").status_code == 400
    assert httpx.post(f"{link}/push", json={**good, "endpoint": "http://10.0.0.1/x"}).status_code == 400
    assert httpx.post(f"{hub.url}/t/forged/push", json=good).status_code == 404
    assert httpx.post(f"{link}/push", json=good).status_code == 201
    assert httpx.get(f"{link}/manifest.webmanifest").json()["start_url"].startswith("/t/")
    assert httpx.post(f"{link}/push/stop", json={"endpoint": good["endpoint"]}).status_code == 204
    branch.run(c.Cancel(ticket_id=ticket["ticket_id"]))
    branch.ship()
    finished = httpx.post(f"{link}/push", json=good)
    assert finished.status_code == 409
    assert finished.headers["content-type"].startswith("application/problem+json")
    assert (finished.json()["code"], finished.json()["type"]) == ("ticket_finished", "urn:qms:problem:ticket_finished")


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_page_acts_on_the_refusals_code(browser: Browser, branch: Branch, hub: Hub,
                                            push_service: PushServiceStandIn, lang: str) -> None:  # fmt: skip
    """A ticket that already notifies as many devices as it may says so (not "try again"); a ticket that finished
    while the page was open hides "notify me"."""
    full = branch.run(c.Enqueue(service_id="teller", lang=lang))
    ending = branch.run(c.Enqueue(service_id="teller", lang=lang))
    branch.ship()
    for _ in range(push_store.MAX_PER_TICKET):
        assert httpx.post(f"{hub.link(full['ticket_id'])}/push", json=push_service.subscribe()).status_code == 201
    page = _page(browser, hub, lang, push_service.subscribe())
    page.goto(hub.link(full["ticket_id"]))
    with page.expect_response(lambda r: r.url.endswith("/push") and r.request.method == "POST") as answer:
        page.locator("#notify-me").click()
    assert answer.value.status == 409
    state = page.locator("#notify-state")
    expect(state).to_have_attribute("data-state", "full")
    expect(state).to_have_text(words(lang)["notify_full"])
    expect(page.locator("#notify-me")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / f"status-notify-full-{lang}.png"), full_page=True)
    page.goto(hub.link(ending["ticket_id"]))
    expect(page.locator("#notify-me")).to_be_visible()
    branch.run(c.Cancel(ticket_id=ending["ticket_id"]))
    branch.ship()
    page.locator("#notify-me").click()
    expect(page.locator("#notify")).to_be_hidden()
    page.context.close()


def test_no_notify_me_when_the_tenant_offers_no_web_push(browser: Browser, branch: Branch, hub: Hub,
                                                         push_service: PushServiceStandIn) -> None:  # fmt: skip
    with hub.engine.begin() as conn:
        policy.delete_provider(conn, TENANT, "push")
    ticket = branch.run(c.Enqueue(service_id="teller", lang="en"))
    branch.ship()
    page = _page(browser, hub, "en", push_service.subscribe())
    with page.expect_response(lambda r: r.url.endswith("/push")) as answer:
        page.goto(hub.link(ticket["ticket_id"]))
    assert answer.value.status == 404
    expect(page.locator("#notify")).to_be_hidden()
    expect(page.locator("#state")).to_have_text("Waiting")
    page.context.close()
