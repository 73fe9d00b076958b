#!/usr/bin/env python3
"""Kiosk / display-board launcher: find the appliance by mDNS, apply the fleet config, run the browser, watch it.

Runs on the board (Raspberry Pi OS / Debian) under systemd (`qms-launcher.service`), standard library only plus
`python3-zeroconf` (or `avahi-browse` as a fallback). Steps:

1. find `_qms._tcp.local.` (the branch's appliance; `QMS_BRANCH` picks one when several answer);
2. fetch this device's config (`GET /api/v1/devices/me/config`), apply it (page, area, language, zoom), acknowledge
   it; when the page does not come up, report the failure and roll back to the last good version;
3. start Chromium in kiosk mode on the page; the watchdog restarts it when it dies and rediscovers the appliance
   when its health check fails three times in a row (the appliance may have a new address).

On a kiosk, `--print-relay 127.0.0.1:9111` (`QMS_PRINT_RELAY`) also runs the **print relay**: a small HTTP server on
the kiosk computer that takes a ready ESC/POS job from the kiosk page (`POST /print`, JSON `{"job": base64}` or raw
`application/octet-stream`) and delivers it to this kiosk's printer (`--printer` / `QMS_PRINTER`: `tcp://host:9100`
or `file:///dev/usb/lp0`). It is how an offline ticket is still printed while the appliance, the only other thing
that talks to printers, is down. Only the appliance's origin may use it (CORS, answered preflights).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVICE = "_qms._tcp.local."
HEALTH_EVERY = 10.0
HEALTH_FAILURES = 3
STATE_FILE = Path(os.environ.get("QMS_STATE_DIR", "/var/lib/qms-launcher")) / "last-good.json"
TOKEN_FILE = STATE_FILE.with_name("token")  # the renewed device token (newer than the env file's)
RENEW_BEFORE_SECONDS = 3 * 24 * 3600  # device tokens live 7 days: renew in the last 3
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
# With the print relay: let the appliance's page (a LAN, plain-http origin) reach the relay on 127.0.0.1. Chromium's
# Local Network Access checks block requests from a "public" (and, in later milestones, any less private) non-secure
# page to loopback, with no permission prompt a kiosk could answer. Chromium reads only the last --disable-features.
LOCAL_NETWORK_ARGS = ["--disable-features=LocalNetworkAccessChecks"]
RELAY_MAX_BYTES = 256 * 1024  # one ticket job is ~6 KB (80 mm, logo raster); far more is not a ticket
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


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


def token_expiry(token: str) -> float | None:
    """The `exp` of a device token (read, not verified: the appliance verifies), None when unreadable."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def newest_token(given: str) -> str:
    """The token this device should use: the renewed one in the state dir when it outlives the configured one."""
    try:
        saved = TOKEN_FILE.read_text().strip()
    except OSError:
        return given
    return saved if (token_expiry(saved) or 0) > (token_expiry(given) or 0) else given


def renew_token(appliance: Appliance, token: str) -> str:
    """A fresh token when this one is in its last days (kept in the state dir, mode 0600); else the same one."""
    expiry = token_expiry(token)
    if expiry is None or expiry - time.time() > RENEW_BEFORE_SECONDS:
        return token
    try:
        fresh = str(call(appliance, "/auth/refresh", token, {})["access_token"])
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        print(f"token renewal failed ({exc}); keeping the current token", file=sys.stderr, flush=True)
        return token
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(fresh + "\n")
    return fresh


def browser_page(url: str, role: str, token: str) -> str:
    """What the browser opens: a kiosk page also gets its device token (in the fragment: never sent to a server)."""
    return f"{url}#token={token}" if role == "kiosk" else url


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


def browser_command(url: str, *, relay: bool = False) -> list[str]:
    """Chromium in kiosk mode on the page (allowed to reach the local print relay when there is one)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    return [browser, *BROWSER_ARGS, *(LOCAL_NETWORK_ARGS if relay else []), url]


# ---- print relay ----------------------------------------------------------------------------------------------


class RelayError(Exception):
    """A job that did not reach the printer: `offline`, `timeout` or `error`, with a human detail."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class PrinterTarget:
    """The kiosk's printer as the relay reaches it: `tcp://host:port` or `file:///dev/usb/lp0`."""

    url: str
    host: str = ""
    port: int = 9100
    path: str | None = None
    timeout: float = 3.0

    @classmethod
    def parse(cls, url: str, timeout: float = 3.0) -> PrinterTarget:
        """`tcp://host[:port]` (port 9100 by default) or `file:///absolute/device/path`; ValueError otherwise."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "tcp" and parts.hostname:
            return cls(url, host=parts.hostname, port=parts.port or 9100, timeout=timeout)
        if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
            return cls(url, path=parts.path, timeout=timeout)
        raise ValueError(f"printer must be tcp://host:9100 or file:///dev/usb/lp0, not {url!r}")

    def deliver(self, data: bytes) -> None:
        """Send the job as it is (no status query: a relay copies bytes); raises RelayError."""
        if self.path is not None:
            _write_device(self.path, data, self.timeout)
            return
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as conn:
                conn.sendall(data)
        except TimeoutError as exc:
            raise RelayError("timeout", f"{self.host}:{self.port} did not take the job in time") from exc
        except OSError as exc:
            raise RelayError("offline", f"{self.host}:{self.port}: {exc.strerror or exc}") from exc


def _write_device(path: str, data: bytes, timeout: float) -> None:
    """Write to a printer device file without blocking past the timeout (the same rules as the appliance's)."""
    gone = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EPIPE}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except PermissionError as exc:
        raise RelayError("error", f"{path}: permission denied (add the launcher's user to the group `lp`)") from exc
    except OSError as exc:
        raise RelayError("offline" if exc.errno in gone else "error", f"{path}: {exc.strerror or exc}") from exc
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        view, deadline = memoryview(data), time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RelayError("timeout", f"{path} took no more data in time ({len(view)} bytes left)")
            if poller.poll(left * 1000):
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue
                except OSError as exc:
                    kind = "offline" if exc.errno in gone else "error"
                    raise RelayError(kind, f"{path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def origin_of(base: str) -> str:
    """The browser's `Origin` for a base URL (without a default port: `http://host:80` is sent as `http://host`)."""
    parts = urllib.parse.urlsplit(base)
    default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    return f"{parts.scheme}://{parts.netloc.lower().removesuffix(default)}"


@dataclass
class PrintRelay:
    """The relay's state: the printer, the origins allowed to print, one job at a time."""

    printer: PrinterTarget
    origins: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, *bases: str) -> None:
        """Replace the allowed origins (the launcher calls this with the appliance it found)."""
        self.origins = {origin_of(b) for b in bases if b}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Start the HTTP server in a daemon thread; returns it (its `server_address` has the real port)."""
        relay = self

        class Handler(RelayHandler):
            state = relay

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="print-relay", daemon=True).start()
        return server


class RelayHandler(BaseHTTPRequestHandler):
    """`POST /print`, `GET /health`, CORS preflights for the allowed origins only."""

    state: PrintRelay
    server_version = "qms-print-relay"

    def do_OPTIONS(self) -> None:
        """A CORS (and Private Network Access) preflight: allowed for the appliance's origin only."""
        if not self._checked(require_origin=True):
            return
        self._reply(204, None, {"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600",
                                "Access-Control-Allow-Headers": "Content-Type",
                                "Access-Control-Allow-Private-Network": "true"})  # fmt: skip

    def do_GET(self) -> None:
        """`GET /health`: the relay is up and which printer it serves (the printer itself is not probed)."""
        if not self._checked():
            return
        if self.path != "/health":
            self._reply(404, {"ok": False, "error": "not_found", "detail": "GET /health or POST /print"})
            return
        self._reply(200, {"ok": True, "printer": self.state.printer.url})

    def do_POST(self) -> None:
        """`POST /print`: the job's bytes to the printer; 200 {ok:true}, 4xx for bad input, 502 when not printed."""
        if not self._checked():
            return
        if self.path != "/print":
            self._reply(404, {"ok": False, "error": "not_found", "detail": "GET /health or POST /print"})
            return
        try:
            job = self._job()
        except RelayError as exc:
            status = 413 if exc.kind == "too_large" else 400
            self._reply(status, {"ok": False, "error": exc.kind, "detail": exc.detail})
            return
        started = time.monotonic()
        try:
            with self.state.lock:  # one job at a time: a device file or a printer's port takes no interleaving
                self.state.printer.deliver(job)
        except RelayError as exc:
            self.log_message("print failed: %s", exc)
            self._reply(502, {"ok": False, "error": exc.kind, "detail": exc.detail})
            return
        self.log_message("printed %d bytes in %.0f ms", len(job), (time.monotonic() - started) * 1000)
        self._reply(200, {"ok": True, "bytes": len(job)})

    def _job(self) -> bytes:
        """The job's bytes from the body: JSON {"job": base64} or application/octet-stream."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            raise RelayError("bad_request", "Content-Length is required")
        if int(length) > RELAY_MAX_BYTES:
            if int(length) <= 4 * RELAY_MAX_BYTES:  # read it, so that the client gets to read the answer
                self.rfile.read(int(length))
            raise RelayError("too_large", f"a job is at most {RELAY_MAX_BYTES} bytes")
        body = self.rfile.read(int(length))
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/octet-stream":
            data = body
        elif kind == "application/json":
            try:
                encoded = json.loads(body)["job"]
                data = base64.b64decode(encoded, validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise RelayError("bad_request", f'the body must be {{"job": "<base64>"}}: {exc}') from exc
        else:
            raise RelayError("bad_request", "Content-Type must be application/json or application/octet-stream")
        if not data:
            raise RelayError("bad_request", "the job is empty")
        return data

    def _checked(self, *, require_origin: bool = False) -> bool:
        """Host must be a loopback name (no DNS rebinding); a browser's Origin must be allowed. Replies if not."""
        if urllib.parse.urlsplit(f"//{self.headers.get('Host', '')}").hostname not in LOOPBACK_NAMES:
            self._reply(403, {"ok": False, "error": "host_not_allowed", "detail": "use http://127.0.0.1:<port>"})
            return False
        origin = self.headers.get("Origin")
        if (origin is None and require_origin) or (origin is not None and origin not in self.state.origins):
            self._reply(403, {"ok": False, "error": "origin_not_allowed",
                              "detail": f"{origin} may not print here"})  # fmt: skip
            return False
        return True

    def _reply(self, status: int, body: dict[str, object] | None, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        origin = self.headers.get("Origin")
        if origin is not None and origin in self.state.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
        self.send_header("Vary", "Origin")
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """One line per request on stderr (journald keeps it)."""
        print(f"print-relay: {format % args}", file=sys.stderr, flush=True)


def start_relay(args: argparse.Namespace) -> PrintRelay | None:
    """The relay of `--print-relay HOST:PORT` (None without it); prints where it listens as one JSON line."""
    if not args.print_relay:
        return None
    if not args.printer:
        raise SystemExit("--print-relay needs --printer (or QMS_PRINTER): tcp://host:9100 or file:///dev/usb/lp0")
    host, _, port = args.print_relay.rpartition(":")
    if host.strip("[]") not in LOOPBACK_NAMES or not port.isdigit():
        raise SystemExit("--print-relay must be 127.0.0.1:PORT (the relay is for this computer only)")
    relay = PrintRelay(PrinterTarget.parse(args.printer, args.printer_timeout))
    relay.allow(*args.relay_origin)
    server = relay.serve(host.strip("[]"), int(port))
    bound = server.server_address[1]
    print(json.dumps({"relay": f"http://127.0.0.1:{bound}", "printer": args.printer}), flush=True)
    return relay


def run(args: argparse.Namespace) -> int:
    """Discover, configure, launch, watch; returns only with --once / --dry-run."""
    relay = start_relay(args)
    if args.relay_only:
        if relay is None:
            raise SystemExit("--relay-only needs --print-relay")
        threading.Event().wait()  # the relay's thread serves until the process is stopped
    args.token = newest_token(args.token)
    while True:
        appliance = discover(args.branch, args.discover_seconds, lambda a: token_accepted(a, args.token))
        if appliance is None:
            print("appliance not found by mDNS; retrying", file=sys.stderr, flush=True)
            if args.once:
                return 1
            continue
        args.token = renew_token(appliance, args.token)
        url = apply_config(appliance, args.token, args.role, args.area)
        if relay is not None:
            relay.allow(appliance.base, *args.relay_origin)
        print(json.dumps({"appliance": appliance.base, "branch": appliance.branch, "url": url}), flush=True)
        if args.dry_run:
            return 0
        page = browser_page(url, args.role, args.token)
        browser = subprocess.Popen(browser_command(page, relay=relay is not None))  # noqa: S603 - our own argv
        failures = 0
        while failures < HEALTH_FAILURES:
            time.sleep(HEALTH_EVERY)
            args.token = renew_token(appliance, args.token)
            if browser.poll() is not None:  # crashed or closed: start it again on the same page
                page = browser_page(url, args.role, args.token)
                browser = subprocess.Popen(browser_command(page, relay=relay is not None))  # noqa: S603 - our own argv
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
    parser.add_argument(
        "--print-relay",
        default=os.environ.get("QMS_PRINT_RELAY") or None,
        metavar="127.0.0.1:PORT",
        help="run the kiosk's print relay on this address (offline tickets)",
    )
    parser.add_argument(
        "--printer",
        default=os.environ.get("QMS_PRINTER") or None,
        help="the relay's printer: tcp://host:9100 or file:///dev/usb/lp0",
    )
    parser.add_argument("--printer-timeout", type=float, default=3.0, help="seconds the printer may take")
    parser.add_argument(
        "--relay-origin",
        action="append",
        default=[o for o in os.environ.get("QMS_RELAY_ORIGIN", "").split(",") if o],
        help="another origin allowed to print (the appliance found is always allowed)",
    )
    parser.add_argument("--relay-only", action="store_true", help="run only the print relay (no browser)")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
