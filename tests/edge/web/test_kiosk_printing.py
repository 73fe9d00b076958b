"""Kiosk printing through the real app: offline print jobs in leases, printer config rules, a missing USB printer."""

from __future__ import annotations

import base64
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.edge.devices.printer.sink import PrinterSink
from tests.edge.devices.printer.test_printer import logo_file, raster_headers
from tests.edge.web.conftest import Api, assert_problem

RELAY = "http://127.0.0.1:9111/print"
QR_COMMAND = b"\x1d(k"  # GS ( k: the printer draws the QR code itself
ISSUED = b"24/11/2026 09:05"


def set_kiosk(api: Api, **kiosk: Any) -> Any:
    """PUT /config with kiosk settings changed (the response: 200 or a problem)."""
    doc, etag = api.config()
    doc["kiosk"].update(kiosk)
    return api.put("/config", doc, headers={"If-Match": etag})


def lease(api: Api, service_id: str = "teller") -> dict[str, Any]:
    """A lease of numbers for the calling kiosk (admin is a kiosk role here)."""
    r = api.client.post("/kiosk/api/leases", json={"service_id": service_id}, headers=api.h("admin"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_leased_numbers_carry_ready_print_jobs_with_one_time_slot(api: Api, paper_mm: int) -> None:
    printer = {"host": "10.0.0.9", "paper_mm": paper_mm}
    assert set_kiosk(api, printer=printer, offline_print_url=RELAY, logo_text="BANK DEMO").status_code == 200
    body = lease(api)
    slot = body["print_time_slot"].encode("ascii")
    assert len(slot) == len(ISSUED)
    for number in body["numbers"]:
        assert set(number["print_jobs"]) == {"id", "en"}  # one per branch language: the customer picks offline
        for lang, offline_marker in (("id", b"TIKET OFFLINE"), ("en", b"OFFLINE TICKET")):
            job = base64.b64decode(number["print_jobs"][lang], validate=True)
            assert job.count(slot) == 1
            printed = job.replace(slot, ISSUED)  # what the kiosk does, byte for byte
            assert len(printed) == len(job)
            assert number["ticket_number"].encode() in printed
            assert QR_COMMAND in printed
            assert number["status_url"].encode() in printed  # the QR carries the offline status link
            assert ISSUED in printed
            assert offline_marker in printed
            assert b"Antrean di depan" not in printed  # no position, no ETA: unknown offline
            assert b"\x1dv0" in printed  # the logo as a raster image (GS v 0): the bulk of the job
            assert len(number["print_jobs"][lang]) < 8_000  # README: ~7.6 KB base64 at 80 mm with the logo


def test_no_jobs_without_a_relay_or_a_printer(api: Api) -> None:
    assert set_kiosk(api, printer={"host": "10.0.0.9"}).status_code == 200
    without_relay = lease(api)
    assert set_kiosk(api, printer=None, offline_print_url=RELAY).status_code == 200
    without_printer = lease(api)
    for body in (without_relay, without_printer):
        assert "print_time_slot" not in body
        assert all("print_jobs" not in n for n in body["numbers"])
    assert len(str(without_printer)) < 4_000 * len(without_printer["numbers"])  # QR SVGs only, no jobs


def test_the_kiosk_document_carries_the_relay_url_but_no_printer(api: Api, client: TestClient[Any]) -> None:
    assert set_kiosk(api, printer={"device": "/dev/usb/lp0"}, offline_print_url=RELAY).status_code == 200
    settings = client.get("/kiosk/api/catalog", headers=api.h("admin")).json()["settings"]
    assert settings["offline_print_url"] == RELAY
    assert "printer" not in settings
    assert "/dev/usb" not in str(settings)


@pytest.mark.parametrize(
    ("kiosk", "message"),
    [
        ({"printer": {"paper_mm": 58}}, "kiosk.printer: set exactly one of host"),
        ({"printer": {"host": "10.0.0.9", "device": "/dev/usb/lp0"}}, "kiosk.printer: set exactly one of host"),
        ({"printers": {"kiosk-2": {"host": "10.0.0.9", "device": "/dev/usb/lp1"}}}, "kiosk.printers.kiosk-2: set"),
        ({"printer": {"device": "/dev/../etc/passwd"}}, "printer.device"),
        ({"printer": {"device": "/tmp/lp0"}}, "printer.device"),
        ({"offline_print_url": "http://10.0.0.5:9111/print"}, "offline_print_url"),
        ({"offline_print_url": "https://127.0.0.1/print"}, "offline_print_url"),
    ],
)
def test_printer_and_relay_settings_are_validated(api: Api, kiosk: dict[str, Any], message: str) -> None:
    body = assert_problem(set_kiosk(api, **kiosk), 422, "invalid_config")
    assert any(message in error for error in body["errors"]), body["errors"]


def test_valid_usb_and_network_printers_are_accepted(api: Api) -> None:
    r = set_kiosk(api, printer={"device": "/dev/usb/lp0", "paper_mm": 58}, offline_print_url="http://localhost:9111/",
                  printers={"kiosk-2": {"host": "printer-2.lan", "port": 9101}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert api.config()[0]["kiosk"]["printer"]["device"] == "/dev/usb/lp0"


def test_a_missing_usb_printer_is_offline_in_the_log_the_status_and_the_metrics(
    api: Api, client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    device = "/dev/usb/lp99"  # a USB printer that is unplugged (or was never there)
    assert set_kiosk(api, printer={"device": device}).status_code == 200
    with caplog.at_level(logging.ERROR, logger="qms.printer"):
        r = client.post("/kiosk/api/tickets", json={"service_id": "teller", "request_id": "usb-1"},
                        headers=api.h("admin"))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["print"]["ok"] is False
    assert r.json()["print"]["error"] == "offline"
    number = r.json()["ticket"]["ticket_number"]
    assert any(re.search(rf"printer {device} .* failed for ticket {number}: offline", m) for m in caplog.messages)
    (status,) = client.get("/kiosk/api/printers", headers=api.h("admin")).json()["printers"]
    assert (status["address"], status["ok"], status["error"], status["failed"]) == (device, False, "offline", 1)
    metrics = client.get("/metrics").text
    assert 'qms_kiosk_printer_up{device="admin"} 0.0' in metrics
    assert 'qms_kiosk_print_jobs_total{device="admin",result="failed"} 1.0' in metrics


def test_the_branch_logo_image_is_shown_on_the_kiosk_and_printed(api: Api, client: TestClient[Any],
                                                                 data_dir: Path) -> None:  # fmt: skip
    media = data_dir / "board-media"
    media.mkdir(exist_ok=True)
    logo_file(media / "bank-logo.png", (600, 200))
    with PrinterSink() as sink:
        printer = {"host": "127.0.0.1", "port": sink.port}
        assert set_kiosk(api, printer=printer, logo_image="bank-logo.png", logo_text="BANK").status_code == 200
        r = client.post("/kiosk/api/tickets", json={"service_id": "teller", "request_id": "logo-1"},
                        headers=api.h("admin"))  # fmt: skip
        assert r.json()["print"] == {"ok": True}, r.text
        (job,) = sink.wait_for_jobs(1)
    assert raster_headers(job) == [(72, 160)]  # the image, fitted to 2 cm high: not the 72-dot text banner
    served = client.get("/kiosk/logo")
    assert (served.status_code, served.content) == (200, (media / "bank-logo.png").read_bytes())
    assert '<img class="logo-img" src="/kiosk/logo"' in client.get("/kiosk").text
    (media / "bank-logo.png").unlink()  # removed from the appliance: the text logo again, nothing breaks
    assert client.get("/kiosk/logo").status_code == 404
    page = client.get("/kiosk").text
    assert "logo-img" not in page
    assert '<span class="logo">BANK</span>' in page
    r = set_kiosk(api, logo_image="../token.key")
    assert r.status_code == 422, r.text  # only a plain image file name inside the media folder


def test_a_kiosk_retry_gets_the_same_ticket_and_no_second_paper(api: Api, client: TestClient[Any]) -> None:
    with PrinterSink() as sink:
        assert set_kiosk(api, printer={"host": "127.0.0.1", "port": sink.port}).status_code == 200
        body = {"service_id": "teller", "request_id": "retry-1"}
        first = client.post("/kiosk/api/tickets", json=body, headers=api.h("admin"))
        again = client.post("/kiosk/api/tickets", json=body, headers=api.h("admin"))
        sink.wait_for_jobs(1)
    assert first.json()["print"] == {"ok": True}
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["ticket"]["ticket_id"] == first.json()["ticket"]["ticket_id"]
    assert again.json()["print"]["error"] == "not_reprinted"  # the kiosk shows the QR; one paper only
    assert len(sink.jobs) == 1


def test_the_wait_on_a_service_button_is_the_wait_the_next_ticket_shows(api: Api, client: TestClient[Any]) -> None:
    api.put("/counters/1/presence", {"status": "available"})  # an agent at a teller counter (else no ETA at all)
    for _ in range(13):
        api.enqueue("teller")
    catalog = client.get("/kiosk/api/catalog", headers=api.h("admin")).json()
    teller = next(s for s in catalog["services"] if s["id"] == "teller")
    r = client.post("/kiosk/api/tickets", json={"service_id": "teller", "request_id": "eta-1"}, headers=api.h("admin"))
    eta = r.json()["ticket"]["eta_seconds"]
    assert teller["waiting"] == 13
    assert teller["eta_minutes"] == math.ceil(eta / 60)  # what the ticket screen shows (~N min)
