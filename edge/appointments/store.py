"""The bookings document on the appliance's disk (`bookings.json` in the data directory): written whole when the
hub pushes a newer one, read by the kiosk's check-in, so check-in keeps working while the link is down."""

from __future__ import annotations

from pathlib import Path

import msgspec

from edge.store.datadir import write_private
from sync.appointments import BookingsDocument, bookings_decoder

FILE = "bookings.json"


def path_in(data_dir: Path) -> Path:
    """Where the document lives."""
    return Path(data_dir) / FILE


def load(data_dir: Path) -> BookingsDocument | None:
    """The last document pushed (None before the first push, or when the file does not parse)."""
    try:
        return bookings_decoder.decode(path_in(data_dir).read_bytes())
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def save(data_dir: Path, document: BookingsDocument) -> None:
    """Replace the document whole (a crash leaves the old or the new one, never half)."""
    write_private(path_in(data_dir), msgspec.json.encode(document))
