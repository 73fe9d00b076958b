"""The one module that talks to ESC/POS printers: layout -> bytes (python-escpos) -> raw TCP 9100, errors translated.

python-escpos encodes (code pages for non-ASCII text, native QR with `GS ( k`, raster logo); the transport is a plain
socket so that the status query (DLE EOT 4) and every failure map to one `PrinterError` kind at this boundary.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Literal

from escpos.printer import Dummy
from PIL import Image, ImageDraw, ImageFont

from edge.devices.printer.layout import COLUMNS, DOTS, Block, Feed, Logo, Qr, Rule, Text

log = logging.getLogger("qms.printer")

ErrorKind = Literal["offline", "timeout", "paper_out", "error"]
STATUS_QUERY = b"\x10\x04\x04"  # DLE EOT 4: roll paper sensor status
PAPER_END = 0x60  # bits 5+6: roll paper end detected
PAPER_NEAR_END = 0x0C  # bits 2+3: roll paper near end
STATUS_WAIT_SECONDS = 0.3  # printers that answer do so within a few ms; silent ones (or sinks) are not an error


class PrinterError(Exception):
    """A print that did not happen, with a stable kind: offline, timeout, paper_out or error."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class PrinterAddress:
    """Where a printer listens and how it prints."""

    host: str
    port: int = 9100
    paper_mm: int = 80
    profile: str = "TM-T20II"
    timeout_seconds: float = 3.0


def logo_image(text: str, paper_mm: int) -> Image.Image:
    """A full-width black banner with the logo text in white (1-bit), ready for the printer's raster mode."""
    width, height = DOTS[paper_mm], 72
    image = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((8, 4, width - 8, height - 4), radius=14, fill=0)
    font = _font(40)
    box = draw.textbbox((0, 0), text, font=font)
    x = (width - (box[2] - box[0])) // 2 - box[0]
    y = (height - (box[3] - box[1])) // 2 - box[1]
    draw.text((x, y), text, font=font, fill=1)
    return image


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def encode(blocks: list[Block], paper_mm: int, profile: str = "TM-T20II") -> bytes:
    """The ESC/POS bytes of a layout (text in the printer's code pages, native QR, cut at the end)."""
    p = Dummy(profile=profile)
    columns = COLUMNS[paper_mm]
    for block in blocks:
        match block:
            case Logo():
                p.image(logo_image(block.text, paper_mm), center=False)
            case Text():
                p.set(align=block.align, bold=block.bold, custom_size=block.size > 1,
                      width=block.size, height=block.size, normal_textsize=block.size == 1)  # fmt: skip
                p.text(block.text + "\n")
            case Qr():
                p.set(align="center", normal_textsize=True)
                p.qr(block.data, native=True, size=block.module_dots, center=False)
            case Rule():
                p.set(align="left", normal_textsize=True)
                p.text("-" * columns + "\n")
            case Feed():
                p.ln(block.lines)
    p.cut()
    return bytes(p.output)


def send(address: PrinterAddress, data: bytes) -> None:
    """Deliver bytes to a LAN printer; raises PrinterError (offline, timeout, paper_out, error)."""
    started = time.monotonic()
    try:
        with socket.create_connection((address.host, address.port), timeout=address.timeout_seconds) as conn:
            _check_paper(conn, address)
            conn.settimeout(max(0.1, address.timeout_seconds - (time.monotonic() - started)))
            conn.sendall(data)
    except PrinterError:
        raise
    except TimeoutError as exc:
        raise PrinterError("timeout", f"{address.host}:{address.port} did not answer in time") from exc
    except (ConnectionRefusedError, ConnectionResetError, socket.gaierror, OSError) as exc:
        raise PrinterError("offline", f"{address.host}:{address.port}: {exc.strerror or exc}") from exc


def _check_paper(conn: socket.socket, address: PrinterAddress) -> None:
    """Ask the paper sensor; a printer that stays silent is assumed fine, one that reports paper end is not."""
    conn.sendall(STATUS_QUERY)
    conn.settimeout(STATUS_WAIT_SECONDS)
    try:
        reply = conn.recv(1)
    except TimeoutError:
        return
    if not reply:
        raise PrinterError("offline", f"{address.host}:{address.port} closed the connection")
    if reply[0] & PAPER_END == PAPER_END:
        raise PrinterError("paper_out", f"{address.host}:{address.port} reports the paper roll is empty")
    if reply[0] & PAPER_NEAR_END:
        log.warning("printer %s:%s: paper roll nearly empty", address.host, address.port)
