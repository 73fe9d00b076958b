"""firmware-configs: the ESPHome files validate with `esphome config` and use only topics of our grammar; the
kiosk/display launcher finds the appliance by mDNS, applies its fleet config and rolls back a broken one."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.auth import TokenIssuer, User, load_secret
from edge.devices.mqtt import topics
from tests.edge.devices.test_appliance import known
from tests.support.appliance import RunningAppliance

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
ESPHOME_DIR = ROOT / "firmware-configs" / "esphome"
LAUNCHER = ROOT / "firmware-configs" / "launcher" / "qms-launcher.py"
DEVICE_FILES = sorted(p.name for p in ESPHOME_DIR.glob("*.yaml") if not p.name.startswith("secrets"))


def esphome() -> str:
    """The esphome CLI: `QMS_ESPHOME`, the Makefile's tool venv, or PATH."""
    for candidate in (os.environ.get("QMS_ESPHOME"), str(ROOT / ".venv-esphome" / "bin" / "esphome"),
                      shutil.which("esphome")):  # fmt: skip
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("esphome is not installed (make venv installs it into .venv-esphome)")


def test_there_are_a_button_and_a_display() -> None:
    assert {"counter-button.yaml", "counter-display.yaml"} <= set(DEVICE_FILES)


@pytest.mark.parametrize("name", DEVICE_FILES)
def test_esphome_config_is_valid(name: str, tmp_path: Path) -> None:
    tool = esphome()
    work = tmp_path / "esphome"
    shutil.copytree(ESPHOME_DIR, work, ignore=shutil.ignore_patterns("secrets.yaml", ".esphome"))
    shutil.copy(work / "secrets.example.yaml", work / "secrets.yaml")
    out = subprocess.run([tool, "config", name], cwd=work, capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Configuration is valid" in out.stdout + out.stderr
    used = set(re.findall(r"\b(qms/[A-Za-z0-9_./:+-]+)", out.stdout))
    assert used, "the device uses no QMS topic"
    for topic in used:
        if topic.endswith("/device/" + topic.split("/")[3]):
            continue  # ESPHome's own topic_prefix (no leaf): nothing is published under it (discovery and logs off)
        topics.parse(topic)  # raises for a topic outside the grammar


def test_the_launcher_finds_the_appliance_and_rolls_back_a_broken_config(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QMS_MDNS", "1")
    monkeypatch.setenv("QMS_MDNS_INTERFACES", "127.0.0.1")
    with RunningAppliance(data_dir) as appliance:
        admin = {"Authorization": f"Bearer {appliance.token('admin')}"}
        added = httpx.post(f"{appliance.api}/devices", json={"device_id": "board-9", "type": "display",
                                                             "area_id": "lantai-2"}, headers=admin)  # fmt: skip
        creds = httpx.post(f"{appliance.api}/devices/pair", json={"code": added.json()["pairing_code"]}).json()
        # A page must answer for an apply to count as good; the health endpoint stands in for the board page here
        # (the page URL itself is checked in test_the_launcher_builds_the_signed_board_url).
        config = {"config": {"page": "/api/v1/health", "lang": "id"}}
        assert httpx.put(f"{appliance.api}/devices/board-9/config", json=config, headers=admin).status_code == 200

        def launch() -> dict[str, str]:
            env = {**os.environ, "QMS_STATE_DIR": str(tmp_path / "state")}
            out = subprocess.run([sys.executable, str(LAUNCHER), "--dry-run", "--once", "--role", "display",
                                  "--area", "lantai-2", "--branch", "jkt-sudirman", "--token", creds["access_token"],
                                  "--discover-seconds", "20"], capture_output=True, text=True, timeout=60, env=env,
                                 check=False)  # fmt: skip
            assert out.returncode == 0, out.stderr + appliance.log()
            return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

        first = launch()
        assert first["appliance"] == appliance.base_url
        assert first["url"] == f"{appliance.base_url}/api/v1/health?area=lantai-2&lang=id"
        broken = {"config": {"page": "/no-such-page", "lang": "id"}}
        assert httpx.put(f"{appliance.api}/devices/board-9/config", json=broken, headers=admin).json()["version"] == 2
        second = launch()
        assert second["url"] == first["url"]  # rolled back to the last good version
        device = next(d for d in httpx.get(f"{appliance.api}/devices", headers=admin).json()["devices"]
                      if d["device_id"] == "board-9")  # fmt: skip
        assert (device["config_version"], device["applied_version"], device["last_good_version"]) == (2, 1, 1)
        assert "does not answer" in device["apply_error"]


def load_launcher() -> Any:
    """The launcher script as a module (it is installed as a single file, not a package)."""
    spec = importlib.util.spec_from_file_location("qms_launcher", LAUNCHER)
    assert spec is not None
    assert spec.loader is not None
    launcher = importlib.util.module_from_spec(spec)
    sys.modules["qms_launcher"] = launcher  # dataclasses look their module up while the class is created
    spec.loader.exec_module(launcher)
    return launcher


def test_the_launcher_renews_its_device_token_before_it_expires(data_dir: Path, tmp_path: Path) -> None:
    launcher = load_launcher()
    launcher.TOKEN_FILE = tmp_path / "state" / "token"
    device = known(data_dir, "board-1")
    user = User(username="board-1", role="device")
    issuer = TokenIssuer(load_secret(data_dir))
    aging, _ = issuer.issue(user, "jkt-sudirman", now=time.time() - 5 * 24 * 3600, generation=device.generation)
    young, _ = issuer.issue(user, "jkt-sudirman", generation=device.generation)
    with RunningAppliance(data_dir) as appliance:
        found = launcher.Appliance("127.0.0.1", appliance.port, "/api/v1", "jkt-sudirman")
        assert launcher.renew_token(found, young) == young  # a week left: nothing to do
        assert not launcher.TOKEN_FILE.exists()
        fresh = launcher.renew_token(found, aging)
        assert fresh != aging
        assert launcher.token_expiry(fresh) > time.time() + 6.9 * 24 * 3600
        assert launcher.token_accepted(found, fresh)
        assert launcher.TOKEN_FILE.read_text().strip() == fresh
        assert launcher.TOKEN_FILE.stat().st_mode & 0o777 == 0o600
        assert launcher.newest_token(aging) == fresh  # after a restart the renewed token wins over the env file's
    assert launcher.browser_page("http://a/kiosk?area=x", "kiosk", fresh) == f"http://a/kiosk?area=x#token={fresh}"
    assert launcher.browser_page("http://a/board?area=x", "display", fresh) == "http://a/board?area=x"


def test_the_launcher_builds_the_signed_board_url() -> None:
    launcher = load_launcher()
    appliance = launcher.Appliance("10.0.0.2", 8080, "/api/v1", "jkt-sudirman")
    board = launcher.page_url(appliance, {"key": "k3y", "lang": "en", "audio": 1}, "display", "lantai-1")
    assert board == "http://10.0.0.2:8080/board?area=lantai-1&lang=en&key=k3y&audio=1"
    assert launcher.page_url(appliance, {}, "kiosk", "lantai-1") == "http://10.0.0.2:8080/kiosk?area=lantai-1"
    custom = launcher.page_url(appliance, {"page": "/board?service=cs", "area": "lantai-2"}, "display", "lantai-1")
    assert custom == "http://10.0.0.2:8080/board?service=cs&area=lantai-2"
    with pytest.raises(ValueError, match="path on the appliance"):
        launcher.page_url(appliance, {"page": "http://evil.example/"}, "display", "lantai-1")
