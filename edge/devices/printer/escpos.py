"""The one module that talks to ESC/POS printers: layout -> bytes (python-escpos) -> raw TCP 9100 or a USB device
file, errors translated.

python-escpos encodes (code pages for non-ASCII text, native QR with `GS ( k`, raster logo); the transport is a plain
socket (with the paper status query, DLE EOT 4) or a non-blocking write to the printer's character device (usblp:
/dev/usb/lp0, no status query), so that every failure maps to one `PrinterError` kind at this boundary.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import logging
import os
import pickle  # nosec B403 - our own cache file, in a directory private to this user (checked)
import platform
import select
import socket
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from edge.devices.printer.layout import COLUMNS, DOTS, Block, Feed, Logo, Qr, Rule, Text


def _capabilities_cache() -> None:
    """python-escpos parses its 1.5 MB capabilities file with pure-Python YAML (~2 s on a loaded box, more on a Pi)
    and caches the result as a pickle in a *new* temporary directory per import, so every start pays it again and
    leaves a directory behind; and it writes that pickle in place, so a second process starting at the same moment
    reads a half-written file and fails to import. We keep the pickle in our own cache directory (systemd's
    CacheDirectory= when set), private to this user, and write it ourselves — parsed as the JSON it is, written to a
    temporary file and renamed — so python-escpos only ever finds a complete one. If the directory cannot be made,
    python-escpos keeps its default."""
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" in os.environ:
        return
    base = os.environ.get("CACHE_DIRECTORY") or os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    folder = os.path.join(base, "qms-escpos")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except OSError:
        return
    if st.st_uid != os.getuid() or st.st_mode & 0o022:  # a pickle is code: never load one others could write
        return
    try:
        write_capabilities_pickle(folder)
    except (OSError, ValueError, pickle.PickleError) as exc:
        logging.getLogger("qms.printer").warning(
            "escpos capabilities cache not written (%s): python-escpos parses its file itself", exc
        )
        return
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = folder


def capabilities_source() -> str:
    """The capabilities file python-escpos reads (`ESCPOS_CAPABILITIES_FILE`, else the one in its package)."""
    if "ESCPOS_CAPABILITIES_FILE" in os.environ:
        return os.environ["ESCPOS_CAPABILITIES_FILE"]
    spec = importlib.util.find_spec("escpos")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("python-escpos is not installed")
    return os.path.join(next(iter(spec.submodule_search_locations)), "capabilities.json")


def write_capabilities_pickle(folder: str) -> str:
    """Make `<folder>/<python version>.capabilities.pickle` (python-escpos's name) unless a complete one newer than
    the capabilities file is there; atomically, so concurrent starts never see a partial file. Returns its path."""
    target = os.path.join(folder, f"{platform.python_version()}.capabilities.pickle")
    source = capabilities_source()
    with contextlib.suppress(OSError):
        if os.path.getmtime(target) >= os.path.getmtime(source) and os.path.getsize(target) > 0:
            return target
    with open(source, encoding="utf-8") as f:
        capabilities = json.load(f)
    fd, scratch = tempfile.mkstemp(dir=folder, prefix=".capabilities-")
    try:
        with os.fdopen(fd, "wb") as out:
            pickle.dump(capabilities, out, protocol=2)  # python-escpos's own protocol
        os.replace(scratch, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    return target


_capabilities_cache()
from escpos.printer import Dummy  # noqa: E402  (after the cache directory is chosen)

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


# A device file that is gone or has no printer behind it is an unplugged printer, not a fault of ours.
DEVICE_GONE = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EPIPE}


@dataclass(frozen=True)
class PrinterAddress:
    """Where a printer listens (`host`:`port`, or the USB device file `device`) and how it prints."""

    host: str = ""
    port: int = 9100
    paper_mm: int = 80
    profile: str = "TM-T20II"
    timeout_seconds: float = 3.0
    device: str | None = None

    @property
    def target(self) -> str:
        """`host:port` or the device path, for logs and status."""
        return self.device or f"{self.host}:{self.port}"


LOGO_MAX_DOTS = 160  # the tallest logo printed (dots at 203 dpi: 2 cm), so a tall image cannot waste the roll


def logo_raster(block: Logo, paper_mm: int) -> Image.Image | None:
    """The logo as a 1-bit image the printer's raster mode takes: the image file when it loads, else the text banner.

    A missing or broken logo file never costs a ticket: it is logged and the banner (or nothing) is printed instead.
    """
    if block.image:
        try:
            return _logo_file(block.image, os.stat(block.image).st_mtime_ns, paper_mm)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("logo image %s cannot be printed (%s); using the text logo", block.image, exc)
    return logo_image(block.text, paper_mm) if block.text else None


@lru_cache(maxsize=8)
def _logo_file(path: str, _mtime: int, paper_mm: int) -> Image.Image:
    """The logo file scaled to fit the paper (never wider than the printable dots, at most LOGO_MAX_DOTS high),
    centred on a full-width strip and dithered to black and white. Cached per file version and paper width."""
    with Image.open(path) as source:
        source.load()
        rgba = source.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)  # transparent parts print as paper
    width = DOTS[paper_mm]
    scale = min(width / flat.width, LOGO_MAX_DOTS / flat.height)  # fit the box, small logos grow
    size = (max(1, round(flat.width * scale)), max(1, round(flat.height * scale)))
    gray = flat.convert("L").resize(size, Image.Resampling.LANCZOS)
    strip = Image.new("L", (width, size[1]), 255)
    strip.paste(gray, ((width - size[0]) // 2, 0))
    return strip.convert("1")  # Floyd-Steinberg dithering


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
                if (raster := logo_raster(block, paper_mm)) is not None:
                    p.image(raster, center=False)
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
    """Deliver bytes to a LAN or USB printer; raises PrinterError (offline, timeout, paper_out, error)."""
    if address.device:
        _write_device(address.device, data, address.timeout_seconds)
        return
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


def _write_device(path: str, data: bytes, timeout_seconds: float) -> None:
    """Write to a printer's character device without ever blocking past the timeout (a stalled usblp write would)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)  # never O_CREAT: no stray file
    except PermissionError as exc:
        raise PrinterError("error", f"{path}: permission denied (the appliance's user needs write access, "
                                    "e.g. membership of the device's group `lp`)") from exc  # fmt: skip
    except OSError as exc:
        kind: ErrorKind = "offline" if exc.errno in DEVICE_GONE else "error"
        raise PrinterError(kind, f"{path}: {exc.strerror or exc}") from exc
    try:
        _write_all(fd, path, memoryview(data), time.monotonic() + timeout_seconds)
    finally:
        os.close(fd)


def _write_all(fd: int, path: str, view: memoryview, deadline: float) -> None:
    """Write everything while the device takes it (poll for room), or fail at the deadline."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PrinterError("timeout", f"{path} took no more data in time ({len(view)} bytes left)")
        if not poller.poll(left * 1000):
            continue
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
        except OSError as exc:
            kind: ErrorKind = "offline" if exc.errno in DEVICE_GONE else "error"
            raise PrinterError(kind, f"{path}: {exc.strerror or exc}") from exc
