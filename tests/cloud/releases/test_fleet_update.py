"""US-ADMIN-010 end to end: the hub publishes signed releases to two appliances (real `qms-edge serve` processes, each
run from `<root>/current` as the image's unit runs it, restarted by the test as systemd would). Appliance A gets a
good v2 and runs it; appliance B gets a broken build (its app fails at import), does not answer its health check,
rolls back to v1 and reports the failure; the hub's fleet view shows both; every ticket issued throughout — before,
during and after the switches — is in each branch's log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from cloud.credentials import issue
from cloud.releases import fleet
from cloud.releases.signing import load_or_create_key, make_bundle, public_pem
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from edge import updates
from tests.cloud.admin.conftest import add_accounts, sign_in
from tests.images.conftest import running_hub
from tests.support.appliance import event_rows, free_port, mint_token, seed_demo, terminate
from tests.support.cloud_hub import wait_until

REPO = Path(__file__).resolve().parents[3]


def build_wheel(tmp: Path, version: str, *, broken: bool = False) -> Path:
    """This checkout's wheel at `version`; a broken build's app raises at import (as a bad release would)."""
    src = tmp / f"src-{version}"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    for rel in files:
        if (REPO / rel).is_file() and not rel.startswith(("tests/", "docs/", "firmware-configs/")):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / rel, src / rel)
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1))
    if broken:
        app = src / "edge" / "web" / "app.py"
        app.write_text('raise RuntimeError("broken build")\n' + app.read_text())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=600)  # fmt: skip
    return next((tmp / "dist").glob(f"qms-{version}-*.whl"))


def v1_root(root: Path) -> None:
    """`<root>/venvs/0.1.0` + `current`: a venv whose dependencies (and v1 itself) come from the test's venv."""
    venv = root / "venvs" / "0.1.0"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    ours = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    (site / "zz-test-deps.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    (root / "current").symlink_to("venvs/0.1.0")


class Supervised:
    """`<root>/current/bin/python -m edge.cli serve` on a fixed port, restarted on demand (systemd's role)."""

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root, self.data_dir, self.port = root, data_dir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.health = f"http://127.0.0.1:{self.port}/api/v1/health"
        self.log = data_dir.parent / f"{data_dir.name}.log"

    def start(self) -> None:
        python = str(self.root / "current" / "bin" / "python")
        env = {**os.environ, "QMS_MDNS": "0", "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([python, "-m", "edge.cli", "serve", "--data-dir", str(self.data_dir), "--host",
                                          "127.0.0.1", "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.root)  # as systemd: not the checkout  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, 10)

    def restart(self) -> None:
        self.stop()
        self.start()


class TicketFeed:
    """Issues a ticket every 0.1 s until stopped, retrying each (same request_id) until the appliance takes it."""

    def __init__(self, appliance: Supervised, token: str) -> None:
        self.appliance, self.token = appliance, token
        self.issued: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        url = f"http://127.0.0.1:{self.appliance.port}/api/v1/tickets"
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self.stopping.is_set():
            request_id = str(uuid.uuid4())
            while True:  # a restart in between: the same request again, never a second ticket
                try:
                    r = httpx.post(url, json={"service_id": "teller", "request_id": request_id}, headers=headers,
                                   timeout=5)  # fmt: skip
                    if r.status_code in (200, 201):
                        self.issued.append(request_id)
                        break
                except httpx.HTTPError:
                    pass
                if self.stopping.wait(0.1):
                    return
            self.stopping.wait(0.1)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheels")
    return {"good": build_wheel(tmp, "0.2.0"), "broken": build_wheel(tmp, "0.2.0b1", broken=True)}


@pytest.fixture
def appliances(tmp_path: Path) -> Iterator[dict[str, Supervised]]:
    found = {}
    for name in ("jkt-sudirman", "bdg-dago"):
        root, data = tmp_path / name / "opt", tmp_path / name / "data"
        v1_root(root)
        seed_demo(data)
        found[name] = Supervised(root, data)
    yield found
    for appliance in found.values():
        appliance.stop()


def test_release_v2_runs_on_one_appliance_and_rolls_back_on_the_broken_one(
    wheels: dict[str, Path], appliances: dict[str, Supervised], tmp_path: Path
) -> None:
    (tmp_path / "hub").mkdir()
    with running_hub(tmp_path / "hub") as (hub, _code, store_url):
        engine = create_store_engine(store_url)
        issue(engine, tmp_path / "hub" / "keys", "acme", "bdg-dago")  # jkt-sudirman was issued by running_hub
        key = load_or_create_key(tmp_path / "hub" / "keys" / "release.key")
        pub = updates.load_public_key(public_pem(key))
        for label, version in (("good", "0.2.0"), ("broken", "0.2.0b1")):
            fleet.register(engine, make_bundle([wheels[label]], version, tmp_path / "hub" / "releases" / version, key))
        assert fleet.publish(engine, "0.2.0", "acme", "canary", branch_ids=["jkt-sudirman"], actor="ops") == [
            "jkt-sudirman"
        ]
        assert fleet.publish(engine, "0.2.0b1", "acme", "canary", branch_ids=["bdg-dago"], actor="ops")

        feeds = {}
        for name, appliance in appliances.items():
            appliance.start()
            assert updates.healthy(appliance.health, 60), appliance.log.read_text()[-3000:]
            feeds[name] = TicketFeed(appliance, mint_token(appliance.data_dir, "agent1"))
            feeds[name].thread.start()
        wait_until(lambda: all(len(f.issued) >= 3 for f in feeds.values()), what="tickets before the update")

        outcomes = {}
        for name, appliance in appliances.items():
            bundle = updates.fetch_assigned(hub, "acme", name, tmp_path / name / "downloads")
            assert bundle is not None
            outcomes[name] = updates.apply_release(bundle=bundle, public_key=pub, root=appliance.root,
                                                   data_dir=appliance.data_dir, restart=appliance.restart,
                                                   health_url=appliance.health, health_seconds=30)  # fmt: skip
            seed = (tmp_path / "hub" / "keys" / f"acme.{name}.nk").read_bytes().strip()
            updates.report(hub, outcomes[name], "acme", name, seed)
        before_stop = {name: len(f.issued) for name, f in feeds.items()}
        wait_until(lambda: all(len(f.issued) >= before_stop[n] + 3 for n, f in feeds.items()), what="tickets after")
        for feed in feeds.values():
            feed.stopping.set()
            feed.thread.join(timeout=10)

        good, bad = outcomes["jkt-sudirman"], outcomes["bdg-dago"]
        assert (good.status, good.running) == ("running", "0.2.0"), good
        assert (bad.status, bad.running) == ("rolled_back", "0.1.0"), bad
        assert "rolled back to 0.1.0" in bad.detail
        assert (appliances["jkt-sudirman"].root / "current").resolve().name == "0.2.0"
        assert (appliances["bdg-dago"].root / "current").resolve().name == "0.1.0"
        running_v2 = httpx.get(appliances["jkt-sudirman"].health, timeout=5)
        assert running_v2.is_success
        assert "0.2.0b1 did not answer" in bad.detail

        for name, feed in feeds.items():
            logged = {r[0] for r in event_rows(appliances[name].data_dir, "SELECT request_id FROM events "
                                               "WHERE type = 'ticket.created'")}  # fmt: skip
            assert set(feed.issued) <= logged, f"{name}: tickets lost across the update"
            assert len(feed.issued) == len(set(feed.issued))

        add_accounts(engine, "root")
        with TestClient(app=create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "hub" / "keys"))) as c:
            sign_in(c, "root")
            view: dict[str, Any] = c.get("/api/v1/releases/fleet").json()
        by = {b["branch_id"]: b for b in view["branches"]}
        assert by["jkt-sudirman"]["running"] == "0.2.0"
        assert by["jkt-sudirman"]["failures"] == []
        assert by["bdg-dago"]["running"] == "0.1.0"
        assert by["bdg-dago"]["failures"][0]["status"] == "rolled_back"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM release_reports")).scalar() == 2
        engine.dispose()
