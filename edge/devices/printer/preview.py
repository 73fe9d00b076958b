"""A PNG preview of a printed ticket, drawn from the same layout blocks the printer receives (docs, staff UI)."""

from __future__ import annotations

import io

import segno
from PIL import Image, ImageDraw, ImageFont

from edge.devices.printer.escpos import logo_raster
from edge.devices.printer.layout import COLUMNS, DOTS, Block, Feed, Logo, Qr, Rule, Text

MARGIN = 24  # paper visible around the printable area
LINE = 24  # dots per text line at size 1


def _mono(size: int, bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for path in (name, f"/usr/share/fonts/truetype/dejavu/{name}"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def render_png(blocks: list[Block], paper_mm: int) -> bytes:
    """The ticket as a PNG, 1 pixel per printer dot, on a paper-coloured strip."""
    width = DOTS[paper_mm]
    char = width / COLUMNS[paper_mm]
    canvas = Image.new("RGB", (width + 2 * MARGIN, 4000), "#FBFAF6")
    draw = ImageDraw.Draw(canvas)
    y = MARGIN
    for block in blocks:
        match block:
            case Logo():
                if (raster := logo_raster(block, paper_mm)) is not None:
                    canvas.paste(raster.convert("RGB"), (MARGIN, y))
                    y += raster.height + 8
            case Text():
                font = _mono(round(char / 0.6) * block.size, block.bold)
                box = draw.textbbox((0, 0), block.text, font=font)
                text_w = box[2] - box[0]
                x = {"left": 0, "center": (width - text_w) // 2, "right": width - text_w}[block.align]
                draw.text((MARGIN + max(x, 0), y), block.text, font=font, fill="#111111")
                y += LINE * block.size + 4
            case Qr():
                qr = segno.make(block.data, error="m")
                buffer = io.BytesIO()
                qr.save(buffer, kind="png", scale=block.module_dots, border=0)
                image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                canvas.paste(image, (MARGIN + (width - image.width) // 2, y + 8))
                y += image.height + 16
            case Rule():
                draw.line((MARGIN, y + LINE // 2, MARGIN + width, y + LINE // 2), fill="#111111", width=2)
                y += LINE
            case Feed():
                y += LINE * block.lines
    out = io.BytesIO()
    canvas.crop((0, 0, canvas.width, y + MARGIN)).save(out, format="PNG")
    return out.getvalue()
