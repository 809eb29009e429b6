"""A real Prometheus (scripts/prometheus.sh, the Debian package) scraping a real dataflow run:
every Grafana panel's query returns data, and every alerting rule loads and evaluates.

The input makes each panel meaningful: readings of both families, malformed messages (dead
letters), late readings, and a machine that overheats, so an alert opens and resolves. It is
sent one 5 s window at a time, each batch only after Prometheus has scraped the previous one,
so every counter rises over several scrapes and its rate() is above zero somewhere (a counter
that appears already at its final value has no rate). Scrapes and rule evaluations every 1 s.

Needs ``prometheus`` and ``promtool`` (Debian package ``prometheus``): under ``make test`` a
missing one fails, otherwise the test skips with the reason (tests/tools.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from bench.workloads import interrupt
from tests.integration.conftest import BROKERS, ROOT, free_port, python_env, wait_for
from tests.ops import JOB, alerting_rules, grafana_intervals, panel_queries, substitute
from tests.tools import require_tool

BASE = 1_710_856_625_000_000_000  # 2024-03-19 13:57:05 UTC: a replay, so windows close by
S = 1_000_000_000  # event time, the same however fast the batches go
SCRIPT = ROOT / "scripts" / "prometheus.sh"
SCRAPE_S = 1
WINDOW_S = 5
BATCHES = 10  # one window of event time each
HOT = (2, 3)  # machine 1's windows at 96 C: its alert opens, then resolves after 2 clean ones
MACHINES = 4
AIR_SENSORS = ("Sensor1", "Sensor2")
# Panels whose value may rightly stay at 0 for this input: the flow drains each small batch
# before a scrape can see a backlog. They must still return data.
MAY_BE_ZERO = {"Consumer lag by partition"}


@dataclass
class Prometheus:
    port: int
    env: dict[str, str]

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self.get(
            "/api/v1/query_range",
            query=expr,
            start=f"{start:.3f}",
            end=f"{end:.3f}",
            step=str(step),
        )["result"]


def script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq", 1),
        "TEMPERATURE_TOPIC": topic_factory("t", 2),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }


@pytest.fixture
def tools() -> None:
    """Checked before anything starts: without them the test fails or skips at once."""
    require_tool("prometheus", "Debian package `prometheus`")
    require_tool("promtool", "Debian package `prometheus`")


@pytest.fixture
def flow(
    tools: None, topics: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    cache = tmp_path / "api-cache"
    cache.mkdir()
    env = python_env(
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(cache),
        ALERT_RESOLVE_WINDOWS="2",
        STATUS_INTERVAL_SECONDS="0",
        **topics,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            interrupt(proc, 30)


@pytest.fixture
def prometheus(flow: tuple[subprocess.Popen[str], int], tmp_path: Path) -> Iterator[Prometheus]:
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "PROMETHEUS_PORT": str(port),
        "PROMETHEUS_SCRAPE_TARGETS": f"127.0.0.1:{flow[1]}",
        "PROMETHEUS_SCRAPE_INTERVAL": f"{SCRAPE_S}s",
        "PROMETHEUS_ALERTMANAGERS": "",
    }
    started = script("start", env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert script("status", env).returncode == 0
        yield Prometheus(port, env)
    finally:
        stopped = script("stop", env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert script("status", env).returncode == 1


def temperature(machine: int, sec: int) -> float:
    return 96.0 if machine == 1 and sec // WINDOW_S in HOT else 60.0 + machine


def send_batch(producer: Producer, topics: dict[str, str], batch: int) -> int:
    """Window ``batch`` of every sensor, two malformed messages, and (from the third window) a
    late reading of machine 3 for a window that closed a batch ago. Readings sent."""
    temp, air = topics["TEMPERATURE_TOPIC"], topics["AIR_QUALITY_TOPIC"]
    sent = 0
    for sec in range(batch * WINDOW_S, (batch + 1) * WINDOW_S):
        for machine in range(MACHINES):
            producer.produce(
                temp,
                key=str(machine).encode(),
                value=orjson.dumps(
                    {"Temperature_C": temperature(machine, sec), "Timestamp": BASE + sec * S}
                ),
            )
        for sensor in AIR_SENSORS:
            producer.produce(
                air,
                key=sensor.encode(),
                value=orjson.dumps({"timestamp": (BASE + sec * S) // 1000, "value": 20.0}),
            )
        sent += MACHINES + len(AIR_SENSORS)
    producer.produce(temp, key=b"0", value=b"{bad")  # invalid_json
    producer.produce(temp, key=b"0", value=b"[]")  # not_an_object
    if batch >= 2:  # after this batch's own readings: machine 3's clock is past that window
        sec = (batch - 2) * WINDOW_S + 1
        producer.produce(
            temp, key=b"3", value=orjson.dumps({"Temperature_C": 63.0, "Timestamp": BASE + sec * S})
        )
        sent += 1
    assert producer.flush(30) == 0
    return sent


def counter(prom: Prometheus, name: str) -> float:
    return prom.scalar(f'sum({name}{{job="{JOB}"}})') or 0.0


def test_every_dashboard_query_returns_data_and_every_rule_evaluates(
    flow: tuple[subprocess.Popen[str], int], prometheus: Prometheus, topics: dict[str, str]
) -> None:
    proc, _ = flow
    prom = prometheus
    wait_for(
        "Prometheus to scrape the dataflow", lambda: prom.scalar(f'up{{job="{JOB}"}}') == 1, proc
    )
    start = time.time()

    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    readings = 0
    for batch in range(BATCHES):
        readings += send_batch(producer, topics, batch)
        # The next batch only once Prometheus has scraped this one whole.
        wait_for(
            f"batch {batch} in Prometheus",
            lambda want=readings: counter(prom, "sensor_readings_total") == want,
            proc,
        )
    wait_for(
        "the alert to open and resolve",
        lambda: counter(prom, "sensor_alerts_resolved_total") == 1,
        proc,
    )
    end = time.time()

    # What was sent is what Prometheus saw (so the queries below look at a known run).
    assert counter(prom, "sensor_alerts_opened_total") == 1
    late = BATCHES - 2
    assert counter(prom, "sensor_late_readings_total") == late
    by_reason = {
        r["metric"]["reason"]: float(r["value"][1])
        for r in prom.query(f'sum by (reason) (sensor_dead_letters_total{{job="{JOB}"}})')
    }
    assert by_reason == {"invalid_json": BATCHES, "not_an_object": BATCHES, "late": late}

    # Every panel's query, with Grafana's interval variables as a 1 s panel step gives them.
    values = grafana_intervals(scrape_interval_s=SCRAPE_S, step_s=1)
    empty, flat = [], []
    queries = panel_queries()
    assert queries
    for query in queries:
        result = prom.query_range(substitute(query.expr, values), start, end + SCRAPE_S, 1)
        if not result:
            empty.append(query.name)
            continue
        numbers = [float(v) for series in result for _, v in series["values"]]
        finite = [v for v in numbers if not math.isnan(v)]
        if not finite or (query.panel not in MAY_BE_ZERO and max(finite) <= 0):
            flat.append(f"{query.name}: {sorted(set(numbers))[:5]}")
    assert not empty, f"panel queries that returned no data: {empty}"
    assert not flat, f"panel queries that never showed a value above 0: {flat}"

    # Every alerting rule is loaded and evaluates without error on the real series, and its
    # expression is valid PromQL for the query API too (a 400 raises).
    names = {rule["alert"] for rule in alerting_rules()}
    for rule in alerting_rules():
        prom.query(rule["expr"])
    health: dict[str, tuple[str, str]] = {}

    def all_ok() -> bool:
        health.clear()
        health.update(
            {
                r["name"]: (r["health"], r.get("lastError", ""))
                for g in prom.get("/api/v1/rules")["groups"]
                for r in g["rules"]
            }
        )
        return set(health) == names and all(h == "ok" for h, _ in health.values())

    try:
        wait_for("every rule evaluated", all_ok, timeout=30)
    finally:
        print(health)
    # The run had late readings, and none the hour before: that is "late readings rising"
    # (pending: it fires after 5 minutes). No other rule but a lag that rose for a moment
    # may be active: both families were read, the flow is up, dead letters are few.
    wait_for(
        "SensorLateReadingsRising to be pending",
        lambda: (
            "SensorLateReadingsRising"
            in {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"]}
        ),
        timeout=30,
    )
    active = {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"]}
    # The notifier's rules (rules/notifier.yml) have no notifier to scrape here; the Watchdog
    # always fires.
    assert "Watchdog" in active
    dataflow_rules = {name for name in active if name.startswith("Sensor")}
    assert dataflow_rules - {"SensorConsumerLagGrowing"} == {"SensorLateReadingsRising"}

    # Stop the flow: the down rule's condition holds at the next scrape, and the alert is
    # pending (it fires after 1 minute).
    interrupt(proc, 30)
    wait_for(
        "SensorDataflowDown to be pending",
        lambda: any(
            a["labels"]["alertname"] == "SensorDataflowDown" and a["state"] == "pending"
            for a in prom.get("/api/v1/alerts")["alerts"]
        ),
        timeout=30,
    )
