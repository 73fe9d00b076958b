"""Notify fixtures: a real SMTP server with STARTTLS from a test CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.notify.smtp_server import SmtpServer


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """An SMTP server of this test's own (STARTTLS required, AUTH required)."""
    server = SmtpServer(tmp_path / "smtp").start()
    try:
        yield server
    finally:
        server.stop()
