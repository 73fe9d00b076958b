"""python-escpos's capabilities cache: ours holds exactly what python-escpos would parse, and processes starting at
the same moment all import (python-escpos's own in-place write made one of two pytest workers fail with EOFError)."""

from __future__ import annotations

import os
import pickle  # nosec B403 - reading back the file this test made
import subprocess
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # python-escpos's own dependency, no stubs installed

from edge.devices.printer.escpos import capabilities_source, write_capabilities_pickle


def test_the_cache_holds_what_python_escpos_parses(tmp_path: Path) -> None:
    target = write_capabilities_pickle(str(tmp_path))
    with open(target, "rb") as f:
        ours = pickle.load(f)  # noqa: S301  # nosec B301 - the file this test just wrote
    with open(capabilities_source(), encoding="utf-8") as f:
        theirs = yaml.safe_load(f)  # python-escpos's own parse
    assert ours == theirs
    before = os.stat(target).st_mtime_ns
    assert write_capabilities_pickle(str(tmp_path)) == target  # fresh: not rewritten
    assert os.stat(target).st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [Path(target).name]  # no scratch file left


def test_processes_starting_together_with_no_cache_all_import(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
    env.pop("CACHE_DIRECTORY", None)
    code = "import edge.devices.printer.escpos as e, escpos.capabilities as c; print(len(c.CAPABILITIES['profiles']))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err.decode()[-500:] for _, err in outcomes]
    assert len({out for out, _ in outcomes}) == 1
    assert int(outcomes[0][0]) > 10
    assert sorted(p.name for p in (tmp_path / "qms-escpos").iterdir()) == [
        f"{sys.version.split()[0]}.capabilities.pickle"
    ]
