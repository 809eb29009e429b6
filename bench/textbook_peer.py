"""The textbook peer: the classic Bytewax + River anomaly-detection tutorial, on the same topics.

Issue #9 sets "W1 >= 15x the textbook Bytewax flow". This is that flow, written the way Bytewax's
own anomaly-detection tutorial writes it, with no tuning either way:

    input (``KafkaSource``, both topics) -> map (``json.loads``, event time) -> ``key_on`` sensor
    -> ``fold_window`` (``EventClock``, 5 s ``TumblingWindower``, 2 s wait; ``list`` of the
    window's readings, as the tutorials fold) -> map (mean)
    -> ``stateful_map`` (River ``HalfSpaceTrees`` per sensor: score, then learn)
    -> filter (score > 0.7, or temperature mean >= 90) -> map (JSON) -> ``KafkaSink``

Run it like the dataflow, with the same environment variables (``KAFKA_BROKERS``,
``AIR_QUALITY_TOPIC``, ``TEMPERATURE_TOPIC``, ``ANOMALIES_TOPIC``, ``KAFKA_TAIL``):

    KAFKA_TAIL=false python -m bytewax.run bench.textbook_peer:flow

So the harness can check it drained everything, it prints one JSON line at exit: windows scored,
the readings those windows held, late readings and alerts. These are counted per window (and per
late reading), never per message, so counting costs the flow nothing measurable.
"""

from __future__ import annotations

import atexit
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from river import anomaly

BROKERS = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092").split(",")
AQ_TOPIC = os.environ.get("AIR_QUALITY_TOPIC", "air-quality")
TEMP_TOPIC = os.environ.get("TEMPERATURE_TOPIC", "temperature_readings")
OUT_TOPIC = os.environ.get("ANOMALIES_TOPIC", "anomalies")
TAIL = os.environ.get("KAFKA_TAIL", "true").lower() != "false"

# The same feature ranges as the dataflow's defaults (HalfSpaceTrees wants bounded features).
LIMITS = {"aq": (0.0, 500.0), "temp": (0.0, 120.0)}
TEMPERATURE_THRESHOLD = 90.0
SCORE_THRESHOLD = 0.7

stats = {"windows": 0, "readings": 0, "late": 0, "alerts": 0}
atexit.register(lambda: print(json.dumps(stats), flush=True))


def deserialize(msg: KafkaSourceMessage) -> dict[str, Any]:
    """One reading: sensor id (family-prefixed), event time (aware UTC) and value."""
    data = json.loads(msg.value)
    key = msg.key.decode()
    if "Temperature_C" in data:
        ts = datetime.fromtimestamp(data["Timestamp"] / 1e9, tz=UTC)
        return {"sensor": f"temp:{key}", "family": "temp", "ts": ts, "value": data["Temperature_C"]}
    ts = datetime.fromisoformat(data["timestamp"]).replace(tzinfo=UTC)
    return {"sensor": f"aq:{key}", "family": "aq", "ts": ts, "value": data["value"]}


def acc_values(acc: list[dict[str, Any]], reading: dict[str, Any]) -> list[dict[str, Any]]:
    """The tutorials' accumulator: collect the window's readings in a list."""
    acc.append(reading)
    return acc


def mean(id_readings: tuple[int, list[dict[str, Any]]]) -> dict[str, Any]:
    window_id, readings = id_readings
    stats["windows"] += 1
    stats["readings"] += len(readings)
    start = ALIGN + window_id * WINDOW
    return {
        "family": readings[0]["family"],
        "window_start": start.isoformat(),
        "mean": sum(r["value"] for r in readings) / len(readings),
        "count": len(readings),
    }


def detect(
    model: anomaly.HalfSpaceTrees | None, window: dict[str, Any]
) -> tuple[anomaly.HalfSpaceTrees, dict[str, Any]]:
    """Per sensor: score the window mean against the model so far, then learn it."""
    if model is None:
        model = anomaly.HalfSpaceTrees(
            n_trees=5,
            height=3,
            window_size=100,
            seed=42,
            limits={"value": LIMITS[window["family"]]},
        )
    features = {"value": window["mean"]}
    window["score"] = model.score_one(features)
    model.learn_one(features)
    return model, window


def is_anomaly(key_window: tuple[str, dict[str, Any]]) -> bool:
    _sensor, window = key_window
    hit = window["score"] > SCORE_THRESHOLD or (
        window["family"] == "temp" and window["mean"] >= TEMPERATURE_THRESHOLD
    )
    stats["alerts"] += hit
    return hit


def serialize(key_window: tuple[str, dict[str, Any]]) -> KafkaSinkMessage[bytes, bytes]:
    sensor, window = key_window
    return KafkaSinkMessage(sensor.encode(), json.dumps({"sensor": sensor, **window}).encode())


def count_late(_step_id: str, _item: object) -> None:
    stats["late"] += 1


WINDOW = timedelta(seconds=5)
ALIGN = datetime(2024, 1, 1, tzinfo=UTC)

flow = Dataflow("textbook_anomaly_detector")
inp = op.input("inp", flow, KafkaSource(BROKERS, [AQ_TOPIC, TEMP_TOPIC], tail=TAIL))
readings = op.map("deserialize", inp, deserialize)
keyed = op.key_on("key_on_sensor", readings, lambda r: r["sensor"])
clock = EventClock(lambda r: r["ts"], wait_for_system_duration=timedelta(seconds=2))
windower = TumblingWindower(length=WINDOW, align_to=ALIGN)
windowed = fold_window("collect_window", keyed, clock, windower, list, acc_values, list.__add__)
op.inspect("late", windowed.late, count_late)
means = op.map_value("mean", windowed.down, mean)
scored = op.stateful_map("detector", means, detect)
alerts = op.filter("anomalies", scored, is_anomaly)
op.output("out", op.map("serialize", alerts, serialize), KafkaSink(BROKERS, OUT_TOPIC))
