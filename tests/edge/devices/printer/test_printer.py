"""The ticket layout, its ESC/POS encoding, delivery to a (recording) TCP 9100 printer or a USB device file, and
error translation."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from edge.devices.printer.escpos import PrinterAddress, PrinterError, encode, send
from edge.devices.printer.layout import COLUMNS, Qr, Text, TicketPrint, ticket_layout
from edge.devices.printer.preview import render_png
from tests.edge.devices.printer.sink import PrinterSink
from tests.support.appliance import free_port

TICKET = TicketPrint(
    branch_name="Bank Demo - KCP Sudirman",
    ticket_number="B012",
    service_name="Layanan Nasabah",
    issued_at="24/11/2026 09:05",
    status_url="http://10.0.0.2:8080/t/abc.def",
    position=3,
    eta_seconds=480,
    logo_text="BANK DEMO",
    phone="0812****890",
)


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_layout_fits_the_paper_and_carries_number_qr_and_facts(paper_mm: int) -> None:
    blocks = ticket_layout(TICKET, paper_mm)
    texts = [b for b in blocks if isinstance(b, Text)]
    assert all(len(t.text) * t.size <= COLUMNS[paper_mm] for t in texts), [t.text for t in texts]
    assert any(t.text == "B012" and t.size >= 3 for t in texts)
    assert [b.data for b in blocks if isinstance(b, Qr)] == [TICKET.status_url]
    lines = "\n".join(t.text for t in texts)
    assert "Antrean di depan Anda" in lines
    assert "sekitar 8 menit" in lines
    assert "0812****890" in lines


def test_english_ticket_and_offline_banner() -> None:
    blocks = ticket_layout(TicketPrint(**{**TICKET.__dict__, "lang": "en", "offline": True}), 80)
    lines = [b.text for b in blocks if isinstance(b, Text)]
    assert "YOUR QUEUE NUMBER" in lines
    assert any(line.startswith("OFFLINE TICKET") for line in lines)


def test_encoding_has_native_qr_cut_and_code_page_characters() -> None:
    data = encode(ticket_layout(TicketPrint(**{**TICKET.__dict__, "service_name": "Café"}), 58), 58)
    assert b"B012" in data
    assert b"\x1d(k" in data  # GS ( k: native QR
    assert b"http://10.0.0.2:8080/t/abc.def" in data
    assert b"Caf\x82" in data  # é in code page 437, not UTF-8 bytes the printer would garble
    assert data.endswith(b"\x1dV\x00")  # full cut


def test_send_delivers_the_bytes_to_a_tcp_9100_printer() -> None:
    with PrinterSink() as sink:
        send(PrinterAddress("127.0.0.1", sink.port), b"hello\n")
        (job,) = sink.wait_for_jobs(1)
    assert job == b"\x10\x04\x04hello\n"  # status query, then the ticket


def test_printer_offline_and_paper_out_are_translated() -> None:
    with pytest.raises(PrinterError) as offline:
        send(PrinterAddress("127.0.0.1", free_port(), timeout_seconds=1), b"x")
    assert offline.value.kind == "offline"
    with PrinterSink(paper_out=True) as sink, pytest.raises(PrinterError) as paper:
        send(PrinterAddress("127.0.0.1", sink.port), b"never printed")
    assert paper.value.kind == "paper_out"
    assert all(b"never printed" not in job for job in sink.jobs)


def test_a_printer_that_accepts_but_never_reads_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(PrinterError) as info:
            send(PrinterAddress("127.0.0.1", port, timeout_seconds=0.5), b"x" * 50_000_000)
    assert info.value.kind == "timeout"


def test_png_preview_is_drawn_from_the_same_layout() -> None:
    png = render_png(ticket_layout(TICKET, 80), 80)
    assert png.startswith(b"\x89PNG")
    assert len(png) > 5000


# ---- USB printers: the usblp character device (a FIFO stands in; a regular file is not a printer) ---------------


def _read_all(fd: int) -> bytes:
    """Everything in a non-blocking FIFO whose writer has closed."""
    data = bytearray()
    while chunk := os.read(fd, 65536):
        data += chunk
    return bytes(data)


def test_send_writes_the_ticket_to_a_device_file(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    os.mkfifo(device)
    reader = os.open(device, os.O_RDONLY | os.O_NONBLOCK)  # the "printer" holds its end open, as usblp does
    try:
        job = encode(ticket_layout(TICKET, 80), 80)
        send(PrinterAddress(device=str(device)), job)
        received = _read_all(reader)
    finally:
        os.close(reader)
    assert received == job  # no status query on a device file: the ticket only
    assert b"B012" in received
    assert b"\x1d(k" in received


def test_device_file_errors_are_translated(tmp_path: Path) -> None:
    with pytest.raises(PrinterError) as missing:
        send(PrinterAddress(device=str(tmp_path / "usb" / "lp7")), b"x")
    assert missing.value.kind == "offline"
    assert not (tmp_path / "usb").exists()  # never created: a missing printer is not a file to make
    unplugged = tmp_path / "lp1"
    os.mkfifo(unplugged)  # no reader: the kernel answers ENXIO, as for a device with no printer behind it
    with pytest.raises(PrinterError) as no_reader:
        send(PrinterAddress(device=str(unplugged)), b"x")
    assert no_reader.value.kind == "offline"
    # A read-only sysfs attribute refuses writers even as root: what an lp device without group rights does.
    with pytest.raises(PrinterError) as denied:
        send(PrinterAddress(device="/sys/kernel/uevent_seqnum"), b"x")
    assert denied.value.kind == "error"
    assert "permission denied" in denied.value.detail


def test_a_device_that_stops_taking_data_times_out(tmp_path: Path) -> None:
    device = tmp_path / "lp2"
    os.mkfifo(device)
    reader = os.open(device, os.O_RDONLY | os.O_NONBLOCK)  # open, never read: the pipe fills up like a stalled usblp
    try:
        started = time.monotonic()
        with pytest.raises(PrinterError) as info:
            send(PrinterAddress(device=str(device), timeout_seconds=0.5), b"x" * 1_000_000)
        assert time.monotonic() - started < 3
    finally:
        os.close(reader)
    assert info.value.kind == "timeout"


def raster_headers(data: bytes) -> list[tuple[int, int]]:
    """(width in bytes, height in dots) of every `GS v 0` raster image in an ESC/POS job."""
    found, at = [], data.find(b"\x1dv0")
    while at >= 0:
        header = data[at + 4 : at + 8]
        found.append((header[0] + 256 * header[1], header[2] + 256 * header[3]))
        at = data.find(b"\x1dv0", at + 8)
    return found


def logo_file(path: Path, size: tuple[int, int]) -> Path:
    """A logo with a transparent background and a dark mark, like a branch's PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((size[0] // 4, 0, 3 * size[0] // 4, size[1] - 1), fill=(10, 60, 160, 255))
    image.save(path)
    return path


@pytest.mark.parametrize(("paper_mm", "size"), [(80, (1200, 300)), (58, (1200, 300)), (80, (120, 40))])
def test_a_logo_image_is_printed_as_a_raster_that_fits_the_roll(tmp_path: Path, paper_mm: int,
                                                               size: tuple[int, int]) -> None:  # fmt: skip
    logo = logo_file(tmp_path / "logo.png", size)
    ticket = TicketPrint(**{**vars(TICKET), "logo_image": str(logo)})
    data = encode(ticket_layout(ticket, paper_mm), paper_mm)
    ((width_bytes, height),) = raster_headers(data)
    assert width_bytes * 8 == {58: 384, 80: 576}[paper_mm]  # centred on a full-width strip
    expected = min(round(size[1] * {58: 384, 80: 576}[paper_mm] / size[0]), 160)  # fit width, at most 2 cm high
    assert abs(height - expected) <= 1
    assert b"B012" in data


def test_a_missing_or_broken_logo_falls_back_to_the_text_banner(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    for path in (tmp_path / "missing.png", broken):
        data = encode(ticket_layout(TicketPrint(**{**vars(TICKET), "logo_image": str(path)}), 80), 80)
        assert raster_headers(data) == [(72, 72)]  # the BANK DEMO banner (576 x 72 dots)
        assert b"B012" in data
    assert caplog.text.count("cannot be printed") == 2
    no_text = TicketPrint(**{**vars(TICKET), "logo_text": None, "logo_image": str(broken)})
    assert raster_headers(encode(ticket_layout(no_text, 80), 80)) == []  # nothing to fall back to: no logo
