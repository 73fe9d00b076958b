"""The kiosk's print relay (firmware-configs/launcher/qms-launcher.py `--relay-only`) as a test process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from tests.support.appliance import terminate

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "firmware-configs" / "launcher" / "qms-launcher.py"


@contextmanager
def running_relay(printer: str, *origins: str, port: int = 0, timeout: float = 2.0) -> Iterator[str]:
    """The relay in its own process under `python -I -S` (no site-packages: it must need the standard library only).

    Yields its base URL once it listens (it prints that line after binding: nothing to poll).
    """
    argv = [sys.executable, "-I", "-S", str(LAUNCHER), "--relay-only", "--print-relay", f"127.0.0.1:{port}",
            "--printer", printer, "--printer-timeout", str(timeout)]  # fmt: skip
    for origin in origins:
        argv += ["--relay-origin", origin]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMS_")}
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a full pipe would stall the relay's logging
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=10)
                log.seek(0)
                raise RuntimeError(f"the relay did not start ({proc.returncode}):\n{log.read()[-3000:]}")
            yield str(json.loads(line)["relay"])
        finally:
            terminate(proc, 5)


def load_launcher() -> ModuleType:
    """The launcher script as a module (its dataclasses look themselves up in sys.modules)."""
    spec = importlib.util.spec_from_file_location("qms_launcher", LAUNCHER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["qms_launcher"] = module
    spec.loader.exec_module(module)
    return module
