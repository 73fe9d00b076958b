"""The branch configuration document: one versioned msgspec structure shared by edge and cloud."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

SCHEMA_VERSION = 1

# `$(?!\n)`: a bare `$` also matches before a trailing newline, which would let "teller\n" in (valid ECMA-262 too).
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$(?!\n)", description="stable identifier")]
Prefix = Annotated[str, Meta(pattern=r"^[A-Z]{1,3}$(?!\n)", description="ticket number prefix, 1-3 capital letters")]
Clock = Annotated[
    str,
    Meta(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$(?!\n)", description="local time HH:MM (24:00 = midnight)"),
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Name = Annotated[str, Meta(min_length=1, max_length=120)]
Lang = Annotated[str, Meta(pattern=r"^[a-z]{2}$(?!\n)")]

WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Area(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A floor or zone of the branch; display boards and speakers are per area."""

    id: Ident
    name: Name


class Service(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A service customers queue for, with its numbering and queue policies."""

    id: Ident
    name: Name
    names: dict[Lang, Name] = {}
    prefix: Prefix
    digits: Annotated[int, Meta(ge=1, le=6)] = 3
    area_id: Ident | None = None
    active: bool = True
    # Opening hours per weekday as [open, close) local-time pairs; None means always open.
    hours: dict[Weekday, list[tuple[Clock, Clock]]] | None = None
    daily_capacity: Annotated[int, Meta(ge=1)] | None = None
    sla_minutes: Annotated[int, Meta(ge=1, le=1440)] = 15
    priority_enabled: bool = False
    default_priority: Annotated[int, Meta(ge=0, le=9)] = 0
    # Anti-starvation: after this many consecutive priority calls in the service, a waiting regular is called.
    anti_starvation_n: Annotated[int, Meta(ge=1, le=100)] = 3
    # Auto no-show after this many seconds in `called`; None disables it.
    grace_seconds: Annotated[int, Meta(ge=5, le=86400)] | None = 120
    no_show_policy: Literal["no_show", "return"] = "no_show"
    max_returns: Annotated[int, Meta(ge=0, le=10)] = 1
    unhold_position: Literal["original", "end"] = "original"
    allow_cancel_serving: bool = False
    avg_service_seconds: Annotated[int, Meta(ge=1, le=86400)] = 300
    outcome_codes: list[Ident] = []
    # Appointment vs walk-in blending (US-QUEUE-014); None disables it.
    appointment_quota_pct: Annotated[int, Meta(ge=0, le=100)] | None = None
    appointment_window_minutes: Annotated[int, Meta(ge=5, le=1440)] = 60
    appointment_boost_minutes: Annotated[int, Meta(ge=0, le=240)] = 10


class Counter(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A counter or room, and the services (skills) it may serve."""

    id: Ident
    name: Name
    area_id: Ident | None = None
    services: list[Ident]
    auto_call: bool = False
    active: bool = True


Color = Annotated[str, Meta(pattern=r"^#[0-9A-Fa-f]{6}$(?!\n)", description="#RRGGBB")]
MediaSrc = Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^(/|https?://)", description="media URL")]


class Branding(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How display boards look: logo and colours (high contrast by default)."""

    logo_url: MediaSrc | None = None
    background_color: Color = "#0B1220"
    text_color: Color = "#FFFFFF"
    accent_color: Color = "#FFC928"
    panel_color: Color = "#16213A"


class Slide(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One signage item (image, video or HTML page) shown beside the calls, optionally on a schedule."""

    kind: Literal["image", "video", "html"]
    src: MediaSrc
    seconds: Annotated[int, Meta(ge=1, le=3600)] = 10
    days: list[Weekday] = []  # empty: every day
    start: Clock | None = None  # local time window [start, end); None: all day
    end: Clock | None = None
    areas: list[Ident] = []  # empty: every area's boards


class Display(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Display boards: branding, how many recent calls, the signage playlist."""

    branding: Branding = msgspec.field(default_factory=Branding)
    recent_calls: Annotated[int, Meta(ge=0, le=12)] = 6
    playlist: list[Slide] = []


class Announcements(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Spoken announcements of calls and recalls, per area."""

    enabled: bool = True
    languages: list[Lang] = []  # empty: the branch's languages
    chime: bool = True
    quiet_hours: list[tuple[Clock, Clock]] = []  # local [start, end) spans, may cross midnight; boards still update
    min_gap_ms: Annotated[int, Meta(ge=0, le=10000)] = 600  # silence between two announcements of one area
    recall_repeats: Annotated[int, Meta(ge=1, le=3)] = 2  # a recall is spoken this many times
    outputs: list[Literal["speaker", "board", "mqtt"]] = msgspec.field(
        default_factory=lambda: ["speaker", "board", "mqtt"]
    )


Host = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$(?!\n)", description="host name or IP address")]
# A character device under /dev (no `.`/`..` segment): a USB printer is /dev/usb/lp0 with the usblp driver.
DevicePath = Annotated[
    str, Meta(pattern=r"^/dev(/[A-Za-z0-9_][A-Za-z0-9_.:-]*)+$(?!\n)", max_length=200, description="device file")
]
# The kiosk computer's own print relay (firmware-configs/launcher): only ever on the kiosk itself.
LocalUrl = Annotated[
    str,
    Meta(
        pattern=r"^http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?/[A-Za-z0-9_./-]*$(?!\n)",
        max_length=200,
        description="http://127.0.0.1:PORT/PATH on the kiosk computer",
    ),
]


LogoFile = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(png|jpe?g|gif|bmp|webp)$(?!\n)")]


class KioskPrinter(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A kiosk's ESC/POS ticket printer: on the LAN (`host`, raw TCP port 9100) or USB on the appliance (`device`).

    Exactly one of `host` and `device` is set (checked with the other cross-field rules in `structural_errors`).
    """

    host: Host | None = None
    device: DevicePath | None = None  # e.g. /dev/usb/lp0; written to directly, no paper-status query
    port: Annotated[int, Meta(ge=1, le=65535)] = 9100
    paper_mm: Literal[58, 80] = 80
    profile: Annotated[str, Meta(min_length=1, max_length=40)] = "TM-T20II"
    timeout_seconds: Annotated[float, Meta(gt=0, le=30)] = 3.0


class Kiosk(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Self-service kiosks: optional customer inputs, masking, printers, offline buffer and branding."""

    phone_input: Literal["off", "optional", "required"] = "off"
    customer_ref_input: Literal["off", "optional", "required"] = "off"
    phone_display: Literal["masked", "hidden"] = "masked"  # how a phone number is shown back (screen, ticket)
    idle_seconds: Annotated[int, Meta(ge=5, le=600)] = 45
    ticket_seconds: Annotated[int, Meta(ge=5, le=120)] = 20  # how long the issued ticket stays on screen
    title: dict[Lang, Annotated[str, Meta(max_length=80)]] = {}
    footer: dict[Lang, Annotated[str, Meta(max_length=160)]] = {}
    accent_color: Annotated[str, Meta(pattern=r"^#[0-9A-Fa-f]{6}$(?!\n)")] = "#0A5BD3"
    logo_text: Annotated[str, Meta(max_length=24)] | None = None  # printed/shown when there is no logo image
    # The branch's logo: an image file in `<data-dir>/board-media/`, shown on the kiosk and printed as a raster.
    logo_image: LogoFile | None = None
    printer: KioskPrinter | None = None  # the default printer of every kiosk
    printers: dict[Ident, KioskPrinter] = {}  # per kiosk device id, overriding `printer`
    offline_lease_size: Annotated[int, Meta(ge=0, le=100)] = 10  # numbers per service held for offline issuing
    offline_browser_print: bool = False  # offline tickets go to the kiosk OS printer (Chromium --kiosk-printing)
    offline_print_url: LocalUrl | None = None  # the kiosk computer's print relay, used for offline tickets
    public_base_url: Annotated[str, Meta(pattern=r"^https?://", max_length=200)] | None = None  # status-link host


class BranchConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration of one branch, replaced as one document under optimistic concurrency."""

    schema_version: int = SCHEMA_VERSION
    version: Annotated[int, Meta(ge=0)] = 0
    tenant_id: Ident
    branch_id: Ident
    name: Name
    timezone: str = "Asia/Jakarta"
    languages: list[Lang] = msgspec.field(default_factory=lambda: ["id", "en"])
    areas: list[Area] = []
    services: list[Service] = []
    counters: list[Counter] = []
    display: Display = msgspec.field(default_factory=Display)
    announcements: Announcements = msgspec.field(default_factory=Announcements)
    kiosk: Kiosk = msgspec.field(default_factory=Kiosk)
    # At the branch's local midnight: `cancel` closes the day (tickets still waiting or held are cancelled with reason
    # `end_of_day`; called and serving ones are left to their counters), `keep` carries them over (24-hour sites).
    day_close: Literal["cancel", "keep"] = "cancel"

    def service(self, service_id: str) -> Service | None:
        """The service with this id, if configured (O(1): routing asks this per waiting ticket)."""
        return _index(self)[1].get(service_id)

    def counter(self, counter_id: str) -> Counter | None:
        """The counter with this id, if configured (O(1))."""
        return _index(self)[2].get(counter_id)


# Id -> item maps per config object. A frozen Struct has no room for a cache of its own, so they live here, keyed
# by identity (the entry keeps its config alive, so an id cannot be reused while cached). Few configs are live.
_INDEX_LIMIT = 16
_indexes: dict[int, tuple[BranchConfig, dict[str, Service], dict[str, Counter]]] = {}


def _index(config: BranchConfig) -> tuple[BranchConfig, dict[str, Service], dict[str, Counter]]:
    entry = _indexes.get(id(config))
    if entry is None or entry[0] is not config:
        entry = (config, {s.id: s for s in config.services}, {c.id: c for c in config.counters})
        if len(_indexes) >= _INDEX_LIMIT:
            _indexes.clear()
        _indexes[id(config)] = entry
    return entry


def structural_errors(doc: BranchConfig) -> list[str]:
    """Cross-reference checks the type system cannot express (unique ids, known references)."""
    errors: list[str] = []
    for kind, items in (("area", doc.areas), ("service", doc.services), ("counter", doc.counters)):
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                errors.append(f"duplicate {kind} id {item.id!r}")
            seen.add(item.id)
    area_ids = {a.id for a in doc.areas}
    service_ids = {s.id for s in doc.services}
    prefixes: dict[str, str] = {}
    for s in doc.services:
        if s.area_id is not None and s.area_id not in area_ids:
            errors.append(f"service {s.id!r}: unknown area {s.area_id!r}")
        if s.prefix in prefixes:
            errors.append(f"service {s.id!r}: prefix {s.prefix!r} already used by {prefixes[s.prefix]!r}")
        prefixes[s.prefix] = s.id
        if not s.priority_enabled and s.default_priority:
            errors.append(f"service {s.id!r}: default_priority needs priority_enabled")
        for day, spans in (s.hours or {}).items():
            errors.extend(
                f"service {s.id!r}: {day} opens {start} after it closes {end}" for start, end in spans if start >= end
            )
    for c in doc.counters:
        if c.area_id is not None and c.area_id not in area_ids:
            errors.append(f"counter {c.id!r}: unknown area {c.area_id!r}")
        errors.extend(f"counter {c.id!r}: unknown service {sid!r}" for sid in c.services if sid not in service_ids)
        if len(set(c.services)) != len(c.services):
            errors.append(f"counter {c.id!r}: a service is listed twice")
    errors.extend(_printer_errors(doc.kiosk))
    if doc.schema_version != SCHEMA_VERSION:
        errors.append(f"schema_version {doc.schema_version} is not supported (expected {SCHEMA_VERSION})")
    return errors


def _printer_errors(kiosk: Kiosk) -> list[str]:
    """A printer is either on the network or a device file: exactly one of `host` and `device`."""
    printers = [("kiosk.printer", kiosk.printer)] + [(f"kiosk.printers.{k}", p) for k, p in kiosk.printers.items()]
    return [
        f"{where}: set exactly one of host (network printer) and device (USB printer file)"
        for where, printer in printers
        if printer is not None and (printer.host is None) == (printer.device is None)
    ]


config_decoder = msgspec.json.Decoder(BranchConfig)
config_encoder = msgspec.json.Encoder()


_canonical_config = msgspec.json.Encoder(order="sorted")
SHORT_HASH = 12  # hex digits shown next to a version number


def config_hash(config: BranchConfig) -> str:
    """SHA-256 (hex) of the canonical encoding (sorted keys) of the document without its version number: with the
    number it names exactly one document, and the same content keeps its hash under another number."""
    return hashlib.sha256(_canonical_config.encode(msgspec.structs.replace(config, version=0))).hexdigest()


def short_hash(value: str | None) -> str:
    """The first 12 hex digits of a configuration hash, as shown next to its version ("v4 · 1a2b3c4d5e6f")."""
    return (value or "")[:SHORT_HASH]
