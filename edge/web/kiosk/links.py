"""The appliance's side of ticket status links (`/t/<token>`, signed by `sync.links`): its keys and the QR code SVG."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import segno

from sync.links import link_key, seed_link_key

log = logging.getLogger("qms.kiosk")


def link_keys(secret: bytes, nkey_seed_file: str | None) -> tuple[bytes, ...]:
    """The keys the appliance checks links with, the first one signing new links.

    With the cloud NKey seed, the seed's key signs (the cloud can verify those links too); the `token.key` one still
    opens links signed before the seed was configured. A standalone appliance has only the `token.key` one.
    """
    own = link_key(secret)
    if not nkey_seed_file:
        return (own,)
    try:
        return seed_link_key(Path(nkey_seed_file)), own
    except OSError as exc:
        log.warning("status links: cannot read the NKey seed %s (%s); signing with the appliance key", nkey_seed_file,
                    exc)  # fmt: skip
        return (own,)


def qr_svg(data: str) -> str:
    """An inline SVG QR code (dark modules only; scales with CSS)."""
    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=1, border=2,
                                     svgclass="qrcode", omitsize=True, dark="#000", light="#fff")  # fmt: skip
    return out.getvalue().decode("utf-8")
