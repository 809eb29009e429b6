"""ops/prometheus: promtool accepts the config and the rules, and its unit tests of every rule pass.

Needs ``promtool`` (Debian package ``prometheus``): under ``make test`` a missing one fails,
otherwise these skip with the reason (tests/tools.py).
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict

import pytest
import yaml

from tests.ops import JOB, PROMETHEUS_CONFIG, PROMETHEUS_DIR, RULE_TESTS, RULES, alerting_rules
from tests.tools import require_tool

SEVERITIES = {"critical", "warning"}
NOTIFIER_JOB = "sensor-notifier"
#: Always firing, for the dead-man's switch: no job of ours, and no one to page (severity none).
WATCHDOG = "Watchdog"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", "Debian package `prometheus`")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, cwd=PROMETHEUS_DIR, timeout=120
    )


def test_promtool_checks_the_config_and_the_rules_it_loads() -> None:
    proc = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(RULES)} rule files found" in proc.stdout + proc.stderr


def test_promtool_checks_the_rules() -> None:
    assert RULES
    proc = promtool("check", "rules", *map(str, RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS
    proc = promtool("test", "rules", *map(str, RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_config_scrapes_the_dataflow_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    [static] = job["static_configs"]
    assert static["targets"] == ["dataflow:3030"]  # the compose service, Bytewax's API port
    [notifier] = [j for j in config["scrape_configs"] if j["job_name"] == NOTIFIER_JOB]
    assert notifier["static_configs"] == [{"targets": ["notifier:9495"]}]  # NOTIFIER_METRICS_PORT
    loaded = {
        path for pattern in config["rule_files"] for path in PROMETHEUS_CONFIG.parent.glob(pattern)
    }
    assert loaded == set(RULES)


def test_every_rule_has_a_severity_a_summary_and_a_description() -> None:
    rules = alerting_rules()
    assert len(rules) >= 6
    for rule in rules:
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        if rule["alert"] == WATCHDOG:
            assert rule["labels"]["severity"] == "none"
            continue
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert f'job="{JOB}"' in rule["expr"] or f'job="{NOTIFIER_JOB}"' in rule["expr"], (
            f"{rule['alert']}: only the dataflow's and the notifier's series"
        )


def test_the_issue_s_rules_are_all_there() -> None:
    names = {rule["alert"] for rule in alerting_rules()}
    assert names == {
        "SensorDataflowDown",
        "SensorDataflowStalled",
        "SensorConsumerLagGrowing",
        "SensorDeadLettersHigh",
        "SensorLateReadingsRising",
        "SensorFamilySilent",
        "SensorAlertStorm",
        "SensorInputSkipped",
        "SensorLimitReached",
        "SensorPartitionMoves",
        "NotifierDown",
        "NotifierDeliveryFailing",
        "NotifierAlertsRejected",
        "NotifierAlertsExpired",
        "NotifierOpenAlertsMismatch",
        WATCHDOG,
    }


def test_the_mismatch_rule_compares_with_the_dataflow_s_open_alerts_gauge() -> None:
    from dataflow.status import OPEN_ALERTS
    from notifier.metrics import Metrics

    [rule] = [r for r in alerting_rules() if r["alert"] == "NotifierOpenAlertsMismatch"]
    [dataflow_gauge] = [m.name for m in OPEN_ALERTS.collect()]
    [notifier_gauge] = [m.name for m in Metrics().open.collect()]
    assert f'{dataflow_gauge}{{job="{JOB}"}}' in rule["expr"]
    assert f'{notifier_gauge}{{job="{NOTIFIER_JOB}"}}' in rule["expr"]


def test_every_notifier_metric_a_rule_names_exists() -> None:
    from notifier.metrics import Metrics

    names = {
        sample.name
        for metric in Metrics().registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }
    for rule in alerting_rules():
        for used in set(re.findall(r"\b(notifier_[a-z_]+)\b", rule["expr"])):
            assert used in names, f"{rule['alert']}: {used} is not a notifier metric"


def test_the_watchdog_goes_to_the_dead_man_s_switch_and_nothing_else_does() -> None:
    amtool = require_tool("amtool", "Debian package `prometheus-alertmanager`")
    config = PROMETHEUS_DIR.parent / "alertmanager" / "alertmanager.yml"

    def route(*labels: str) -> str:
        proc = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.strip()

    assert route("alertname=Watchdog", "severity=none") == "dead-mans-switch"
    assert route("alertname=SensorAnomaly", "severity=critical") == "sensor-webhook"
    assert route("alertname=NotifierDown", "severity=critical") == "sensor-webhook"


def rule_test_cases() -> dict[str, dict[str, int]]:
    """alertname -> how many test cases expect it to fire, and how many expect silence."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"fires": 0, "silent": 0})
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                out[case["alertname"]]["fires" if case.get("exp_alerts") else "silent"] += 1
    return out


@pytest.mark.parametrize("alert", sorted(rule["alert"] for rule in alerting_rules()))
def test_every_rule_is_tested_firing_and_silent(alert: str) -> None:
    cases = rule_test_cases()[alert]
    assert cases["fires"] >= 1, f"{alert}: no promtool test expects it to fire"
    if alert != WATCHDOG:  # always firing: it has no silent case
        assert cases["silent"] >= 1, f"{alert}: no promtool test expects it to stay silent"
