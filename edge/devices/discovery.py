"""mDNS (zeroconf): the appliance advertises `_qms._tcp.local.`; `scan` lists appliances and devices on the LAN.

One Zeroconf instance per process: a second one in the same process often misses services (STACK-NOTES).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

log = logging.getLogger("qms.mdns")
SERVICE_TYPE = "_qms._tcp.local."
# What `qms-edge devices scan` looks for: appliances, our own devices, ESPHome boards (buttons, LED displays).
SCAN_TYPES = (SERVICE_TYPE, "_qms-device._tcp.local.", "_esphomelib._tcp.local.")
API_PATH = "/api/v1"

_zeroconf: Zeroconf | None = None
_zc_lock = threading.Lock()


def interfaces() -> list[str] | InterfaceChoice:
    """The addresses to use: `QMS_MDNS_INTERFACES` (comma-separated, e.g. `127.0.0.1`), else all."""
    chosen = [x.strip() for x in os.environ.get("QMS_MDNS_INTERFACES", "").split(",") if x.strip()]
    return chosen or InterfaceChoice.All


def shared_zeroconf() -> Zeroconf:
    """This process's one Zeroconf instance (created on first use)."""
    global _zeroconf  # noqa: PLW0603 - one instance per process is the point
    with _zc_lock:
        if _zeroconf is None:
            _zeroconf = Zeroconf(interfaces=interfaces(), ip_version=IPVersion.V4Only)
        return _zeroconf


def close_shared() -> None:
    """Close the process's Zeroconf instance (at shutdown)."""
    global _zeroconf  # noqa: PLW0603 - see shared_zeroconf
    with _zc_lock:
        if _zeroconf is not None:
            _zeroconf.close()
            _zeroconf = None


def _addresses() -> list[bytes]:
    chosen = interfaces()
    if isinstance(chosen, list):
        return [socket.inet_aton(a) for a in chosen]
    found = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    return [socket.inet_aton(a) for a in sorted(found)] or [socket.inet_aton("127.0.0.1")]


def service_info(*, tenant: str, branch: str, port: int, version: str) -> ServiceInfo:
    """The appliance's advertisement: `<branch>._qms._tcp.local.` with TXT tenant, branch, api, version."""
    return ServiceInfo(
        SERVICE_TYPE,
        f"{branch}.{SERVICE_TYPE}",
        port=port,
        properties={"tenant": tenant, "branch": branch, "api": API_PATH, "version": version},
        server=f"qms-{branch}.local.",
        addresses=_addresses(),
    )


class Advertiser:
    """Registers the appliance in the background (probing takes ~2 s) and unregisters it on stop."""

    def __init__(self, info: ServiceInfo) -> None:
        self.info = info
        self.registered = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Register without delaying the app's startup; a failure is logged, never fatal."""
        self._thread = threading.Thread(target=self._register, name="qms-mdns", daemon=True)
        self._thread.start()

    def _register(self) -> None:
        try:
            shared_zeroconf().register_service(self.info, allow_name_change=True)
            self.registered.set()
            log.info("mDNS: advertising %s on port %s", self.info.name, self.info.port)
        except Exception:
            log.exception("mDNS advertisement failed; devices must be given the appliance's address")

    def stop(self) -> None:
        """Say goodbye on the LAN and close the shared instance."""
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            if self.registered.is_set():
                shared_zeroconf().unregister_service(self.info)
        except Exception:
            log.exception("mDNS: unregister failed")
        finally:
            close_shared()


@dataclass
class Seen:
    """One service found on the LAN."""

    service_type: str
    name: str
    addresses: list[str]
    port: int
    properties: dict[str, str] = field(default_factory=dict)


class _Collector(ServiceListener):
    def __init__(self) -> None:
        self.found: set[tuple[str, str]] = set()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.found.add((type_, name))

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.found.add((type_, name))

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.found.discard((type_, name))


def scan(seconds: float = 3.0, types: tuple[str, ...] = SCAN_TYPES) -> list[Seen]:
    """Browse the LAN for `seconds` and resolve what answered."""
    zc = shared_zeroconf()
    collector = _Collector()
    browser = ServiceBrowser(zc, list(types), listener=collector)
    try:
        time.sleep(seconds)  # browsing is listening for answers for a while
    finally:
        browser.cancel()
    seen = []
    for type_, name in sorted(collector.found):
        info = zc.get_service_info(type_, name, timeout=2000)
        if info is None:
            continue
        props = {k.decode(): (v.decode() if isinstance(v, bytes) else "") for k, v in (info.properties or {}).items()}
        seen.append(Seen(type_, name, info.parsed_addresses(), info.port or 0, props))
    return seen


def mdns_enabled() -> bool:
    """`qms-edge serve` advertises the appliance unless `QMS_MDNS=0` (the opt-out)."""
    return os.environ.get("QMS_MDNS", "1").strip().lower() not in ("0", "false", "no", "off")
