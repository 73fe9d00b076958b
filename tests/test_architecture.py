"""Import directions and purity rules of ARCHITECTURE.md, checked statically over the source tree."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "sync", "cloud")

# Top-level modules that do I/O or are nondeterministic: never imported by the pure core or the wire contract.
IMPURE_MODULES = frozenset(
    {
        "asyncio",
        "sqlite3",
        "aiosqlite",
        "socket",
        "os",
        "pathlib",
        "subprocess",
        "threading",
        "time",
        "random",
        "uuid",
        "uuid_utils",
        "secrets",
        "http",
        "urllib",
        "httpx",
        "litestar",
        "uvicorn",
        "nats",
        "io",
        "logging",
        "shutil",
        "tempfile",
    }
)
CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today"})


@dataclass(frozen=True)
class Violation:
    """One broken rule at one place in the source."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        """Render as `file:line: message` so editors can jump to it."""
        return f"{self.path}:{self.line}: {self.message}"


Rule = Callable[[str, str], list[Violation]]


def module_name(path: str) -> tuple[str, bool]:
    """Return the dotted module name of a repo-relative path and whether it is a package `__init__`."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def parse(path: str, source: str) -> ast.Module | Violation:
    """Parse source, turning a syntax error into a violation at its line."""
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as exc:
        return Violation(path, exc.lineno or 0, f"cannot parse: {exc.msg}")


def imports(path: str, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) for every import, resolving relative imports against `path`."""
    module, is_package = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            package_parts = module.split(".")
            drop = node.level - 1 if is_package else node.level
            base = ".".join(package_parts[: len(package_parts) - drop])
            if node.module:
                yield node.lineno, f"{base}.{node.module}" if base else node.module
            else:
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}" if base else alias.name


def top_level(name: str) -> str:
    """Return the first component of a dotted module name."""
    return name.split(".", 1)[0]


def is_pure(path: str) -> bool:
    """Tell whether a module is in the pure core (`edge/engine/`) or the wire contract (`sync/contract*`)."""
    parts = PurePosixPath(path).parts
    if parts[:2] == ("edge", "engine"):
        return True
    return len(parts) >= 2 and parts[0] == "sync" and parts[1].startswith("contract")


def forbid_imports(owner: str, forbidden: frozenset[str]) -> Rule:
    """Build a rule: modules under package `owner` import none of the `forbidden` top-level packages."""

    def rule(path: str, source: str) -> list[Violation]:
        """Report imports of forbidden packages from modules under the owner package."""
        if PurePosixPath(path).parts[0] != owner:
            return []
        tree = parse(path, source)
        if isinstance(tree, Violation):
            return [tree]
        return [
            Violation(path, line, f"{owner} must not import {name}")
            for line, name in imports(path, tree)
            if top_level(name) in forbidden
        ]

    rule.__name__ = f"{owner}_imports_none_of_{'_'.join(sorted(forbidden))}"
    return rule


def check_pure_imports(path: str, source: str) -> list[Violation]:
    """Report imports of I/O or nondeterministic modules from the engine or the contract."""
    if not is_pure(path):
        return []
    tree = parse(path, source)
    if isinstance(tree, Violation):
        return [tree]
    found = []
    for line, name in imports(path, tree):
        if top_level(name) in IMPURE_MODULES:
            found.append(Violation(path, line, f"pure module imports {name} (I/O or nondeterminism)"))
        elif path.startswith("edge/engine/") and top_level(name) == "edge" and not name.startswith("edge.engine"):
            # The rest of edge (store, service, web, devices) does I/O: the engine depends on none of it.
            found.append(Violation(path, line, f"edge.engine imports {name} from outside the engine"))
    return found


def is_clock_read(node: ast.AST) -> bool:
    """Tell whether a node calls `x.now()`/`x.utcnow()`/`x.today()` or names `datetime.now`-like functions."""
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_ATTRIBUTES
    if isinstance(node, ast.Attribute) and node.attr in CLOCK_ATTRIBUTES:
        # Catches uncalled references such as `field(default_factory=datetime.now)`.
        owner = node.value
        owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        return owner_name in {"datetime", "date"}
    return False


def check_no_clock(path: str, source: str) -> list[Violation]:
    """Report clock reads in the engine or the contract: time is passed in, never read."""
    if not is_pure(path):
        return []
    tree = parse(path, source)
    if isinstance(tree, Violation):
        return [tree]
    lines = sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.expr) and is_clock_read(node)})
    return [Violation(path, line, "pure module reads the clock; pass `now` in") for line in lines]


def check_docstring(path: str, source: str) -> list[Violation]:
    """Report a module without a module docstring."""
    tree = parse(path, source)
    if isinstance(tree, Violation):
        return [tree]
    if ast.get_docstring(tree) is None:
        return [Violation(path, 1, "module has no docstring")]
    return []


check_edge_direction = forbid_imports("edge", frozenset({"cloud"}))
check_cloud_direction = forbid_imports("cloud", frozenset({"edge"}))
check_sync_direction = forbid_imports("sync", frozenset({"edge", "cloud"}))

RULES = [
    pytest.param(check_edge_direction, id="edge-never-imports-cloud"),
    pytest.param(check_cloud_direction, id="cloud-never-imports-edge"),
    pytest.param(check_sync_direction, id="sync-imports-neither-edge-nor-cloud"),
    pytest.param(check_pure_imports, id="engine-and-contract-import-no-io"),
    pytest.param(check_no_clock, id="engine-and-contract-read-no-clock"),
    pytest.param(check_docstring, id="every-module-has-a-docstring"),
]


def source_files() -> list[str]:
    """List repo-relative paths of every .py file under the three packages."""
    found = []
    for package in PACKAGES:
        for file in (ROOT / package).rglob("*.py"):
            relative = file.relative_to(ROOT)
            if "__pycache__" not in relative.parts:
                found.append(relative.as_posix())
    return sorted(found)


@cache
def read(path: str) -> str:
    """Read a repo-relative source file once per test session."""
    return (ROOT / path).read_text(encoding="utf-8")


@pytest.mark.parametrize("rule", RULES)
def test_tree_follows_rule(rule: Rule) -> None:
    """Every module in the tree follows the rule (vacuously true on an empty tree)."""
    violations = [v for path in source_files() for v in rule(path, read(path))]
    assert not violations, "\n" + "\n".join(map(str, violations))


DOC = '"""Synthetic module."""\n'

BAD_SOURCES = [
    pytest.param(
        check_edge_direction,
        "edge/web/app.py",
        DOC + "import json\nfrom cloud.store import db\n",
        3,
        id="edge-cloud",
    ),
    pytest.param(check_cloud_direction, "cloud/cli.py", DOC + "import edge.cli\n", 2, id="cloud-edge"),
    pytest.param(check_sync_direction, "sync/relay.py", DOC + "\nfrom edge.store import log\n", 3, id="sync-edge"),
    pytest.param(check_sync_direction, "sync/relay.py", DOC + "import cloud\n", 2, id="sync-cloud"),
    pytest.param(check_pure_imports, "edge/engine/decide.py", DOC + "import time\n", 2, id="engine-time"),
    pytest.param(check_pure_imports, "edge/engine/ids.py", DOC + "from uuid_utils import uuid7\n", 2, id="engine-uuid"),
    pytest.param(check_pure_imports, "sync/contract.py", DOC + "import os.path\n", 2, id="contract-os"),
    pytest.param(check_pure_imports, "sync/contract_v2.py", DOC + "import asyncio\n", 2, id="contract-asyncio"),
    pytest.param(
        check_pure_imports,
        "edge/engine/model.py",
        DOC + "from ..store import db\n",
        2,
        id="engine-relative-store",
    ),
    pytest.param(
        check_no_clock,
        "edge/engine/decide.py",
        DOC + "import datetime\nt = datetime.datetime.now()\n",
        3,
        id="engine-now",
    ),
    pytest.param(
        check_no_clock,
        "sync/contract.py",
        DOC + "from datetime import date\nd = date.today()\n",
        3,
        id="contract-today",
    ),
    pytest.param(
        check_no_clock,
        "edge/engine/model.py",
        DOC + "f = field(default_factory=datetime.utcnow)\n",
        2,
        id="engine-factory",
    ),
    pytest.param(check_docstring, "cloud/__init__.py", "import typer\n", 1, id="no-docstring"),
    pytest.param(check_docstring, "sync/events.py", DOC + "def broken(:\n", 2, id="syntax-error"),
]


@pytest.mark.parametrize(("rule", "path", "source", "line"), BAD_SOURCES)
def test_rule_reports_violation(rule: Rule, path: str, source: str, line: int) -> None:
    """A synthetic offending module is reported at the offending file:line."""
    violations = rule(path, source)
    assert [str(v).split(": ", 1)[0] for v in violations] == [f"{path}:{line}"]


GOOD_SOURCES = [
    pytest.param(
        check_edge_direction,
        "edge/web/app.py",
        DOC + "from sync.contract import Event\nimport cloudpickle\n",
        id="edge-sync",
    ),
    pytest.param(check_cloud_direction, "cloud/store.py", DOC + "from . import edge_cache\n", id="cloud-relative"),
    pytest.param(check_pure_imports, "edge/store/log.py", DOC + "import sqlite3\n", id="store-may-do-io"),
    pytest.param(check_pure_imports, "sync/relay.py", DOC + "import nats\n", id="relay-may-do-io"),
    pytest.param(
        check_pure_imports,
        "edge/engine/decide.py",
        DOC + "import datetime\nimport msgspec\nfrom sync.contract import Event\nfrom .model import State\n",
        id="engine-pure",
    ),
    pytest.param(
        check_no_clock,
        "edge/engine/decide.py",
        DOC + "def decide(state, cmd, now):\n    return now\n",
        id="engine-now-passed-in",
    ),
    pytest.param(
        check_no_clock,
        "edge/service.py",
        DOC + "from datetime import datetime, UTC\nt = datetime.now(UTC)\n",
        id="service-may-read-clock",
    ),
]


@pytest.mark.parametrize(("rule", "path", "source"), GOOD_SOURCES)
def test_rule_accepts_allowed_module(rule: Rule, path: str, source: str) -> None:
    """Allowed imports and clock reads outside the pure core are not reported."""
    assert rule(path, source) == []
