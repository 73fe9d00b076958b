"""Staff sign-in at the appliance through the hub's SSO, end to end: a real appliance, a real hub over a real
nats-server, a real OpenID provider. The account made at HQ signs in at the branch with its role and counters; an
unknown or disabled account, a replayed, tampered, expired or other-branch assertion are refused; with the hub down
the page says so and local passwords keep working."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge.demo import DEMO_PASSWORD
from tests.cloud.identity.staff_sso_rig import Rig, landing, sso_sign_in, staff_sso_rig, start, tampered
from tests.support.cloud_hub import wait_until

pytestmark = pytest.mark.slow


def signed_in_as(browser: httpx.Client, rig: Rig) -> str | None:
    """Who the appliance's staff session of this browser belongs to (None: not signed in)."""
    page = browser.get(f"{rig.appliance.base_url}/staff/counter/1", follow_redirects=False, timeout=15)
    if page.status_code != 200:
        return None
    return "siti" if "siti" in page.text else "?"


def test_staff_sign_in_through_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with staff_sso_rig(tmp_path, monkeypatch) as rig:
        appliance = rig.appliance
        page = httpx.get(f"{appliance.base_url}/staff/login", cookies={"qms_lang": "en"}, timeout=15)
        assert "Sign in with" in page.text  # the IdP's name is learnt at the first sign-in

        # The account made at HQ, through the IdP: an ordinary staff session with its role and counters.
        browser = httpx.Client()
        callback, led_to = sso_sign_in(browser, appliance, "siti")
        assert led_to == "/staff/counter", led_to
        assert signed_in_as(browser, rig) == "siti"
        assert ("siti", "login") in [(a, b) for a, b, _ in rig.staff_audit()]
        label = httpx.get(f"{appliance.base_url}/staff/login", cookies={"qms_lang": "en"}, timeout=15).text
        assert "Sign in with Acme ID" in label

        # Replayed: in the same browser (its pending sign-in is used up), in another, and against a new sign-in.
        assert landing(browser, callback).startswith("/staff/login?sso_error=refused")
        assert landing(httpx.Client(), callback).startswith("/staff/login?sso_error=refused")
        other = httpx.Client()
        assert start(other, appliance).status_code == 303
        assert landing(other, callback).startswith("/staff/login?sso_error=refused")  # another nonce
        assert signed_in_as(other, rig) is None

        # Tampered (the role changed after signing).
        fresh = httpx.Client()
        callback, _ = sso_sign_in_until_callback(fresh, rig, "siti")
        assert landing(fresh, tampered(callback)).startswith("/staff/login?sso_error=refused")
        assert signed_in_as(fresh, rig) is None

        # Signed by the hub's own key but expired, or for another branch: refused by the appliance.
        for kwargs in ({"age": 200}, {"branch": "bdg-dago"}):
            forged = httpx.Client()
            assert start(forged, appliance).status_code == 303
            token = rig.assertion(rig.pending_nonce(), **kwargs)
            where = landing(forged, f"{appliance.base_url}/staff/sso/callback?assertion={token}")
            assert where.startswith("/staff/login?sso_error=refused"), kwargs
            assert signed_in_as(forged, rig) is None
        refusals = [detail for actor, action, detail in rig.staff_audit() if action == "login_failed"]
        for reason in ("expired", "wrong_branch", "signature"):
            assert any(reason in d for d in refusals), (reason, refusals)

        # Unknown at the branch (an IdP user without a central staff account), and disabled at HQ.
        for sub, code in (("dewi", "unknown_account"), ("rudi", "disabled_account")):
            someone = httpx.Client()
            _, led_to = sso_sign_in(someone, appliance, sub)
            assert led_to.startswith(f"/staff/login?sso_error={code}"), led_to
            assert signed_in_as(someone, rig) is None
            shown = someone.get(f"{appliance.base_url}{led_to}", cookies={"qms_lang": "en"}).text
            assert "Ask your branch admin" in shown
        trail = rig.console.get("/admin/audit", params={"action": "staff_sso.refused"}).text
        assert "dewi" in trail
        assert "rudi" in trail

        # The hub down: the page says so, local passwords keep working.
        rig.server.should_exit = True
        wait_until(lambda: not _answers(rig.hub), what="the hub to stop")
        offline = httpx.Client(cookies={"qms_lang": "en"})
        led = start(offline, appliance)
        assert led.headers["location"].startswith("/staff/login?sso_error=offline")
        assert "The hub cannot be reached now" in offline.get(f"{appliance.base_url}{led.headers['location']}").text
        assert "The hub cannot be reached now" in offline.get(f"{appliance.base_url}/staff/login").text  # it remembers
        credentials = {"username": "agent1", "password": DEMO_PASSWORD}
        local = offline.post(f"{appliance.base_url}/staff/login", data=credentials, follow_redirects=False)
        assert local.status_code == 303, local.text


def sso_sign_in_until_callback(browser: httpx.Client, rig: Rig, sub: str) -> tuple[str, None]:
    """Through hub and IdP, stopping before the appliance's callback (to change what it carries)."""
    from tests.cloud.identity.staff_sso_rig import authorize

    to_hub = start(browser, rig.appliance)
    to_idp = browser.get(to_hub.headers["location"], follow_redirects=False, timeout=15)
    back = browser.get(authorize(to_idp.headers["location"], sub), follow_redirects=False, timeout=15)
    return str(back.headers["location"]), None


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/api/v1/health", timeout=2)
    except httpx.HTTPError:
        return False
    return True
