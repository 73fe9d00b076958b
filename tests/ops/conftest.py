"""Fixtures for the platform-operations tests (issue 16): an appliance app with an injected rate-limit clock."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from edge.web.app import Settings, create_app
from edge.web.rate_limits import PublicRateLimits
from sync.rate_limit import Limit
from tests.support.appliance import seed_demo


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def ops_demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded demo data dir, created once and copied per test."""
    path = tmp_path_factory.mktemp("ops-demo") / "data"
    seed_demo(path)
    return path


@pytest.fixture
def edge_data(tmp_path: Path, ops_demo_template: Path) -> Path:
    """This test's copy of the demo branch."""
    target = tmp_path / "data"
    shutil.copytree(ops_demo_template, target)
    return target


@pytest.fixture
def rate_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def edge_client(edge_data: Path, rate_clock: FakeClock) -> Iterator[TestClient[Any]]:
    """The appliance app in process with small public limits on a clock the test drives."""
    limits = {"kiosk_tickets": Limit(3, 60), "status_links": Limit(5, 60), "login": Limit(2, 60)}
    app = create_app(Settings(data_dir=edge_data, rate_limits=PublicRateLimits(limits, rate_clock)))
    with TestClient(app) as client:
        yield client
