"""Kiosk printers as devices of HQ's fleet: after a print, each printer is in the heartbeat's device list as
`printer-<kiosk>`, online while its last print went through (a real TCP sink), offline once one failed."""

from __future__ import annotations

from edge.devices.printer.escpos import PrinterAddress
from edge.web.kiosk.printing import PrintDesk
from tests.edge.devices.printer.sink import PrinterSink
from tests.edge.devices.printer.test_printer import TICKET
from tests.support.appliance import free_port


def test_printers_used_since_start_are_fleet_devices() -> None:
    desk = PrintDesk()
    assert desk.fleet() == []  # none used yet: nothing to say
    with PrinterSink() as sink:
        assert desk.print_now(PrinterAddress("127.0.0.1", sink.port), "kiosk-lobby", TICKET)["ok"]
        sink.wait_for_jobs(1)
    gone = PrinterAddress("127.0.0.1", free_port(), timeout_seconds=1.0)  # nothing listens there
    assert not desk.print_now(gone, "kiosk-2", TICKET)["ok"]
    by_id = {d.device_id: d for d in desk.fleet()}
    assert set(by_id) == {"printer-kiosk-lobby", "printer-kiosk-2"}
    assert by_id["printer-kiosk-lobby"].online
    assert by_id["printer-kiosk-lobby"].type == "printer"
    assert by_id["printer-kiosk-lobby"].name == f"127.0.0.1:{sink.port}"
    assert by_id["printer-kiosk-lobby"].last_seen is not None
    assert not by_id["printer-kiosk-2"].online
