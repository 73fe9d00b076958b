"""Kiosk printing: which printer a kiosk uses, print after commit (off the writer), and each printer's last status."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.devices.printer.escpos import PrinterAddress, PrinterError, encode, send
from edge.devices.printer.layout import TicketPrint, ticket_layout
from sync.contract_config import Kiosk
from sync.liveness import DeviceState

log = logging.getLogger("qms.printer")

# Where an offline ticket's issue time goes: as wide as "24/11/2026 09:05" and plain ASCII, so that the kiosk can
# overwrite it byte for byte in the ready ESC/POS job without re-encoding anything.
ISSUED_AT_SLOT = "<<ISSUED--TIME>>"


def offline_job(address: PrinterAddress, ticket: TicketPrint) -> str | None:
    """The base64 ESC/POS job of an offline ticket with the time slot in it once (None when it is not: never guess)."""
    data = encode(ticket_layout(ticket, address.paper_mm), address.paper_mm, address.profile)
    if data.count(ISSUED_AT_SLOT.encode("ascii")) != 1:
        log.error("offline print job for %s: the time slot is not in it exactly once", ticket.ticket_number)
        return None
    return base64.b64encode(data).decode("ascii")


@dataclass
class PrinterStatus:
    """What staff see of one kiosk's printer: last outcome, when, and counts."""

    device_id: str
    address: str
    ok: bool = True
    error: str | None = None
    detail: str | None = None
    at: str | None = None
    printed: int = 0
    failed: int = 0


@dataclass
class PrintDesk:
    """Prints tickets for kiosks and remembers each printer's health (in memory; the log keeps the history)."""

    statuses: dict[str, PrinterStatus] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def address_for(kiosk: Kiosk, device_id: str) -> PrinterAddress | None:
        """The printer of a kiosk device: its own, else the branch default, else none."""
        printer = kiosk.printers.get(device_id) or kiosk.printer
        if printer is None:
            return None
        return PrinterAddress(printer.host or "", printer.port, printer.paper_mm, printer.profile,
                              printer.timeout_seconds, printer.device)  # fmt: skip

    def print_now(self, address: PrinterAddress, device_id: str, ticket: TicketPrint) -> dict[str, Any]:
        """Encode and send one ticket (blocking); never raises: the result says what happened."""
        started = time.monotonic()
        try:
            send(address, encode(ticket_layout(ticket, address.paper_mm), address.paper_mm, address.profile))
        except PrinterError as exc:
            log.error(  # noqa: TRY400 - an expected device state, not a bug: no traceback
                "printer %s (kiosk %s) failed for ticket %s: %s", address.target,
                      device_id, ticket.ticket_number, exc)  # fmt: skip
            self._record(device_id, address, exc)
            return {"ok": False, "error": exc.kind, "detail": exc.detail}
        except Exception as exc:  # an encoding bug must not cost the customer their ticket
            log.exception("printing ticket %s on kiosk %s failed", ticket.ticket_number, device_id)
            error = PrinterError("error", str(exc))
            self._record(device_id, address, error)
            return {"ok": False, "error": "error", "detail": str(exc)}
        self._record(device_id, address, None)
        log.info("printed %s on %s in %.0f ms", ticket.ticket_number, address.target,
                 (time.monotonic() - started) * 1000)  # fmt: skip
        return {"ok": True}

    async def print_ticket(self, address: PrinterAddress | None, device_id: str, ticket: TicketPrint) -> dict[str, Any]:
        """Print in a worker thread (the ticket is already committed); no printer configured is not an error."""
        if address is None:
            return {"ok": False, "error": "no_printer", "detail": "no printer is configured for this kiosk"}
        return await asyncio.to_thread(self.print_now, address, device_id, ticket)

    def _record(self, device_id: str, address: PrinterAddress, error: PrinterError | None) -> None:
        with self._lock:
            status = self.statuses.get(device_id)
            target = address.target
            if status is None or status.address != target:
                status = self.statuses[device_id] = PrinterStatus(device_id, target)
            status.ok = error is None
            status.error = error.kind if error else None
            status.detail = error.detail if error else None
            status.at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            if error is None:
                status.printed += 1
            else:
                status.failed += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """Every known kiosk printer's status, for staff and monitoring."""
        with self._lock:
            return [vars(s).copy() for s in sorted(self.statuses.values(), key=lambda s: s.device_id)]

    def fleet(self) -> list[DeviceState]:
        """Each kiosk printer used since the appliance started, as a device in the heartbeat (HQ's device fleet):
        `printer-<kiosk>`, online while its last print succeeded, last seen at that print."""
        return [
            DeviceState(device_id=f"printer-{s['device_id']}"[:64], type="printer", name=s["address"][:120],
                        online=bool(s["ok"]), last_seen=datetime.fromisoformat(s["at"]) if s["at"] else None)
            for s in self.snapshot()
        ]  # fmt: skip


class PrinterCollector(Collector):
    """`/metrics`: each kiosk printer's health (1 = last print succeeded) and its printed/failed counts."""

    def __init__(self, desk: PrintDesk) -> None:
        self.desk = desk

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One sample per kiosk printer that has printed or failed since the appliance started."""
        up = GaugeMetricFamily(
            "qms_kiosk_printer_up", "1 when the kiosk printer's last print succeeded", labels=["device"]
        )
        jobs = CounterMetricFamily(
            "qms_kiosk_print_jobs", "Tickets sent to kiosk printers", labels=["device", "result"]
        )
        for status in self.desk.snapshot():
            up.add_metric([status["device_id"]], 1.0 if status["ok"] else 0.0)
            jobs.add_metric([status["device_id"], "printed"], status["printed"])
            jobs.add_metric([status["device_id"], "failed"], status["failed"])
        yield up
        yield jobs
