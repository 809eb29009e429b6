"""Prometheus metrics on Bytewax's dataflow API, checked against what was sent."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import orjson
import pytest
from confluent_kafka import Producer

from bench.workloads import interrupt
from tests.factories import T0, S
from tests.integration.conftest import BROKERS, ROOT, free_port, python_env, scrape


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq"),
    }


def test_metrics_count_what_was_sent(topics: dict[str, str], tmp_path) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    for sec in range(40):  # 4 machines x 40 s: 32 windows; machine 1 hot from 10 s to 20 s
        for m in range(4):
            temp = 96.0 if m == 1 and 10 <= sec < 20 else 60.0 + m
            producer.produce(
                topics["TEMPERATURE_TOPIC"],
                key=str(m).encode(),
                value=orjson.dumps({"Temperature_C": temp, "Timestamp": T0 + sec * S}),
            )
    for sec in range(10):  # 2 air-quality sensors x 10 s: 4 windows
        for m in (1, 2):
            stamp = f"2024-03-19 13:57:{5 + sec:02d}.000000"
            producer.produce(
                topics["AIR_QUALITY_TOPIC"],
                key=f"Sensor{m}".encode(),
                value=orjson.dumps({"timestamp": stamp, "value": 20.0}),
            )
    for value in (b"{bad", b"[]", b"{bad"):
        producer.produce(topics["TEMPERATURE_TOPIC"], key=b"0", value=value)
    # Late: machine 3's first window is closed by the time this arrives (same partition order).
    producer.produce(
        topics["TEMPERATURE_TOPIC"],
        key=b"3",
        value=orjson.dumps({"Temperature_C": 60.0, "Timestamp": T0 + 1 * S}),
    )
    assert producer.flush(30) == 0

    port = free_port()
    env = python_env(
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
        IDLE_TIMEOUT_SECONDS="1",
        ALERT_RESOLVE_WINDOWS="2",
        STATUS_INTERVAL_SECONDS="0",
        **topics,
    )
    started = time.time()
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    want = {
        'sensor_readings_total{family="temperature"}': 161.0,  # the late one was read too
        'sensor_readings_total{family="air_quality"}': 20.0,
        'sensor_dead_letters_total{reason="invalid_json"}': 2.0,
        'sensor_dead_letters_total{reason="not_an_object"}': 1.0,
        'sensor_dead_letters_total{reason="late"}': 1.0,
        "sensor_late_readings_total": 1.0,
        "sensor_windows_scored_total": 36.0,  # the idle timeout closes every last window
        "sensor_anomalous_windows_total": 2.0,
        "sensor_alerts_opened_total": 1.0,
        "sensor_alerts_resolved_total": 1.0,
    }
    got: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                got = scrape(port)
            except OSError:
                got = {}
            if all(got.get(k) == v for k, v in want.items()):
                break
            time.sleep(0.5)
        assert flow.poll() is None, flow.stderr.read() if flow.stderr else ""
    finally:
        flow.send_signal(signal.SIGKILL)
        flow.wait(20)
    scraped = time.time()
    assert {k: got.get(k) for k in want} == want
    # The silence gauges (SensorFamilySilent, SensorDataflowStalled): wall-clock times of this
    # run, and an interval for each family that sent.
    stamps = {
        name: got.get(name, 0.0)
        for name in (
            "sensor_last_batch_timestamp_seconds",
            'sensor_family_last_reading_timestamp_seconds{family="temperature"}',
            'sensor_family_last_reading_timestamp_seconds{family="air_quality"}',
        )
    }
    assert all(started <= t <= scraped for t in stamps.values()), (started, stamps, scraped)
    for family in ("temperature", "air_quality"):
        assert got.get(f'sensor_family_reading_interval_seconds{{family="{family}"}}', -1) >= 0
    # Bytewax's own metrics are served beside ours.
    assert any(name.startswith("bytewax_item_inp_count_total") for name in got), sorted(got)


LAG = re.compile(
    r"^bytewax_kafka_consumer_lag"
    r'\{partition="(\d+)",step_id="([^"]+)",topic="([^"]+)"\}$'
)


def consumer_lag(got: dict[str, float]) -> dict[tuple[str, int], float]:
    """(topic, partition) -> lag, from Bytewax's gauge, checking its step label on the way."""
    out = {}
    for name, value in got.items():
        m = LAG.match(name)
        if m:
            assert m.group(2) == "sensor_anomalies.inp", name
            out[m.group(3), int(m.group(1))] = value
    return out


def test_consumer_lag_shows_the_backlog_then_falls_to_zero(
    topics: dict[str, str], tmp_path
) -> None:
    """A backlog in every temperature partition: each partition's lag is seen above 0 (and never
    above its backlog) while the flow drains it, then every input partition reads 0."""
    per_partition = 2000
    temp, aq = topics["TEMPERATURE_TOPIC"], topics["AIR_QUALITY_TOPIC"]
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    for part in range(3):
        for sec in range(per_partition):
            producer.produce(
                temp,
                partition=part,
                key=str(part).encode(),
                value=orjson.dumps({"Temperature_C": 60.0, "Timestamp": T0 + sec * S}),
            )
    assert producer.flush(30) == 0

    port = free_port()
    # One message per poll keeps the drain to a few seconds, so a scrape can catch it midway.
    env = python_env(
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
        KAFKA_BATCH_SIZE="1",
        STATUS_INTERVAL_SECONDS="0",
        **topics,
    )
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    inputs = {(t, p) for t in (temp, aq) for p in range(3)}
    seen_behind: dict[tuple[str, int], float] = {}
    lag: dict[tuple[str, int], float] = {}
    readings = 0.0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                got = scrape(port)
            except OSError:
                got = {}
            lag = consumer_lag(got)
            for key, value in lag.items():
                assert 0 <= value <= per_partition, (key, value)
                if value > 0:
                    seen_behind.setdefault(key, value)
            readings = got.get('sensor_readings_total{family="temperature"}', 0.0)
            if set(lag) == inputs and not any(lag.values()) and readings == 3 * per_partition:
                break
            assert flow.poll() is None, flow.stderr.read() if flow.stderr else ""
            time.sleep(0.05)
    finally:
        interrupt(flow, 30)
    assert set(seen_behind) == {(temp, p) for p in range(3)}, seen_behind  # each was behind
    assert lag == dict.fromkeys(inputs, 0.0)  # ... and caught up, empty partitions too
    assert readings == 3 * per_partition
