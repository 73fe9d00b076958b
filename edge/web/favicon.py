"""The appliance's icon at `/favicon.ico` for browsers that ask before reading a page (pages link the SVG)."""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.response import File

ICON = Path(__file__).resolve().parent / "static" / "favicon.svg"


@get(["/favicon.ico", "/favicon.svg"], include_in_schema=False, sync_to_thread=False)
def favicon() -> File:
    """The SVG icon (a browser takes an SVG at the .ico address as well), cached for a day."""
    return File(ICON, media_type="image/svg+xml", content_disposition_type="inline",
                headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip
