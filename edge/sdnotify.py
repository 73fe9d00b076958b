"""systemd's notify protocol for `qms-edge serve` under `Type=notify` + `WatchdogSec=` (the appliance image's unit).

READY=1 goes out once `/api/v1/health` answers on the appliance's own port, and WATCHDOG=1 every half watchdog
interval for as long as it keeps answering: a hung event loop or writer stops the pings and systemd restarts the
service. The protocol is one datagram to `$NOTIFY_SOCKET` (no library needed); without that variable (a terminal,
the tests) nothing starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import httpx

log = logging.getLogger("qms.sdnotify")


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send one notify message; False when not run by systemd with a notify socket."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # '@' names an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of `WATCHDOG_USEC`), or None when no watchdog is asked for this process."""
    env = env if env is not None else dict(os.environ)
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def start(port: int, host: str = "127.0.0.1", *, tls: bool = False) -> threading.Thread | None:
    """Start the readiness + watchdog pinger for the app on `host:port`, when systemd asked for notifications
    (`tls`: the app serves HTTPS; its own loopback probe does not check the certificate's names)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    url = f"{'https' if tls else 'http'}://{'[' + host + ']' if ':' in host else host}:{port}/api/v1/health"
    thread = threading.Thread(target=_run, args=(url, watchdog_interval()), name="sd-notify", daemon=True)
    thread.start()
    return thread


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).is_success
    except httpx.HTTPError:
        return False


def _run(url: str, interval: float | None) -> None:
    stop = threading.Event()
    # A self-probe on loopback: the certificate names the appliance's mDNS name and LAN address, not 127.0.0.1.
    with httpx.Client(timeout=10.0, verify=False) as client:  # noqa: S501  # nosec B501  # nosemgrep
        while not _healthy(client, url):
            stop.wait(0.5)  # startup: poll until the app answers; systemd's TimeoutStartSec bounds this
        notify("READY=1\nSTATUS=serving")
        if interval is None:
            return
        while not stop.wait(interval):
            if _healthy(client, url):
                notify("WATCHDOG=1")
            else:
                log.warning("health check failed: no watchdog ping (systemd restarts the service if it persists)")
