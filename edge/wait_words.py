"""How an estimated wait is said to a customer, in Indonesian and English: one rule for screen, status page and paper.

An ETA of a few seconds is not "~0 min": the first in line is "next", anything under a minute is "< 1 min", and
longer waits are "about N min" (rounded to the nearest minute, never below one).
"""

from __future__ import annotations

MINUTE = 60

WAIT_WORDS: dict[str, dict[str, str]] = {
    "id": {"next": "Berikutnya", "under_minute": "< 1 menit", "about": "sekitar {n} menit"},
    "en": {"next": "Next", "under_minute": "< 1 min", "about": "about {n} min"},
}


def wait_text(seconds: float | None, lang: str, position: int | None = None) -> str | None:
    """The wait as the customer reads it (None when unknown: no counter open, or an offline ticket)."""
    if seconds is None:
        return None
    words = WAIT_WORDS.get(lang, WAIT_WORDS["id"])
    if position == 1:
        return words["next"]
    if seconds < MINUTE:
        return words["under_minute"]
    return words["about"].format(n=max(1, int(seconds / MINUTE + 0.5)))
