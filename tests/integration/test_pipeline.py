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

from tests.factories import T0, S
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
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"], python_env(KAFKA_TAIL="false", **topics, **env)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_overheat_end_to_end(topics: dict[str, str], tmp_path: Path) -> None:
    sent_log = tmp_path / "sent.jsonl"
    produced = run_module(
        [
            "producer",
            "--scenario",
            "overheat",
            "--sensors",
            "4",
            "--duration",
            "60",
            "--start",
            START,
            "--log-sent",
            str(sent_log),
            "--air-quality-topic",
            topics["AIR_QUALITY_TOPIC"],
            "--temperature-topic",
            topics["TEMPERATURE_TOPIC"],
        ],
        python_env(),
    )
    assert produced.returncode == 0, produced.stderr[-3000:]
    run_flow(topics, EMIT_ALL_WINDOWS="true")

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
    assert len(alarms) == len(expected)  # each window reported once
    assert [r["sensor_id"] for r in records if r["event"] == "open"] == ["2"]
    # every produced window was scored and written once (EMIT_ALL_WINDOWS)
    assert sorted(
        (r["sensor_id"], r["window_start"]) for r in records if r["family"] == "temperature"
    ) == sorted(sent)
    for r in alarms:
        vals = sent[(r["sensor_id"], r["window_start"])]
        assert r["count"] == len(vals)
        assert r["mean"] == pytest.approx(statistics.fmean(vals), abs=1e-9)
        assert (r["min"], r["max"]) == (min(vals), max(vals))
    assert consume_all(topics["DLQ_TOPIC"]) == []


def test_injected_anomaly_is_one_open_and_one_resolved(topics: dict[str, str]) -> None:
    """Default output through the broker: alert events, never a burst of per-window duplicates."""
    producer = Producer({"bootstrap.servers": BROKERS})
    base = T0
    temps = [65.0] * 30 + [98.0] * 40 + [65.0] * 30  # one reading a second: 8 hot windows
    for sec, temp in enumerate(temps):
        producer.produce(
            topics["TEMPERATURE_TOPIC"],
            key=b"7",
            value=orjson.dumps({"Temperature_C": temp, "Timestamp": base + sec * S}),
        )
    producer.flush(30)
    run_flow(topics, ALERT_RESOLVE_WINDOWS="3")
    events = [(m.key(), orjson.loads(m.value())) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    assert [(k, e["event"]) for k, e in events] == [(b"7", "open"), (b"7", "resolved")]
    (_, opened), (_, resolved) = events
    assert opened["alert_id"] == resolved["alert_id"]
    assert resolved["alert"]["anomalous_windows"] == 8
    assert resolved["alert"]["peak_mean"] == 98.0


def test_malformed_input_reaches_dead_letters_and_good_data_still_flows(
    topics: dict[str, str],
) -> None:
    producer = Producer({"bootstrap.servers": BROKERS})
    temp_topic = topics["TEMPERATURE_TOPIC"]
    base = T0
    for i in range(6):
        producer.produce(
            temp_topic,
            key=b"9",
            value=orjson.dumps({"Temperature_C": 95.0, "Timestamp": base + i * S}),
        )
    bad = [(b"9", b"{not json"), (b"9", b'"{\\"Temperature_C\\": 1}"'), (None, b"{}")]
    for key, value in bad:
        producer.produce(temp_topic, key=key, value=value)
    producer.flush(30)
    run_flow(topics)
    dead = consume_all(topics["DLQ_TOPIC"])
    assert sorted(((m.key(), m.value()) for m in dead), key=repr) == sorted(bad, key=repr)
    reasons = sorted(dict(m.headers())["reason"] for m in dead)
    assert reasons == [b"bad_key", b"invalid_json", b"not_an_object"]
    [alarm] = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    assert (alarm["event"], alarm["sensor_id"], alarm["count"], alarm["mean"]) == (
        "open",
        "9",
        5,
        95.0,
    )


def test_bad_configuration_fails_fast_naming_the_variable(topics: dict[str, str]) -> None:
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(KAFKA_TAIL="false", WINDOW_SECONDS="-5", **topics),
        timeout=60,
    )
    assert proc.returncode != 0
    assert "WINDOW_SECONDS" in proc.stderr
