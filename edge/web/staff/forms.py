"""Admin forms <-> the branch configuration document: parse, validate, and write edits back as a new document."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from sync.contract_config import WEEKDAYS, Area, BranchConfig, Counter, Kiosk, Service, Weekday, structural_errors

T = TypeVar("T")
Item = TypeVar("Item", Area, Service, Counter)
_SPAN = re.compile(r"^\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*$")


Message = tuple[str, dict[str, Any]]  # an English msgid of the staff catalogs and its %(name)s values


class FormError(Exception):
    """The form's values are not a valid configuration; the messages say why (`errors` in English, `translated` in
    the page's language when the message is a catalog msgid)."""

    def __init__(self, errors: Sequence[str | Message]) -> None:
        self.messages: list[Message] = [(e, {}) if isinstance(e, str) else e for e in errors]
        self.errors = [msgid % values if values else msgid for msgid, values in self.messages]
        super().__init__("; ".join(self.errors))

    def translated(self, translate: Callable[..., str]) -> list[str]:
        """The messages through a translator (`edge.web.staff.i18n.Translator`)."""
        return [translate(msgid, **values) for msgid, values in self.messages]


# A field the configuration document refuses, in the form's own words (msgids of edge/web/i18n/*.json): msgspec's
# "Expected `str` matching regex …" means nothing to a branch admin, least of all on the Indonesian page.
FIELD_MESSAGES = {
    "id": "Id: letters, digits, dot, dash and underscore (up to 64), starting with a letter or digit.",
    "name": "Name: 1 to 120 characters.",
    "names": "Names per language: 1 to 120 characters.",
    "prefix": "Prefix: 1 to 3 capital letters.",
    "digits": "Digits: a whole number from 1 to 6.",
    "area_id": "Area: choose one of the branch's areas.",
    "hours": "Opening hours: times like 08:00-15:00, from 00:00 to 24:00.",
    "daily_capacity": "Daily capacity: a whole number of at least 1, or empty for unlimited.",
    "sla_minutes": "SLA target: 1 to 1440 minutes.",
    "default_priority": "Default priority: a whole number from 0 to 9.",
    "grace_seconds": "Grace period: 5 to 86400 seconds, or empty.",
    "no_show_policy": "No-show policy: choose one of the listed policies.",
    "max_returns": "Returns allowed: a whole number from 0 to 10.",
    "avg_service_seconds": "Average service time: 1 to 86400 seconds.",
    "outcome_codes": "Outcome codes: letters, digits, dot, dash and underscore, separated by commas.",
    "services": "Services: choose services of this branch.",
}
FIELD_FALLBACK = "%(field)s: this value is not accepted."
_AT = re.compile(r"at `\$\.([A-Za-z_]+)")


def _int(form: dict[str, Any], key: str, default: int | None = None) -> int | None:
    raw = str(form.get(key) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"-?\d{1,7}", raw):
        raise FormError([FIELD_MESSAGES.get(key) or ("%(field)s: not a whole number.", {"field": key})])
    return int(raw)


def _text(form: dict[str, Any], key: str) -> str:
    return str(form.get(key) or "").strip()


def _checked(form: dict[str, Any], key: str) -> bool:
    return str(form.get(key) or "") in ("on", "true", "1")


def hours_text(hours: dict[Weekday, list[tuple[str, str]]] | None) -> str:
    """Opening hours as editable lines: `mon 08:00-15:00, 16:00-18:00`."""
    if not hours:
        return ""
    return "\n".join(f"{day} {', '.join(f'{a}-{b}' for a, b in hours[day])}" for day in WEEKDAYS if day in hours)


def parse_hours(text: str) -> dict[str, list[tuple[str, str]]] | None:
    """Lines `mon-fri 08:00-15:00, 16:00-18:00` (a day or a day range) -> the document's hours; empty: always open."""
    result: dict[str, list[tuple[str, str]]] = {}
    for raw in text.splitlines():
        line = raw.strip().lower()
        if not line:
            continue
        days, _, spans = line.partition(" ")
        first, _, last = days.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise FormError([f"hours: {raw.strip()!r} must start with a day (mon..sun) or a range like mon-fri"])
        span_days = WEEKDAYS[WEEKDAYS.index(first) : WEEKDAYS.index(last or first) + 1]
        pairs = []
        for part in spans.split(","):
            match = _SPAN.match(part)
            if not match:
                raise FormError([f"hours: {part.strip()!r} must look like 08:00-15:00"])
            pairs.append((match[1], match[2]))
        for day in span_days:
            result.setdefault(day, []).extend(pairs)
    return result or None


def service_from_form(form: dict[str, Any], existing: Service | None) -> Service:
    """A Service from the admin form (fields the form does not show are kept from the existing one)."""
    data: dict[str, Any] = msgspec.to_builtins(existing) if existing else {}
    names = {lang: _text(form, f"name_{lang}") for lang in ("id", "en") if _text(form, f"name_{lang}")}
    data.update(
        id=_text(form, "id") or (existing.id if existing else ""),
        name=_text(form, "name"),
        names=names,
        prefix=_text(form, "prefix").upper(),
        digits=_int(form, "digits", 3),
        area_id=_text(form, "area_id") or None,
        active=_checked(form, "active"),
        hours=parse_hours(_text(form, "hours")),
        daily_capacity=_int(form, "daily_capacity"),
        sla_minutes=_int(form, "sla_minutes", 15),
        priority_enabled=_checked(form, "priority_enabled"),
        default_priority=_int(form, "default_priority", 0),
        grace_seconds=_int(form, "grace_seconds"),
        no_show_policy=_text(form, "no_show_policy") or "no_show",
        max_returns=_int(form, "max_returns", 1),
        avg_service_seconds=_int(form, "avg_service_seconds", 300),
        outcome_codes=[s.strip() for s in _text(form, "outcome_codes").split(",") if s.strip()],
    )
    return _convert(data, Service)


def counter_from_form(form: dict[str, Any], services: list[str], existing: Counter | None) -> Counter:
    """A Counter from the admin form; only configured services can be ticked (and are checked again)."""
    data: dict[str, Any] = msgspec.to_builtins(existing) if existing else {}
    chosen = [s for s in services if s in set(form.get("services") or [])]
    data.update(
        id=_text(form, "id") or (existing.id if existing else ""),
        name=_text(form, "name"),
        area_id=_text(form, "area_id") or None,
        services=chosen,
        auto_call=_checked(form, "auto_call"),
        active=_checked(form, "active"),
    )
    if not chosen:
        raise FormError(["a counter must serve at least one service"])
    return _convert(data, Counter)


def area_from_form(form: dict[str, Any]) -> Area:
    """An Area from the admin form."""
    return _convert({"id": _text(form, "id"), "name": _text(form, "name")}, Area)


def branch_from_form(config: BranchConfig, form: dict[str, Any]) -> BranchConfig:
    """The branch's own settings: display name, timezone (an IANA name this appliance knows), languages, day close."""
    timezone = _text(form, "timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FormError([f"timezone: {timezone!r} is not a known IANA timezone (e.g. Asia/Jakarta)"]) from None
    languages = [lang for lang in ("id", "en") if _checked(form, f"lang_{lang}")]
    if not languages:
        raise FormError(["languages: choose at least one"])
    day_close = form.get("day_close") or config.day_close
    if day_close not in ("cancel", "keep"):
        raise FormError([f"day close: {day_close!r} is not one of cancel, keep"])
    data = {**msgspec.to_builtins(config), "name": _text(form, "name"), "timezone": timezone, "languages": languages,
            "day_close": day_close}  # fmt: skip
    return _convert(data, BranchConfig)


INPUT_MODES = ("off", "optional", "required")


def kiosk_from_form(config: BranchConfig, form: dict[str, Any]) -> BranchConfig:
    """The kiosk settings from the admin form (per-kiosk printers, `kiosk.printers`, are kept as they are)."""
    old = msgspec.to_builtins(config.kiosk)
    for key in ("phone_input", "customer_ref_input"):
        if _text(form, key) not in INPUT_MODES:
            raise FormError([f"{key}: one of {', '.join(INPUT_MODES)}"])
    host, device = _text(form, "printer_host"), _text(form, "printer_device")
    printer = None
    if host or device:
        printer = {**(old.get("printer") or {}), "host": host or None, "device": device or None,
                   "port": _int(form, "printer_port", 9100), "paper_mm": _int(form, "printer_paper", 80)}  # fmt: skip
    data = {
        **old,
        "phone_input": _text(form, "phone_input"),
        "customer_ref_input": _text(form, "customer_ref_input"),
        "phone_display": _text(form, "phone_display") or old["phone_display"],
        "idle_seconds": _int(form, "idle_seconds", old["idle_seconds"]),
        "ticket_seconds": _int(form, "ticket_seconds", old["ticket_seconds"]),
        "title": {lang: text for lang in ("id", "en") if (text := _text(form, f"title_{lang}"))},
        "footer": {lang: text for lang in ("id", "en") if (text := _text(form, f"footer_{lang}"))},
        "accent_color": _text(form, "accent_color") or old["accent_color"],
        "logo_text": _text(form, "logo_text") or None,
        "logo_image": _text(form, "logo_image") or None,
        "printer": printer,
        "offline_lease_size": _int(form, "offline_lease_size", old["offline_lease_size"]),
        "offline_print_url": _text(form, "offline_print_url") or None,
        "offline_browser_print": _checked(form, "offline_browser_print"),
        "public_base_url": _text(form, "public_base_url") or None,
    }
    kiosk = _convert(data, Kiosk)
    return msgspec.structs.replace(config, kiosk=kiosk)


def _convert(data: dict[str, Any], kind: type[T]) -> T:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise FormError([field_message(str(exc))]) from None


def field_message(error: str) -> Message:
    """A msgspec validation error (`… - at `$.prefix``) as the refused field's own message."""
    found = _AT.search(error)
    field = found[1] if found else ""
    if field in FIELD_MESSAGES:
        return FIELD_MESSAGES[field], {}
    return FIELD_FALLBACK, {"field": field or "?"}


def replace_item(items: list[Item], item: Item, old_id: str | None) -> list[Item]:
    """The list with the item replaced (by its old id) or appended."""
    if old_id is None:
        return [*items, item]  # type: ignore[list-item]  # mypy cannot widen a constrained TypeVar here
    return [item if x.id == old_id else x for x in items]


def checked_config(config: BranchConfig) -> BranchConfig:
    """The document if it passes the structural checks (unique ids, known references, prefixes)."""
    errors = structural_errors(config)
    if errors:
        raise FormError(errors)
    return config
