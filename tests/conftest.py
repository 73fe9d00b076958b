"""Settings for the whole suite."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline (200 ms) measures the machine, not the code: on a 2-core CI box running two test
# workers beside browsers and servers, an example that takes 5 ms idle can take 300 ms. Under CI the deadline is off;
# locally it stays on, to catch an example that became slow.
settings.register_profile("ci", deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (`qms-cloud serve`, `qms-edge serve` under CliRunner) sets up the process's logging:
    one handler on the root logger bound to that run's captured stderr, closed when the run ends, and the level
    INFO. Left in place, every later test's log records go to a closed file ("--- Logging error ---" in their
    captured output), so each test leaves the root logger's own handlers and level as it found them (pytest's
    capture handlers come and go with each phase and are left to pytest)."""
    root = logging.getLogger()
    before, level = [h for h in root.handlers if not _pytests(h)], root.level
    yield
    for handler in [h for h in root.handlers if not _pytests(h) and h not in before]:
        root.removeHandler(handler)
    for handler in before:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")
