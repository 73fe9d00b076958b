"""The alert rules pass `promtool` (syntax and unit tests with synthetic series), and the Grafana dashboards are
well-formed and query only metric names a live hub and a live appliance actually expose (issue 16, E-PLAT-01)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cloud.web.app import CloudSettings, create_app
from edge.web.app import Settings
from edge.web.app import create_app as create_edge_app

OPS = Path(__file__).parents[2] / "ops"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: `make system-deps` (Debian prometheus)")
# PromQL words that are not metric names: functions, aggregations, keywords, Grafana variables' labels.
PROMQL_WORDS = {"sum", "max", "min", "count", "avg", "rate", "increase", "by", "without", "on", "unless", "and", "or",
                "histogram_quantile", "time", "vector", "le", "label_values", "bool", "offset"}  # fmt: skip
SYNTHETIC = {"up"}  # Prometheus's own series per target


@needs_promtool
def test_the_rule_files_and_the_scrape_config_are_valid() -> None:
    rules = subprocess.run([PROMTOOL, "check", "rules", *map(str, (OPS / "prometheus").glob("*alerts.yml"))],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(OPS / "prometheus/prometheus.yml")],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_promtool_unit_tests_of_every_alert_pass() -> None:
    tests = sorted((OPS / "prometheus/tests").glob("*.yml"))
    result = subprocess.run([PROMTOOL, "test", "rules", *map(str, tests)], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (OPS / "prometheus/qms-alerts.yml").read_text()
    tested = "".join(path.read_text() for path in tests)
    for alert in re.findall(r"- alert: (\w+)", rules):
        assert f"alertname: {alert}" in tested, f"alert {alert} has no promtool test"


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def _names(text: str) -> set[str]:
    """Family names and the series names they expose, even for a labelled family with no sample yet."""
    families = list(text_string_to_metric_families(text))
    return {f.name + suffix for f in families for suffix in ("", *SUFFIXES.get(f.type, ()))}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every metric name (with its _bucket/_total/... samples) a hub and an appliance answer on /metrics."""
    from tests.support.appliance import seed_demo

    tmp = tmp_path_factory.mktemp("exposed")
    seed_demo(tmp / "data")
    (tmp / "backups").mkdir()
    (tmp / "backups" / "one.tar.gz").write_bytes(b"x")  # so the backup age is exposed
    names: set[str] = set()
    with TestClient(create_edge_app(Settings(data_dir=tmp / "data"))) as edge:
        edge.get("/api/v1/health")
        names |= _names(edge.get("/metrics").text)
    os.environ["QMS_METRICS_TOKEN"] = "t"
    try:
        with TestClient(create_app(CloudSettings(db_url=f"sqlite:///{tmp / 'cloud.sqlite3'}"))) as hub:
            hub.get("/api/v1/health")
            names |= _names(hub.get("/metrics", headers={"Authorization": "Bearer t"}).text)
    finally:
        del os.environ["QMS_METRICS_TOKEN"]
    return names


def _metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels, durations or variables)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_by = re.sub(r"\b(by|without|on)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_by)
    words = set(re.findall(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_ranges))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", w)}


@pytest.mark.parametrize("path", sorted((OPS / "grafana/dashboards").glob("*.json")), ids=lambda p: p.name)
def test_dashboards_are_well_formed_and_query_existing_metrics(path: Path, exposed: set[str]) -> None:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    for panel in panels:
        assert {"id", "type", "title", "gridPos", "targets", "datasource"} <= panel.keys(), panel.get("title")
        assert panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            assert names, target["expr"]
            missing = names - exposed - SYNTHETIC
            assert not missing, f"{path.name} / {panel['title']}: no such metric {sorted(missing)}"


def test_the_provisioning_points_at_the_dashboards() -> None:
    provider = (OPS / "grafana/provisioning/dashboards/qms.yml").read_text()
    assert "/var/lib/grafana/dashboards/qms" in provider
    assert "type: prometheus" in (OPS / "grafana/provisioning/datasources/prometheus.yml").read_text()
