"""Every id/en word table of the pages has the same keys in both languages and no empty entry: a word added in one
language only shows as a raw key (or a KeyError) to the other language's users."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = re.compile(r"^(?P<name>[A-Z_]*WORDS)(?::[^=]*)? = \{", re.MULTILINE)


def _tables() -> list[tuple[str, str]]:
    found = []
    for package in ("cloud", "edge", "sync"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for match in TABLE.finditer(path.read_text(encoding="utf-8")):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.append((module, match["name"]))
    return found


TABLES = _tables()


def test_the_tables_are_found() -> None:
    assert len(TABLES) >= 10, TABLES


@pytest.mark.parametrize(("module", "name"), TABLES, ids=[f"{m}.{n}" for m, n in TABLES])
def test_indonesian_and_english_have_the_same_words(module: str, name: str) -> None:
    table = getattr(importlib.import_module(module), name)
    assert set(table) >= {"id", "en"}, f"{module}.{name} has languages {sorted(table)}"
    only_id = sorted(set(table["id"]) - set(table["en"]))
    only_en = sorted(set(table["en"]) - set(table["id"]))
    assert (only_id, only_en) == ([], []), f"{module}.{name}: only in id {only_id}, only in en {only_en}"
    for lang in ("id", "en"):
        empty = sorted(key for key, value in table[lang].items() if not str(value).strip())
        assert not empty, f"{module}.{name}[{lang}] has empty words: {empty}"
