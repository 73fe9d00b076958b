#!/usr/bin/env python3
"""Kiosk / display-board launcher: find the appliance by mDNS, apply the fleet config, run the browser, watch it.

Runs on the board (Raspberry Pi OS / Debian) under systemd (`qms-launcher.service`), standard library only plus
`python3-zeroconf` (or `avahi-browse` as a fallback). Steps:

1. find `_qms._tcp.local.` (the branch's appliance; `QMS_BRANCH` picks one when several answer);
2. fetch this device's config (`GET /api/v1/devices/me/config`), apply it (page, area, language, zoom), acknowledge
   it; when the page does not come up, report the failure and roll back to the last good version;
3. start Chromium in kiosk mode on the page; the watchdog restarts it when it dies and rediscovers the appliance
   when its health check fails three times in a row (the appliance may have a new address).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SERVICE = "_qms._tcp.local."
HEALTH_EVERY = 10.0
HEALTH_FAILURES = 3
STATE_FILE = Path(os.environ.get("QMS_STATE_DIR", "/var/lib/qms-launcher")) / "last-good.json"
BROWSER_ARGS = [
    "--kiosk",
    "--noerrdialogs",
    "--disable-infobars",
    "--no-first-run",
    "--check-for-update-interval=31536000",
    "--disable-session-crashed-bubble",
    "--overscroll-history-navigation=0",
    "--disable-pinch",
]


@dataclass
class Appliance:
    """Where the branch's appliance answered."""

    host: str
    port: int
    api: str
    branch: str

    @property
    def base(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"


def discover(branch: str | None, seconds: float, accepts: Callable[[Appliance], bool]) -> Appliance | None:
    """The appliance advertising `_qms._tcp` (of `branch`, when given) that accepts this board's token.

    Several appliances may answer on one LAN (neighbouring branches, a test bench): the one that knows this
    device is ours. Uses python3-zeroconf, or avahi-browse when it is not installed.
    """
    try:
        from zeroconf import ServiceBrowser, Zeroconf
    except ImportError:
        return next((a for a in _discover_avahi(branch) if accepts(a)), None)
    zc = Zeroconf()
    found: list[str] = []
    rejected: set[str] = set()
    browser = ServiceBrowser(zc, SERVICE, handlers=[lambda **kw: found.append(kw["name"])])
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name in list(found):  # noqa: PERF101 - a copy: the browser thread appends
                if name in rejected:
                    continue
                info = zc.get_service_info(SERVICE, name, timeout=2000)
                if info is None or not info.parsed_addresses():
                    continue
                props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
                candidate = Appliance(info.parsed_addresses()[0], info.port or 80, props.get("api", "/api/v1"),
                                      props.get("branch", ""))  # fmt: skip
                if (branch and candidate.branch != branch) or not accepts(candidate):
                    rejected.add(name)
                    continue
                return candidate
            time.sleep(0.2)
        return None
    finally:
        browser.cancel()
        zc.close()


def _discover_avahi(branch: str | None) -> list[Appliance]:
    tool = shutil.which("avahi-browse")
    if tool is None:
        return []
    argv = [tool, "-rptk", SERVICE.removesuffix(".local.")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout  # noqa: S603 - fixed argv
    found = []
    for line in out.splitlines():
        fields = line.split(";")
        if len(fields) < 10 or fields[0] != "=" or fields[2] != "IPv4":  # noqa: PLR2004 - avahi's parsable format
            continue
        txt = dict(part.strip('"').split("=", 1) for part in fields[9].split() if "=" in part)
        if branch and txt.get("branch") != branch:
            continue
        found.append(Appliance(fields[7], int(fields[8]), txt.get("api", "/api/v1"), txt.get("branch", "")))
    return found


def token_accepted(appliance: Appliance, token: str) -> bool:
    """Whether this appliance knows the board's device token."""
    try:
        call(appliance, "/devices/me/config", token)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


def call(appliance: Appliance, path: str, token: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """A JSON request to the appliance's API with the device token."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{appliance.base}{appliance.api}{path}", data=data, headers=headers)  # noqa: S310 - LAN http
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the appliance is plain http on the LAN
        return json.loads(response.read())  # type: ignore[no-any-return]


DEFAULT_PAGES = {"kiosk": "/kiosk", "display": "/board"}
PAGE_PARAMS = ("area", "lang", "key", "audio")  # config fields passed on to the page


def page_url(appliance: Appliance, config: dict[str, object], role: str, area: str) -> str:
    """The page this board shows: the config's `page` (kiosk `/kiosk`, display `/board`) with area, lang, key, audio.

    A display board's `key` is the signature `qms-edge board url` prints (the board page refuses unsigned URLs).
    """
    page = str(config.get("page") or DEFAULT_PAGES[role])
    if not page.startswith("/"):
        raise ValueError(f"page must be a path on the appliance, not {page!r}")
    params = {"area": area, **{k: config[k] for k in PAGE_PARAMS if config.get(k) not in (None, "")}}
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{appliance.base}{page}{'&' if '?' in page else '?'}{query}" if query else f"{appliance.base}{page}"


def healthy(url: str) -> bool:
    """Whether a URL answers 2xx within 5 s."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - LAN http
            return 200 <= response.status < 300  # noqa: PLR2004 - HTTP success range
    except (urllib.error.URLError, OSError):
        return False


def _checked_url(appliance: Appliance, config: dict[str, object], role: str, area: str) -> str:
    url = page_url(appliance, config, role, area)
    if not healthy(url):
        raise RuntimeError(f"{url} does not answer")
    return url


def apply_config(appliance: Appliance, token: str, role: str, area: str) -> str:
    """Fetch the newest config, check its page answers, acknowledge; on failure roll back to the last good one."""
    newest = call(appliance, "/devices/me/config", token)
    version = int(newest["version"])  # type: ignore[call-overload]
    try:
        url = _checked_url(appliance, newest["config"], role, area)  # type: ignore[arg-type]
    except (ValueError, RuntimeError) as exc:
        if version:
            answer = call(appliance, "/devices/me/config/ack", token, {"version": version, "ok": False,
                                                                        "error": str(exc)[:400]})  # fmt: skip
            good = int(answer["run_version"])  # type: ignore[call-overload]
            fallback = call(appliance, f"/devices/me/config?version={good}", token) if good else {"config": {}}
            return page_url(appliance, fallback["config"], role, area)  # type: ignore[arg-type]
        raise
    if version:
        call(appliance, "/devices/me/config/ack", token, {"version": version, "ok": True})
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"version": version, "url": url}))
    return url


def browser_command(url: str) -> list[str]:
    """Chromium in kiosk mode on the page."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    return [browser, *BROWSER_ARGS, url]


def run(args: argparse.Namespace) -> int:
    """Discover, configure, launch, watch; returns only with --once / --dry-run."""
    while True:
        appliance = discover(args.branch, args.discover_seconds, lambda a: token_accepted(a, args.token))
        if appliance is None:
            print("appliance not found by mDNS; retrying", file=sys.stderr, flush=True)
            if args.once:
                return 1
            continue
        url = apply_config(appliance, args.token, args.role, args.area)
        print(json.dumps({"appliance": appliance.base, "branch": appliance.branch, "url": url}), flush=True)
        if args.dry_run:
            return 0
        browser = subprocess.Popen(browser_command(url))  # noqa: S603 - our own argv
        failures = 0
        while failures < HEALTH_FAILURES:
            time.sleep(HEALTH_EVERY)
            if browser.poll() is not None:  # crashed or closed: start it again on the same page
                browser = subprocess.Popen(browser_command(url))  # noqa: S603 - our own argv
            failures = 0 if healthy(f"{appliance.base}{appliance.api}/health") else failures + 1
        browser.terminate()  # the appliance is gone or moved: rediscover, reconfigure, relaunch
        browser.wait(timeout=10)


def main() -> int:
    """Command line (defaults from the environment file of the systemd unit)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["kiosk", "display"], default=os.environ.get("QMS_ROLE", "display"))
    parser.add_argument("--area", default=os.environ.get("QMS_AREA", ""))
    parser.add_argument("--branch", default=os.environ.get("QMS_BRANCH") or None)
    parser.add_argument("--token", default=os.environ.get("QMS_DEVICE_TOKEN", ""))
    parser.add_argument("--discover-seconds", type=float, default=10.0)
    parser.add_argument("--dry-run", action="store_true", help="print what would be opened, start no browser")
    parser.add_argument("--once", action="store_true", help="give up when the appliance is not found")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
