"""README.md plus docs/**/*.md document every event type, every stable error code and every `qms-edge` command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from edge.cli import app
from sync.contract import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCS = "\n".join(path.read_text(encoding="utf-8") for path in DOC_FILES)


def _error_codes() -> set[str]:
    """Every `code="..."` / `ApiError(status, "code", ...)` / class-level `code = "..."` in edge/."""
    codes: set[str] = set()
    for path in (ROOT / "edge").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"', text))
    return codes


def _cli_commands() -> list[str]:
    group = typer.main.get_group(app)
    names = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def test_readme_starts_with_the_two_setup_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make demo" in first_block
    assert "make test" in first_block


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_is_documented(event_type: str) -> None:
    assert f"`{event_type}`" in DOCS, f"event type {event_type!r} is not in README.md or docs/"


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_code_is_documented(code: str) -> None:
    if code in {"conflict", "not_found", "invalid", "error", "unknown_command"}:
        return  # generic fallbacks of the error classes, not codes a client acts on
    assert f"`{code}`" in DOCS, f"error code {code!r} is not in README.md or docs/"


@pytest.mark.parametrize("command", _cli_commands())
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"qms-edge {command}" in DOCS, f"`qms-edge {command}` is not in README.md or docs/"


def test_the_scan_finds_codes() -> None:
    assert {"unknown_service", "wrong_counter", "invalid_state", "token_expired"} <= _error_codes()
