"""README.md plus docs/**/*.md document every event type, error code, CLI command, MQTT topic and setting.

Also: the README opens with the two setup commands, every relative link resolves (file and anchor), and the generated
API reference (docs/api-reference.md) matches the appliance's current OpenAPI schema.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
import typer
import typer.main

from cloud.cli import app as cloud_app
from edge.cli import app as edge_app
from edge.devices.mqtt.topics import Kind, build
from edge.web import openapi_doc
from sync.contract import EVENT_TYPES
from sync.contract_config import BranchConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCS = "\n".join(path.read_text(encoding="utf-8") for path in DOC_FILES)
CODE_DIRS = ("edge", "cloud", "sync", "firmware-configs")
WHERE = "README.md or docs/*.md"


def _error_codes() -> set[str]:
    """Every `code="..."` / `ApiError(status, "code", ...)` / class-level `code = "..."` in the code."""
    codes: set[str] = set()
    for package in ("edge", "cloud", "sync"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', text))
            codes |= set(re.findall(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"', text))
    return codes


def _cli_commands(app: typer.Typer) -> list[str]:
    """Every command of a typer app, sub-commands as `group command`."""
    group = typer.main.get_group(app)
    names = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def _environment_variables() -> set[str]:
    """Every `QMS_*` name the code spells as a string literal (env vars read with os.environ, typer envvar=…)."""
    names: set[str] = set()
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            names |= set(re.findall(r"""["'](QMS_[A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")))
    return names


def _config_settings(struct: type[msgspec.Struct] = BranchConfig, prefix: str = "") -> set[str]:
    """Every field of the configuration document, nested ones as `kiosk.idle_seconds` (checked by their last name)."""
    found: set[str] = set()
    for field in msgspec.structs.fields(struct):
        found.add(prefix + field.name)
        for inner in _structs_in(field.type):
            found |= _config_settings(inner, f"{prefix}{field.name}.")
    return found


def _structs_in(annotation: Any) -> list[type[msgspec.Struct]]:
    """The Struct classes an annotation names (through lists, dicts, optionals, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [annotation]
    return [s for arg in get_args(annotation) for s in _structs_in(arg)]


def _mqtt_topic_patterns() -> dict[str, re.Pattern[str]]:
    """Each topic of the grammar, as the docs write it: `qms/<branch>/counter/<counter_id>/state`."""
    patterns = {}
    for kind in get_args(Kind):
        subject = "ticket.called" if kind == "event" else "subject0"
        topic = build(kind, "branch0", subject)
        pattern = re.escape(topic).replace("branch0", "<branch>").replace(re.escape(subject), "<[a-z_]+>")
        patterns[kind] = re.compile(pattern)
    return patterns


def _without_code_blocks(text: str) -> str:
    """The text with fenced code blocks and inline code removed (links there are examples, not links)."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    """The anchors of a markdown file's headings (GitHub numbers repeats: x, x-1, x-2)."""
    seen: dict[str, int] = {}
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.MULTILINE):
        slug = _slug(heading)
        seen[slug if slug not in seen else f"{slug}-{seen[slug]}"] = 0
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(seen)


def _relative_links() -> list[tuple[Path, str]]:
    """(file, target) of every relative markdown link or image in README.md and docs/."""
    link = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
    external = re.compile(r"^[a-z][a-z0-9+.-]*:")  # http:, https:, mailto: are not checked here
    return [
        (path, target)
        for path in DOC_FILES
        for target in link.findall(_without_code_blocks(path.read_text(encoding="utf-8")))
        if not external.match(target)
    ]


def test_readme_starts_with_the_two_setup_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make demo" in first_block
    assert "make test" in first_block


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_is_documented(event_type: str) -> None:
    found = f"`{event_type}`" in DOCS
    assert found, f"event type {event_type!r} is not in {WHERE}"


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_code_is_documented(code: str) -> None:
    if code in {"conflict", "not_found", "invalid", "error", "unknown_command"}:
        return  # generic fallbacks of the error classes, not codes a client acts on
    found = f"`{code}`" in DOCS
    assert found, f"error code {code!r} is not in {WHERE}"


@pytest.mark.parametrize("command", _cli_commands(edge_app))
def test_every_qms_edge_command_is_documented(command: str) -> None:
    found = f"qms-edge {command}" in DOCS
    assert found, f"`qms-edge {command}` is not in {WHERE}"


@pytest.mark.parametrize("command", _cli_commands(cloud_app))
def test_every_qms_cloud_command_is_documented(command: str) -> None:
    found = f"qms-cloud {command}" in DOCS
    assert found, f"`qms-cloud {command}` is not in {WHERE}"


@pytest.mark.parametrize("kind", sorted(_mqtt_topic_patterns()))
def test_every_mqtt_topic_is_documented(kind: str) -> None:
    pattern = _mqtt_topic_patterns()[kind]
    found = pattern.search(DOCS) is not None
    assert found, f"MQTT topic {pattern.pattern!r} ({kind}) is not in {WHERE}"


@pytest.mark.parametrize("name", sorted(_environment_variables()))
def test_every_environment_variable_is_documented(name: str) -> None:
    found = re.search(rf"\b{name}\b", DOCS) is not None
    assert found, f"environment variable {name} is not in {WHERE}"


@pytest.mark.parametrize("setting", sorted(_config_settings()))
def test_every_configuration_setting_is_documented(setting: str) -> None:
    name = setting.rsplit(".", 1)[-1]
    found = f"`{name}`" in DOCS or f"`{setting}`" in DOCS
    assert found, f"configuration setting {setting!r} is not in {WHERE}"


def test_every_relative_link_resolves() -> None:
    broken = []
    for source, target in _relative_links():
        file_part, _, anchor = target.partition("#")
        resolved = (source.parent / file_part).resolve() if file_part else source
        if not resolved.exists():
            broken.append(f"{source.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{source.relative_to(ROOT)}: {target} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_table_row_has_as_many_cells_as_its_header() -> None:
    broken = []
    for path in DOC_FILES:
        header_cells, in_code = None, False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            in_code = in_code != line.startswith("```")
            cells = len(re.findall(r"(?<!\\)\|", line)) if line.startswith("|") and not in_code else None
            if cells is not None and header_cells is not None and cells != header_cells:
                broken.append(f"{path.relative_to(ROOT)}:{number}: {cells} pipes, the header has {header_cells}")
            header_cells = cells if header_cells is None else (header_cells if cells is not None else None)
    assert not broken, "table rows that break their table (escape | inside a cell as \\|):\n" + "\n".join(broken)


def test_the_api_reference_matches_the_openapi_schema() -> None:
    committed = openapi_doc.REFERENCE.read_text(encoding="utf-8") if openapi_doc.REFERENCE.exists() else ""
    current = committed == openapi_doc.render(openapi_doc.openapi_schema())
    assert current, (
        f"docs/api-reference.md is out of date with the app's OpenAPI schema: run `{openapi_doc.REGENERATE}`"
    )


def test_the_scans_find_what_they_look_for() -> None:
    assert {"unknown_service", "wrong_counter", "invalid_state", "token_expired"} <= _error_codes()
    assert {"QMS_DATA_DIR", "QMS_NATS_URL", "QMS_CLOUD_DB", "QMS_STAFF_IDLE_MINUTES"} <= _environment_variables()
    assert {"kiosk.idle_seconds", "services.grace_seconds", "display.playlist.seconds"} <= _config_settings()
    assert "branch add" in _cli_commands(cloud_app)
    assert _mqtt_topic_patterns()["counter_state"].search("`qms/<branch>/counter/<counter_id>/state`")
    assert _slug("`qms-edge` (field technicians)") == "qms-edge-field-technicians"
    assert _slug("Cloud replication and the HQ hub") == "cloud-replication-and-the-hq-hub"
