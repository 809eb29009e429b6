"""ops/grafana, checked statically (Grafana cannot run here): the provisioning files and the one
dashboard agree with each other and with Prometheus's config, and every panel has a query.

tests/integration/test_ops_metrics.py then evaluates every one of those queries on a real
Prometheus scraping a real dataflow run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops import (
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    JOB,
    PROMETHEUS_CONFIG,
    dashboard,
    grafana_intervals,
    panel_queries,
    panels,
    substitute,
)
from tests.tools import require_tool

# Grafana 10.x/11.x write 36..41; the pinned image (docker-compose.yml) migrates older ones.
SCHEMA_VERSIONS = range(36, 42)
BOARD = dashboard()


def datasource() -> dict:
    [source] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return source


def test_datasource_is_the_compose_prometheus_with_a_fixed_uid() -> None:
    source = datasource()
    assert source["type"] == "prometheus"
    assert source["uid"] == "sensor-prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True
    # $__rate_interval is computed from it: it must be Prometheus's scrape interval.
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_dashboard_provider_reads_the_dashboards_directory() -> None:
    [provider] = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    assert provider["allowUiUpdates"] is False  # the file is the dashboard


def test_dashboard_is_valid_json_with_a_current_schema_version() -> None:
    assert isinstance(BOARD["schemaVersion"], int)
    assert BOARD["schemaVersion"] in SCHEMA_VERSIONS
    assert BOARD["uid"] and len(BOARD["uid"]) <= 40
    assert BOARD["title"]
    assert BOARD["templating"]["list"] == []  # no variables but Grafana's interval ones


def test_every_panel_uses_the_provisioned_datasource_and_has_a_query() -> None:
    uid = datasource()["uid"]
    shown = panels(BOARD)
    assert len(shown) >= 10
    for panel in shown:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in targets:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert target.get("expr", "").strip(), f"{panel['title']} {target['refId']}: empty"
            assert f'job="{JOB}"' in target["expr"], f"{panel['title']}: only the dataflow"
            assert not target.get("hide"), panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [p["id"] for p in BOARD["panels"]] + [
        p["id"] for p in panels(BOARD) if p not in BOARD["panels"]
    ]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in BOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_issue_s_panels_are_all_there() -> None:
    """Each thing issue #17 asks the dashboard to show is in some panel's query."""
    exprs = " ".join(q.expr for q in panel_queries(BOARD))
    for metric in (
        "sensor_readings_total",
        "sensor_windows_scored_total",
        "sensor_anomalous_windows_total",
        "sensor_alerts_opened_total",
        "sensor_open_alerts",
        "sensor_alerts_resolved_total",
        "sensor_dead_letters_total",
        "sensor_late_readings_total",
        "bytewax_kafka_consumer_lag",
        "bytewax_stateful_batch_on_batch_duration_seconds_bucket",
        "bytewax_inp_part_next_batch_duration_seconds_bucket",
        "process_resident_memory_bytes",
    ):
        assert metric in exprs, metric
    rows = [p["title"] for p in BOARD["panels"] if p["type"] == "row"]
    assert rows == ["Throughput", "Alerts", "Input health", "Dataflow process"]


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses (and evaluates on no data) each query, Grafana's variables filled in.
    This Prometheus has no `promtool promql` command, so a rule unit test does it: a query that
    does not parse fails the test file."""
    promtool = require_tool("promtool", "Debian package `prometheus`")
    values = grafana_intervals(scrape_interval_s=15, step_s=15)
    cases = [
        {"expr": substitute(q.expr, values), "eval_time": "1m", "exp_samples": []}
        for q in panel_queries(BOARD)
    ]
    test_file = tmp_path / "dashboard_queries_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [{"interval": "15s", "input_series": [], "promql_expr_test": cases}],
            }
        )
    )
    proc = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("expr", "values", "want"),
    [
        ("rate(x[$__rate_interval])", {"__rate_interval": "1m"}, "rate(x[1m])"),
        ("rate(x[${__interval}])", {"__interval": "15000ms"}, "rate(x[15000ms])"),
    ],
)
def test_substitute(expr: str, values: dict[str, str], want: str) -> None:
    assert substitute(expr, values) == want


def test_substitute_refuses_an_unknown_variable() -> None:
    with pytest.raises(KeyError, match=r"\$job"):
        substitute('up{job="$job"}', {})


def test_grafana_rate_interval_is_at_least_four_scrapes() -> None:
    assert grafana_intervals(15, 15) == {"__interval": "15000ms", "__rate_interval": "60000ms"}
    assert grafana_intervals(1, 10)["__rate_interval"] == "11000ms"
    assert DASHBOARD.name == "sensor-anomaly.json"
