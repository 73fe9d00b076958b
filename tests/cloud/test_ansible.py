"""The ansible playbooks are well-formed: YAML plays with hosts and named tasks using known modules, every notify
has its handler, every referenced file exists, and every template renders with the example inventory's variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOKS = ["cloud-hub.yml", "appliance-sync.yml", "appliance.yml"]
MODULES = {"ansible.builtin.pip", "ansible.builtin.command", "ansible.builtin.user", "ansible.builtin.file",
           "ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.systemd", "ansible.builtin.apt",
           "ansible.builtin.group"}  # fmt: skip
TASK_KEYS = {"name", "become", "loop", "notify", "tags", "when", "register"}


def load(name: str) -> Any:
    return yaml.safe_load((ANSIBLE / name).read_text())


def module_of(task: dict[str, Any]) -> str:
    modules = set(task) - TASK_KEYS
    assert len(modules) == 1, f"task {task.get('name')!r} has modules {modules}"
    return modules.pop()


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_structure(playbook: str) -> None:
    plays = load(playbook)
    assert isinstance(plays, list)
    assert plays
    for play in plays:
        assert {"name", "hosts", "tasks"} <= set(play)
        handlers = {h["name"] for h in play.get("handlers", [])}
        for task in play["tasks"] + play.get("handlers", []):
            assert task.get("name"), task
            module = module_of(task)
            assert module in MODULES, module
            args = task[module]
            for notified in [task["notify"]] if isinstance(task.get("notify"), str) else task.get("notify", []):
                assert notified in handlers, f"{playbook}: no handler {notified!r}"
            local = module in {"ansible.builtin.copy", "ansible.builtin.template"}  # file's src is a link target
            src = args.get("src") if isinstance(args, dict) and local else None
            if src and "{{" not in src:
                assert (ANSIBLE / src).exists(), f"{playbook}: missing {src}"


def _context(inventory: dict[str, Any], group: str, host: str, play_vars: dict[str, Any]) -> dict[str, Any]:
    everything = inventory["all"]
    groups = {name: list(g["hosts"]) for name, g in everything["children"].items()}
    host_vars = everything["children"][group]["hosts"][host] or {}
    # Ansible's order: role defaults lowest, then the inventory's all vars, then its host vars.
    return {**play_vars, **everything["vars"], **host_vars, "groups": groups, "qms_edge_etc": "/etc/qms-edge"}


def play_defaults(playbook: str, index: int) -> dict[str, Any]:
    """A play's own vars and the defaults of the roles it lists (the playbooks keep their defaults as role defaults
    so the inventory overrides them)."""
    play = load(playbook)[index]
    found: dict[str, Any] = {}
    for role in play.get("roles", []):
        name = role if isinstance(role, str) else role["role"]
        found.update(yaml.safe_load((ANSIBLE / "roles" / name / "defaults" / "main.yml").read_text()) or {})
    return {**found, **play.get("vars", {})}


def test_the_inventory_overrides_the_playbooks_defaults() -> None:
    """Play vars outrank every inventory variable in Ansible: a default kept there silently ignored the example
    inventory's `qms_wheelhouse`. The playbooks keep no vars of their own; their defaults are role defaults."""
    for playbook in PLAYBOOKS:
        for play in load(playbook):
            assert "vars" not in play or set(play["vars"]) <= {"qms_edge_etc"}, f"{playbook}: {sorted(play['vars'])}"
    inventory = load("inventory.example.yml")
    host = next(iter(inventory["all"]["children"]["appliances"]["hosts"]))
    context = _context(inventory, "appliances", host, play_defaults("appliance.yml", 0))
    assert context["qms_wheelhouse"] == inventory["all"]["vars"]["qms_wheelhouse"] == "../build/wheels-aarch64"
    assert context["qms_data_dir"] == "/var/lib/qms"  # a default the inventory leaves alone


@pytest.mark.parametrize(
    ("template", "group", "playbook", "play_index"),
    [
        ("nats.env.j2", "nats", "cloud-hub.yml", 0),
        ("nats.service.j2", "nats", "cloud-hub.yml", 0),
        ("qms-cloud.env.j2", "hub", "cloud-hub.yml", 1),
        ("qms-cloud.service.j2", "hub", "cloud-hub.yml", 1),
        ("qms-edge-sync.env.j2", "appliances", "appliance-sync.yml", 0),
        ("qms-edge-backup.env.j2", "appliances", "appliance.yml", 0),
    ],
)
def test_templates_render_with_the_example_inventory(template: str, group: str, playbook: str, play_index: int) -> None:
    inventory = load("inventory.example.yml")
    host = next(iter(inventory["all"]["children"][group]["hosts"]))
    play_vars = play_defaults(playbook, play_index)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701 - config files, not HTML
    context = _context(inventory, group, host, play_vars)
    text = env.from_string((ANSIBLE / "templates" / template).read_text()).render(**context)
    assert "{{" not in text
    if template == "nats.env.j2":
        assert "NATS_ROUTE_3=nats-route://nats-3.hub.example:6222" in text
    if template == "qms-edge-sync.env.j2":
        assert "QMS_BRANCH=jkt-sudirman" in text
        assert "QMS_NATS_NKEY=/etc/qms-edge/cloud.nk" in text
    if template in ("qms-edge-backup.env.j2", "qms-cloud.env.j2"):
        assert "QMS_BACKUP_S3_" not in text.replace("# ", "")  # the store only when the inventory names one


S3_VARS = {"qms_backup_s3_bucket": "qms-backups", "qms_backup_s3_endpoint": "https://s3.example.co.id",
           "qms_backup_s3_access_key": "AKIAEXAMPLE", "qms_backup_s3_secret_key": "example-secret"}  # fmt: skip


@pytest.mark.parametrize(
    ("template", "group", "playbook", "play_index", "lifetimes"),
    [
        ("qms-edge-backup.env.j2", "appliances", "appliance.yml", 0, ["QMS_BACKUP_MAX_AGE_DAYS=7"]),
        ("qms-cloud.env.j2", "hub", "cloud-hub.yml", 1,
         ["QMS_HUB_BACKUP_MAX_AGE_DAYS=7", "QMS_HUB_DB_BACKUP_MAX_AGE_DAYS=7"]),
    ],
)  # fmt: skip
def test_backup_settings_render_with_an_s3_store(
    template: str, group: str, playbook: str, play_index: int, lifetimes: list[str]
) -> None:
    """With the S3 variables set (as ansible renders: trim_blocks) the env file names the store and its key, one
    setting per line, and only the variables given (no empty prefix or region)."""
    inventory = load("inventory.example.yml")
    host = next(iter(inventory["all"]["children"][group]["hosts"]))
    context = {**_context(inventory, group, host, play_defaults(playbook, play_index)), **S3_VARS}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - config files, not HTML  # fmt: skip
    text = env.from_string((ANSIBLE / "templates" / template).read_text()).render(**context)
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in [*lifetimes, "QMS_BACKUP_S3_BUCKET=qms-backups", "QMS_BACKUP_S3_ENDPOINT=https://s3.example.co.id",
                 "QMS_BACKUP_S3_ACCESS_KEY=AKIAEXAMPLE", "QMS_BACKUP_S3_SECRET_KEY=example-secret"]:  # fmt: skip
        assert line in settings, text
    assert not [s for s in settings if s.startswith(("QMS_BACKUP_S3_PREFIX", "QMS_BACKUP_S3_REGION"))]
    assert all(re.fullmatch(r"QMS_[A-Z0-9_]+=\S.*", s) for s in settings), text


ANSIBLE_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_ansible_playbook_syntax_check_passes(playbook: str) -> None:
    """`ansible-playbook --syntax-check` with the example inventory (ansible itself, not only YAML)."""
    out = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory.example.yml", playbook],
        cwd=ANSIBLE, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-syntax", "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_ansible_lint_offline_is_clean() -> None:
    """`ansible-lint --offline` (galaxy is unreachable here: no collection downloads) over every playbook."""
    out = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-lint"), "--offline", "--nocolor", *PLAYBOOKS],
        cwd=ANSIBLE, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-lint"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
