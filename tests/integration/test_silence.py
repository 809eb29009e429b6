"""Sensors that fall silent, through the real broker and flow: an open alert resolves as stale,
the sensor is then forgotten (the tracked-sensors gauge falls back), and when it comes back it
starts a fresh model."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
from confluent_kafka import Producer

from tests.factories import S
from tests.integration.conftest import (
    BROKERS,
    ROOT,
    consume_all,
    free_port,
    python_env,
    scrape,
    wait_for,
)

STALE_S, TTL_S = 4, 10


def send(topic: str, sensor: str, temps: list[float]) -> None:
    """Readings 1 s apart that end now: a live sensor."""
    producer = Producer({"bootstrap.servers": BROKERS})
    now = time.time_ns()
    for i, temp in enumerate(temps):
        producer.produce(
            topic,
            key=sensor.encode(),
            value=orjson.dumps(
                {"Temperature_C": temp, "Timestamp": now - (len(temps) - 1 - i) * S}
            ),
        )
    assert producer.flush(30) == 0


def test_silence_resolves_as_stale_then_forgets_the_sensor(topic_factory, tmp_path) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq"),
    }
    port = free_port()
    env = python_env(
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
        IDLE_TIMEOUT_SECONDS="1",
        ALERT_STALE_SECONDS=str(STALE_S),
        SENSOR_STATE_TTL_SECONDS=str(TTL_S),
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

    def events() -> list[dict]:
        return [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]

    def metric(name: str) -> float | None:
        try:
            return scrape(port).get(name)
        except OSError:
            return None

    def tracked() -> float | None:
        return metric("sensor_tracked_sensors")

    def open_alerts() -> float | None:
        return metric("sensor_open_alerts")

    try:
        send(topics["TEMPERATURE_TOPIC"], "9", [97.0] * 12)  # overheating, then silent
        wait_for("the tracked gauge to count the sensor", lambda: tracked() == 1.0, flow)
        wait_for("the open-alerts gauge to count its alert", lambda: open_alerts() == 1.0, flow)
        # A family that has sent nothing is a flat 0, not a missing series.
        assert metric('sensor_readings_total{family="air_quality"}') == 0.0
        stale = wait_for(
            "a stale resolution", lambda: [e for e in events() if e["event"] == "resolved"], flow
        )
        wait_for("the open-alerts gauge to fall to 0", lambda: open_alerts() == 0.0, flow)
        forgotten = wait_for(
            "the sensor to be forgotten",
            lambda: [e for e in events() if e["event"] == "forgotten"],
            flow,
        )
        wait_for("the tracked gauge to fall to 0", lambda: tracked() == 0.0, flow)
        send(topics["TEMPERATURE_TOPIC"], "9", [97.0] * 12)  # back, overheating again
        reopened = wait_for(
            "a new alert", lambda: [e for e in events() if e["event"] == "open"][1:], flow
        )
        wait_for("the tracked gauge to count it again", lambda: tracked() == 1.0, flow)
        wait_for("the open-alerts gauge to count the new alert", lambda: open_alerts() == 1.0, flow)
    finally:
        flow.send_signal(signal.SIGKILL)
        flow.wait(20)

    opened = [e for e in events() if e["event"] == "open"]
    [resolved] = stale
    assert resolved["alert_id"] == opened[0]["alert_id"] and resolved["state"] == "resolved"
    assert resolved["resolution"] == "stale" and resolved["silent_seconds"] >= STALE_S
    assert resolved["window_start"] is None and resolved["mean"] is None
    assert resolved["alert"]["peak_mean"] == 97.0
    [gone] = forgotten
    assert gone["sensor_id"] == "9" and gone["silent_seconds"] >= TTL_S
    assert gone["alert_id"] is None and gone["resolution"] is None
    # The returning sensor's model starts again (its threshold rule needs none).
    [again] = reopened
    assert again["model_ready"] is False and again["reasons"] == ["threshold"]
    assert again["alert_id"] != opened[0]["alert_id"]
