"""An ML alert says why on the anomalies topic: readings -> real Kafka -> the flow -> a record
whose ``explain`` names the detector, the value against the sensor's own baseline and the
threshold it crossed; windows without an ML reason carry null."""

from __future__ import annotations

import random

import orjson
import pytest
from confluent_kafka import Producer

from dataflow.families import AIR_QUALITY
from dataflow.readings import Reading
from producer.shapes import encode
from tests.factories import T0, S
from tests.integration.conftest import BROKERS, consume_all, python_env, run_module

WINDOWS = 400  # past the model's warm-up (window_size + warmup windows) with room to settle
SPIKE = 300.0


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq", 1),
        "TEMPERATURE_TOPIC": topic_factory("temp", 1),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }


def test_an_ml_alert_record_explains_itself(topics: dict[str, str]) -> None:
    rng = random.Random(7)
    values = [120.0 + rng.gauss(0, 2) for _ in range(WINDOWS)] + [SPIKE] + [120.0] * 5
    producer = Producer({"bootstrap.servers": BROKERS})
    for i, value in enumerate(values):  # one reading in each 5 s window
        key, message = encode(Reading(AIR_QUALITY, "room-1", T0 + i * 5 * S + S, value))
        producer.produce(topics["AIR_QUALITY_TOPIC"], message, key)
    assert producer.flush(30) == 0
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(KAFKA_TAIL="false", EMIT_ALL_WINDOWS="true", **topics),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    assert len(records) >= WINDOWS
    ml = [r for r in records if "ml" in r["reasons"]]
    assert [r["mean"] for r in ml] == [SPIKE]
    (alert,) = ml
    assert alert["event"] == "open"
    why = alert["explain"]
    assert why["detector"] == "level" and "step" in why["detectors"]
    assert why["value"] == SPIKE and why["unit"] is None
    assert 118.0 < why["baseline"] < 122.0
    assert why["spreads"] > why["threshold_spreads"] >= 6.0
    assert why["text"].startswith(f"level 300.0, {why['spreads']:.1f} spreads above its usual ")
    assert all(r["explain"] is None for r in records if "ml" not in r["reasons"])
