"""The ops files (ops/prometheus, ops/grafana) as the tests read them: rules, dashboard queries.

Shared by the static unit tests and the integration test that evaluates every panel's query on
a real Prometheus, so both look at the same list of queries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
GRAFANA_DIR = ROOT / "ops" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "sensor-anomaly.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "sensor-anomaly.json"
JOB = "sensor-dataflow"

# Grafana's built-in interval variables, as $name or ${name}.
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.panel} [{self.ref_id}]"


def alerting_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel that shows data (not rows), those inside collapsed rows too."""
    out = []
    for panel in (board or dashboard())["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def panel_queries(board: dict[str, Any] | None = None) -> list[PanelQuery]:
    return [
        PanelQuery(panel["title"], target.get("refId", "?"), target.get("expr", ""))
        for panel in panels(board)
        for target in panel.get("targets", [])
        if not target.get("hide")
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variables replaced, e.g. {"__rate_interval": "4s"}; an unknown one raises."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return VARIABLE.sub(value, expr)


def grafana_intervals(scrape_interval_s: float, step_s: float) -> dict[str, str]:
    """The values Grafana gives its interval variables for a panel of ``step_s`` resolution,
    with the datasource's scrape interval: $__rate_interval is max($__interval + scrape
    interval, 4 x scrape interval)."""
    rate = max(step_s + scrape_interval_s, 4 * scrape_interval_s)
    return {"__interval": f"{int(step_s * 1000)}ms", "__rate_interval": f"{int(rate * 1000)}ms"}
