"""One sensor sends garbage once; its detection must survive it (issue: a value that switched a
sensor's detection off for good).

Three air-quality sensors send the same clean series, with a spike from 50 to 200 late in it
(air quality has no threshold rule, so only the model can see it). Before the spike, ``overflow``
sends two readings of 1.7e308 in one window (finite JSON numbers whose sum overflows), and
``absurd`` one reading far beyond its level but inside the valid range. Through the real broker
and flow: the out-of-range readings are dead letters with their bytes, every window is finite,
and all three sensors alert on the spike.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import orjson
from confluent_kafka import Producer

from tests.integration.conftest import BROKERS, consume_all, python_env, run_module

BASE = 1_710_856_625  # s, 2024-03-19 13:57:05 UTC, a window boundary
SECONDS = 700  # 140 windows of 5 s at 1 Hz
GARBAGE_AT = 300  # window 60: the model is ready from window 40
SPIKE_AT = 600  # window 120, all five readings at 200
SENSORS = ("clean", "overflow", "absurd")


def stamp(sec: int) -> str:
    return datetime.fromtimestamp(BASE + sec, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def series() -> list[tuple[bytes, bytes]]:
    rng = random.Random(11)
    out = []
    for sec in range(SECONDS):
        base = 200.0 if SPIKE_AT <= sec < SPIKE_AT + 5 else 50.0 + rng.gauss(0, 1)
        for sensor in SENSORS:
            value = base
            if sensor == "overflow" and sec in (GARBAGE_AT, GARBAGE_AT + 2):
                value = 1.7e308
            elif sensor == "absurd" and sec == GARBAGE_AT:
                value = 90_000.0  # inside 0..100000, thousands of spreads from 50
            out.append((sensor.encode(), orjson.dumps({"timestamp": stamp(sec), "value": value})))
    return out


def test_garbage_once_does_not_blind_a_sensor_to_its_next_anomaly(topic_factory) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("aq", 1),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq"),
    }
    msgs = series()
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    for key, value in msgs:
        producer.produce(topics["AIR_QUALITY_TOPIC"], key=key, value=value)
    assert producer.flush(60) == 0

    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(
            KAFKA_TAIL="false",
            EMIT_ALL_WINDOWS="true",
            STATUS_INTERVAL_SECONDS="0",
            LOG_LEVEL="ERROR",
            HST_WINDOW_SIZE="10",
            WARMUP_WINDOWS="30",
            ALERT_COOLDOWN_WINDOWS="5",
            **topics,
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    dead = consume_all(topics["DLQ_TOPIC"])
    overflowing = [v for k, v in msgs if k == b"overflow" and b"1.7e+308" in v]
    assert len(overflowing) == 2
    assert sorted(m.value() for m in dead) == sorted(overflowing)
    assert {dict(m.headers())["reason"] for m in dead} == {b"out_of_range"}

    records = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    by_sensor = {s: [r for r in records if r["sensor_id"] == s] for s in SENSORS}
    for sensor, recs in by_sensor.items():
        assert len(recs) == SECONDS // 5, sensor  # every window, once
        assert all(isinstance(r["mean"], float) and math.isfinite(r["mean"]) for r in recs)
        spike = next(
            r for r in recs if r["window_start"].startswith(stamp(SPIKE_AT)[:19].replace(" ", "T"))
        )
        assert spike["mean"] == 200.0 and spike["ml_anomaly"], (sensor, spike)
        assert spike["event"] == "open" and spike["reasons"] == ["ml"], (sensor, spike)
    garbage = [r for r in by_sensor["absurd"] if r["max"] == 90_000.0]
    assert len(garbage) == 1 and garbage[0]["ml_anomaly"]  # alerted on, not learned
