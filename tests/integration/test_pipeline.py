"""Producer -> real Kafka -> ``python -m bytewax.run dataflow.main:flow`` -> anomalies topic."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import BROKERS, consume_all, python_env, run_module

START = "2024-03-19T13:57:00"
WINDOW_NS = 5_000_000_000


def window_key(ts_ns: int) -> str:
    start = ts_ns - ts_ns % WINDOW_NS
    return datetime.fromtimestamp(start / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("temp"),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }


def run_flow(topics: dict[str, str], **env: str):
    proc = run_module(["bytewax.run", "dataflow.main:flow"],
                      python_env(KAFKA_TAIL="false", **topics, **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_overheat_end_to_end(topics: dict[str, str], tmp_path: Path) -> None:
    sent_log = tmp_path / "sent.jsonl"
    produced = run_module(
        ["producer", "--scenario", "overheat", "--sensors", "4", "--duration", "60",
         "--start", START, "--log-sent", str(sent_log),
         "--air-quality-topic", topics["AIR_QUALITY_TOPIC"],
         "--temperature-topic", topics["TEMPERATURE_TOPIC"]],
        python_env(),
    )
    assert produced.returncode == 0, produced.stderr[-3000:]
    run_flow(topics)

    # What was actually produced, per sensor and window.
    sent: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in sent_log.read_text().splitlines():
        rec = json.loads(line)
        if rec["topic"] == topics["TEMPERATURE_TOPIC"]:
            val = rec["value"]
            sent[(rec["key"], window_key(val["Timestamp"]))].append(val["Temperature_C"])
    expected = {k for k, vals in sent.items() if statistics.fmean(vals) >= 90.0}
    assert expected and {sensor for sensor, _ in expected} == {"2"}

    out = consume_all(topics["ANOMALIES_TOPIC"])
    records = []
    for msg in out:
        value = orjson.loads(msg.value())
        assert isinstance(value, dict), "value must be one JSON object, encoded once"
        assert msg.key() == value["sensor_id"].encode()
        records.append(value)
    alarms = [r for r in records if r["threshold_alarm"]]
    assert {(r["sensor_id"], r["window_start"]) for r in alarms} == expected
    for r in alarms:
        vals = sent[(r["sensor_id"], r["window_start"])]
        assert r["count"] == len(vals)
        assert r["mean"] == pytest.approx(statistics.fmean(vals), abs=1e-9)
        assert (r["min"], r["max"]) == (min(vals), max(vals))
    assert consume_all(topics["DLQ_TOPIC"]) == []


def test_malformed_input_reaches_dead_letters_and_good_data_still_flows(
    topics: dict[str, str],
) -> None:
    producer = Producer({"bootstrap.servers": BROKERS})
    temp_topic = topics["TEMPERATURE_TOPIC"]
    base = 1_710_856_625_000_000_000
    for i in range(6):
        producer.produce(temp_topic, key=b"9", value=orjson.dumps(
            {"Temperature_C": 95.0, "Timestamp": base + i * 1_000_000_000}))
    bad = [(b"9", b"{not json"), (b"9", b'"{\\"Temperature_C\\": 1}"'), (None, b"{}")]
    for key, value in bad:
        producer.produce(temp_topic, key=key, value=value)
    producer.flush(30)
    run_flow(topics)
    dead = consume_all(topics["DLQ_TOPIC"])
    assert sorted(((m.key(), m.value()) for m in dead), key=repr) == sorted(bad, key=repr)
    reasons = sorted(dict(m.headers())["reason"] for m in dead)
    assert reasons == [b"bad_key", b"invalid_json", b"not_an_object"]
    alarms = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    assert sorted((a["sensor_id"], a["count"], a["mean"]) for a in alarms) == [
        ("9", 1, 95.0), ("9", 5, 95.0)]


def test_bad_configuration_fails_fast_naming_the_variable(topics: dict[str, str]) -> None:
    proc = run_module(["bytewax.run", "dataflow.main:flow"],
                      python_env(KAFKA_TAIL="false", WINDOW_SECONDS="-5", **topics), timeout=60)
    assert proc.returncode != 0
    assert "WINDOW_SECONDS" in proc.stderr
