"""The printed ticket as a pure layout: what goes on the paper, line by line, for 58 mm and 80 mm rolls.

No I/O here: `ticket_layout` turns a `TicketPrint` into blocks; the ESC/POS adapter and the PNG preview both draw
the same blocks, so the preview in the docs is what the printer gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.wait_words import wait_text

Align = Literal["left", "center", "right"]

COLUMNS = {58: 32, 80: 48}  # characters per line in font A
DOTS = {58: 384, 80: 576}  # printable width in dots at 203 dpi
WIDE_MM = 80

LABELS: dict[str, dict[str, str]] = {
    "id": {
        "number": "NOMOR ANTREAN ANDA",
        "service": "Layanan",
        "time": "Waktu",
        "ahead": "Antrean di depan Anda",
        "eta": "Perkiraan tunggu",
        "scan": "Pindai untuk memantau antrean",
        "offline": "TIKET OFFLINE - nomor berlaku",
        "phone": "Telepon",
        "ref": "No. referensi",
        "footer": "Terima kasih atas kesabaran Anda",
    },
    "en": {
        "number": "YOUR QUEUE NUMBER",
        "service": "Service",
        "time": "Time",
        "ahead": "People ahead of you",
        "eta": "Estimated wait",
        "scan": "Scan to follow your turn",
        "offline": "OFFLINE TICKET - number is valid",
        "phone": "Phone",
        "ref": "Reference",
        "footer": "Thank you for your patience",
    },
}


@dataclass(frozen=True)
class TicketPrint:
    """Everything printed on one ticket (already localised, masked and formatted by the caller)."""

    branch_name: str
    ticket_number: str
    service_name: str
    issued_at: str  # local date and time, e.g. "12/01/2026 09:05"
    status_url: str
    lang: str = "id"
    position: int | None = None
    eta_seconds: int | None = None  # said as `edge.wait_words.wait_text` says it ("next", "< 1 min", "about N min")
    logo_text: str | None = None
    logo_image: str | None = None  # path of the branch's logo image (the printer adapter loads it)
    phone: str | None = None  # masked
    customer_ref: str | None = None
    footer: str | None = None
    offline: bool = False


@dataclass(frozen=True)
class Text:
    """A line of text; `size` is the character magnification (1 = normal, 2 = double, up to 8)."""

    text: str
    align: Align = "left"
    size: int = 1
    bold: bool = False


@dataclass(frozen=True)
class Logo:
    """The branch's logo, printed as a raster: its image file, else a banner with its text."""

    text: str
    image: str | None = None


@dataclass(frozen=True)
class Qr:
    """A QR code (printed natively by the printer: `GS ( k`)."""

    data: str
    module_dots: int


@dataclass(frozen=True)
class Rule:
    """A full-width separator."""


@dataclass(frozen=True)
class Feed:
    """Blank lines."""

    lines: int = 1


Block = Text | Logo | Qr | Rule | Feed


def labels(lang: str) -> dict[str, str]:
    """The ticket's words in a language (Indonesian when unknown)."""
    return LABELS.get(lang, LABELS["id"])


def pair(left: str, right: str, columns: int) -> str:
    """`left ....... right` on one line (right side wins when both do not fit)."""
    room = columns - len(right) - 1
    if room < 1:
        return right[:columns]
    return f"{left[:room]:<{room}} {right}"


def ticket_layout(ticket: TicketPrint, paper_mm: int) -> list[Block]:
    """The blocks of a ticket for a paper width (58 or 80 mm)."""
    columns = COLUMNS[paper_mm]
    words = labels(ticket.lang)
    wide = paper_mm == WIDE_MM
    number_size = 4 if wide else 3
    blocks: list[Block] = []
    if ticket.logo_text or ticket.logo_image:
        blocks.append(Logo(ticket.logo_text or "", ticket.logo_image))
    blocks += [Text(ticket.branch_name[:columns], "center", bold=True), Rule()]
    if ticket.offline:
        blocks.append(Text(words["offline"][:columns], "center", bold=True))
    blocks += [
        Text(words["number"], "center"),
        Text(ticket.ticket_number, "center", size=number_size, bold=True),
        Text(ticket.service_name[: columns // 2], "center", size=2, bold=True),
        Feed(),
        Text(pair(words["time"], ticket.issued_at, columns)),
    ]
    if ticket.position is not None:
        blocks.append(Text(pair(words["ahead"], str(max(ticket.position - 1, 0)), columns)))
    wait = wait_text(ticket.eta_seconds, ticket.lang, ticket.position)
    if wait is not None:
        blocks.append(Text(pair(words["eta"], wait, columns)))
    if ticket.phone:
        blocks.append(Text(pair(words["phone"], ticket.phone, columns)))
    if ticket.customer_ref:
        blocks.append(Text(pair(words["ref"], ticket.customer_ref, columns)))
    blocks += [
        Rule(),
        Qr(ticket.status_url, module_dots=6 if wide else 4),
        Text(words["scan"], "center"),
        Rule(),
        Text((ticket.footer or words["footer"])[: columns * 2], "center"),
        Feed(2),
    ]
    return blocks
