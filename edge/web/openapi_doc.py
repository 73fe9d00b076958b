"""Render the appliance's OpenAPI schema as markdown: `python -m edge.web.openapi_doc` writes docs/api-reference.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api-reference.md"
REGENERATE = ".venv/bin/python -m edge.web.openapi_doc"
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
CONSTRAINTS = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "≥"),
    ("maximum", "≤"),
    ("exclusiveMinimum", ">"),
    ("exclusiveMaximum", "<"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("pattern", "pattern"),
    ("default", "default"),
)
_NO_LIMIT = 9223372036854775807  # msgspec's int64 bound, not a limit anyone sets


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document the appliance serves at /schema/openapi.json, built without starting the app."""
    from edge.web.app import Settings, create_app  # here: `render` needs no app

    with tempfile.TemporaryDirectory(prefix="qms-openapi-") as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        return app.openapi_schema.to_schema()


def render(schema: dict[str, Any]) -> str:
    """The whole reference as one markdown document (deterministic for one schema)."""
    info = schema.get("info", {})
    lines = [
        "# API reference (generated)",
        "",
        f"<!-- Generated from the appliance's OpenAPI schema by `{REGENERATE}`; do not edit by hand. -->",
        "",
        f"{info.get('title', 'API')} {info.get('version', '')}: every route the appliance's OpenAPI document "
        "(`/schema/openapi.json`) declares, with its parameters, request body and responses, and every schema "
        "it names. The behaviour behind them — errors and their codes, events, the SSE stream, MQTT — is "
        "explained in [api.md](api.md). Regenerate this file after changing a route: "
        f"`{REGENERATE}`.",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    operations = list(_operations(schema))
    lines += [
        f"| `{m.upper()}` | [`{p}`](#{_slug(f'{m} {p}')}) | {_cell(op.get('summary', ''))} |" for p, m, op in operations
    ]
    for path, method, op in operations:
        lines += ["", *_operation(path, method, op)]
    components = schema.get("components", {}).get("schemas", {})
    if components:
        lines += ["", "## Schemas"]
        for name in sorted(components):
            lines += ["", *_component(name, components[name])]
    return "\n".join(lines) + "\n"


def _operations(schema: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) sorted by path, then by the usual method order."""
    for path in sorted(schema.get("paths", {})):
        item = schema["paths"][path]
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    """One route: heading, summary, description, parameters, body, responses."""
    lines = [f"## {method.upper()} {path}", ""]
    if op.get("summary"):
        lines += [f"**{op['summary']}**", ""]
    if op.get("description"):
        lines += [str(op["description"]).strip(), ""]
    if op.get("deprecated"):
        lines += ["*Deprecated.*", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | constraints |", "|---|---|---|---|---|"]
        for param in params:
            param_schema = param.get("schema", {})
            lines.append(
                f"| `{param['name']}` | {param.get('in', '')} | {_cell(_type(param_schema))} | "
                f"{'yes' if param.get('required') else 'no'} | {_cell(_constraints(param_schema))} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            required = "required" if body.get("required") else "optional"
            lines += [f"Request body ({required}, `{media}`): {_type(content.get('schema', {}))}", ""]
    lines += ["| status | meaning | content |", "|---|---|---|"]
    for status in sorted(op.get("responses", {})):
        response = op["responses"][status]
        contents = response.get("content", {})
        shown = "; ".join(f"`{media}` {_type(c.get('schema', {}))}".rstrip() for media, c in contents.items())
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {_cell(shown) or '—'} |")
    return lines


def _component(name: str, schema: dict[str, Any]) -> list[str]:
    """One named schema: its description and a table of its properties."""
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [str(schema["description"]).strip(), ""]
    properties = schema.get("properties", {})
    if not properties:
        return [*lines, f"Type: {_type(schema)}"]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | constraints |", "|---|---|---|---|"]
    for field, field_schema in properties.items():
        lines.append(
            f"| `{field}` | {_cell(_type(field_schema))} | {'yes' if field in required else 'no'} | "
            f"{_cell(_constraints(field_schema))} |"
        )
    return lines


def _type(schema: dict[str, Any]) -> str:
    """A short human reading of a JSON schema: `string`, `integer or null`, `one of "a", "b"`, a link to a schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_slug(name)})"
    if "enum" in schema:
        return "one of " + ", ".join("null" if v is None else f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            joiner = " and " if key == "allOf" else " or "
            return joiner.join(dict.fromkeys(_type(s) for s in schema[key]))
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    words = []
    for k in kinds:
        if k == "array":
            words.append(f"array of {_type(schema.get('items', {}))}")
        elif k == "string" and schema.get("format"):
            words.append(f"string ({schema['format']})")
        else:
            words.append(str(k))
    return " or ".join(words) if words else "any"


def _constraints(schema: dict[str, Any]) -> str:
    """Length, range, pattern and default of a schema (and of its non-null variant)."""
    variants = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
    found: list[str] = []
    for variant in variants:
        for key, label in CONSTRAINTS:
            if key in variant and variant[key] not in (_NO_LIMIT, -_NO_LIMIT - 1):
                found.append(f"{label} `{variant[key]}`")
    return ", ".join(dict.fromkeys(found))


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    """Write the reference (or, with --check, exit 1 when the committed file is stale)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REFERENCE, help="where to write (default docs/api-reference.md)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    args = parser.parse_args(argv)
    text = render(openapi_schema())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
