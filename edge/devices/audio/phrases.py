"""What is said for a call, as a sequence of clip names, and the text each clip of a voice pack speaks."""

from __future__ import annotations

import string
from typing import Final

CHIME: Final = "chime"
WORD_TICKET: Final = "word.ticket"
WORD_COUNTER: Final = "word.counter"
GAP_CHAR: Final = "gap.char"  # between spelled characters
GAP_PHRASE: Final = "gap.phrase"  # between "ticket number …" and "… counter …"
GAP_LANG: Final = "gap.lang"  # between two languages, and between the repeats of a recall
GAP_CHIME: Final = "gap.chime"
GAPS_MS: Final = {GAP_CHAR: 60, GAP_PHRASE: 250, GAP_LANG: 600, GAP_CHIME: 250}

SPOKEN_CHARS: Final = string.ascii_uppercase + string.digits


def _words(text: str) -> list[str]:
    """Space-separated words (`_` stands for a space inside one word)."""
    return [w.replace("_", " ") for w in text.split(" ")]


# Letters are spelled deliberately: TTS engines read a lone "A" as the article.
TEXTS: Final[dict[str, dict[str, str]]] = {
    "id": {
        WORD_TICKET: "Nomor antrian",
        WORD_COUNTER: "silakan ke loket",
        **dict(zip(string.digits, _words("nol satu dua tiga empat lima enam tujuh delapan sembilan"), strict=True)),
        **dict(
            zip(
                string.ascii_uppercase,
                _words("a be ce de e ef ge ha i je ka el em en o pe ki er es te u ve we eks ye zet"),
                strict=True,
            )
        ),
    },
    "en": {
        WORD_TICKET: "Ticket number",
        WORD_COUNTER: "please proceed to counter",
        **dict(zip(string.digits, _words("zero one two three four five six seven eight nine"), strict=True)),
        **dict(
            zip(
                string.ascii_uppercase,
                _words(
                    "ay bee see dee ee eff jee aitch eye jay kay ell em en oh pee cue ar ess tee you vee double_you ex"
                    " why zed"
                ),
                strict=True,
            )
        ),
    },
}
LANGUAGES: Final = tuple(TEXTS)


def char_clip(ch: str) -> str:
    """The clip name of one spelled character (`char.A`, `char.7`)."""
    return f"char.{ch.upper()}"


def spelled(value: str) -> list[str]:
    """The clips spelling a ticket number or counter id, character by character, with short gaps.

    Characters a pack cannot speak (`-`, `_`, `.`) are skipped.
    """
    out: list[str] = []
    for ch in value.upper():
        if ch not in SPOKEN_CHARS:
            continue
        if out:
            out.append(GAP_CHAR)
        out.append(char_clip(ch))
    return out


def call_sequence(ticket_number: str, counter: str) -> list[str]:
    """One language's sentence: "ticket number A 0 1 2, please proceed to counter 3"."""
    return [WORD_TICKET, GAP_CHAR, *spelled(ticket_number), GAP_PHRASE, WORD_COUNTER, GAP_CHAR, *spelled(counter)]


def announcement_plan(
    ticket_number: str, counter: str, languages: list[str], *, chime: bool = True, repeats: int = 1
) -> list[tuple[str, str]]:
    """The whole announcement as (lang, clip) pairs: chime, then the sentence in each language, `repeats` times.

    Gaps have lang "" (silence is the same in every pack).
    """
    plan: list[tuple[str, str]] = [("", CHIME), ("", GAP_CHIME)] if chime else []
    for i in range(repeats):
        for j, lang in enumerate(languages):
            if i or j:
                plan.append(("", GAP_LANG))
            sentence = call_sequence(ticket_number, counter)
            plan.extend(("" if clip.startswith("gap.") else lang, clip) for clip in sentence)
    return plan


def clips_needed(ticket_number: str, counter: str) -> set[str]:
    """The spoken clips an announcement of this ticket and counter uses (to build a small pack in tests)."""
    return {c for c in call_sequence(ticket_number, counter) if not c.startswith("gap.")}


def all_clips(lang: str) -> dict[str, str]:
    """Every spoken clip of a language: name -> text."""
    texts = TEXTS.get(lang)
    if texts is None:
        raise KeyError(f"no phrases for language {lang!r} (known: {', '.join(LANGUAGES)})")
    return {(k if k.startswith("word.") else char_clip(k)): v for k, v in texts.items()}
