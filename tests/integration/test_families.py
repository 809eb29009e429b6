"""Issue 16 through the real broker: sensor families declared in a ``SENSORS_CONFIG`` file.

One flow run serves most tests (``fleet``): a sensors file with three families on two new topics,
messages produced with explicit event times on 2024-03-01 (long past, so windows close by event
time only), and ``KAFKA_TAIL=false`` so the flow stops at the end of the input and writes every
window (``EMIT_ALL_WINDOWS``). Each test reads its own sensors' records from that run.

- ``humidity`` reads ``humidity-*``: nested fields (``device.id``, ``reading.rh``,
  ``meta.time``), ISO timestamps with offsets, 10 s windows, an ``above``, a ``below`` and a
  ``for_windows: 3`` rule, and overrides for the sensors ``lab-*``. Its partition 0 holds only
  messages in its exact shape (so the poll is decoded whole, the fast path); partition 1 holds
  only out-of-range values, from a sensor of its own.
- ``temperature`` and ``vibration`` both read ``machine-*``: one message, two readings.

The models never get ready in so few windows, so every reason here is a rule's.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import BROKERS, consume_all, python_env, run_module

# 2024-03-01 10:00:00 UTC (12:00 at +02:00): a boundary of 5 s and of 10 s windows.
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
HUMIDITY_WINDOW_S = 10

SENSORS_YAML = """\
families:
  humidity:
    topic: {humidity_topic}
    sensor_id: device.id
    value: reading.rh
    timestamp: meta.time
    timestamp_format: iso
    unit: "%RH"
    valid_range: [0, 100]
    window_seconds: 10
    rules:
      - {{name: too_humid, above: 80, severity: warning}}
      - {{name: too_dry, below: 20, severity: info}}
      - {{name: damp_spell, above: 70, for_windows: 3, severity: critical}}
    sensors:
      "lab-*":
        rules:
          - {{name: too_humid, above: 60, severity: critical}}
      "lab-1":            # also matches lab-1, but the first match wins
        rules:
          - {{name: too_humid, above: 99, severity: info}}
  temperature:
    topic: {machine_topic}
    sensor_id: id
    value: temp
    timestamp: ts
    timestamp_format: ms
    unit: "°C"
    valid_range: [-50, 200]
    window_seconds: 5
    rules:
      - {{name: overheat, above: 90, severity: critical}}
  vibration:
    topic: {machine_topic}
    sensor_id: id
    value: vibration
    timestamp: ts
    timestamp_format: ms
    unit: mm/s
    valid_range: [0, 50]
    rules:
      - {{name: shaking, above: 10}}
"""

# humidity: sensor -> the mean of each of its 10 s windows (two readings each, mean -+ 1)
HUMIDITY_MEANS = {
    "hall-2": [85.0, 50.0, 50.0, 50.0, 50.0],  # too_humid on window 0
    "hall-3": [65.0, 50.0, 50.0, 50.0, 50.0],  # nothing: 65 is below the family's 80
    "lab-1": [65.0, 10.0, 50.0, 50.0, 50.0],  # too_humid by the override, then too_dry
    "hall-dry": [20.0, 50.0, 50.0, 50.0, 50.0],  # too_dry: exactly its level (inclusive)
    "spell-2": [75.0, 75.0, 50.0, 75.0, 75.0],  # never three in a row: no damp_spell
    "spell-3": [70.0, 70.0, 70.0, 50.0, 50.0],  # damp_spell (at its level) on window 2 only
    "hall-4": [85.0, 85.0, 85.0, 50.0, 50.0, 50.0],  # too_humid, then damp_spell joins it
}
# hall-1: ISO timestamps with three different offsets, all in 10:00:00-10:00:10 UTC, and one
# exactly at 10:00:10 UTC, which starts the next window.
HALL_1 = [
    ("2024-03-01T12:00:03.5+02:00", 40.0),
    ("2024-03-01T05:00:05-05:00", 44.0),
    ("2024-03-01T10:00:09.75Z", 51.0),
    ("2024-03-01T11:00:10+01:00", 60.0),
]
OUT_OF_RANGE = [(b"broken-1", 120.0), (b"broken-1", -0.5)]  # humidity, partition 1

# machine: sensor -> (temp, vibration) each second for 10 s: two 5 s windows
MACHINE_SECONDS = 10


def machine_values(sensor: str, sec: int) -> tuple[float, float]:
    temp = {"m1": 70.0 + sec % 5, "m2": 95.0 if sec < 5 else 60.0, "m3": 50.0}[sensor]
    vib = {"m1": 0.5 + 0.1 * (sec % 5), "m2": 1.0, "m3": 12.0 if sec < 5 else 2.0}[sensor]
    return temp, vib


VIBRATION_OUT_OF_RANGE = {"id": "m1", "temp": 77.0, "vibration": 999.0}  # at second 7
BLANK_ID = {"id": "", "temp": 70.0, "vibration": 1.0}  # at second 3: neither family can use it


def ms(sec: float) -> int:
    return int((BASE + timedelta(seconds=sec)).timestamp() * 1000)


def iso_at(sec: float, hours: int) -> str:
    """The event time BASE + sec written at a UTC offset of ``hours``."""
    return (BASE + timedelta(seconds=sec)).astimezone(timezone(timedelta(hours=hours))).isoformat()


def utc(sec: float) -> str:
    """How the output writes BASE + sec."""
    return (BASE + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def humidity_msg(sensor: str, when: str, rh: float) -> bytes:
    return orjson.dumps(
        {"device": {"id": sensor, "model": "HX-1"}, "reading": {"rh": rh}, "meta": {"time": when}}
    )


@dataclass
class FleetRun:
    topics: dict[str, str]
    records: list[dict[str, Any]]
    dead: list[Any]  # confluent_kafka Messages from the dead-letter topic
    sent_oor: list[bytes]  # humidity values sent out of range
    sent_vibration_oor: bytes
    sent_blank_id: bytes

    def windows(self, family: str, sensor: str) -> list[dict[str, Any]]:
        return sorted(
            (r for r in self.records if r["family"] == family and r["sensor_id"] == sensor),
            key=lambda r: r["window_start"],
        )


def produce_fleet(topics: dict[str, str]) -> tuple[list[bytes], bytes, bytes]:
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    hum, machine = topics["humidity"], topics["machine"]
    # humidity, partition 0: every message in the family's exact shape, in event-time order
    msgs: list[tuple[float, bytes]] = []
    for sensor, means in HUMIDITY_MEANS.items():
        for w, mean in enumerate(means):
            start = w * HUMIDITY_WINDOW_S
            msgs.append((start + 1.25, humidity_msg(sensor, iso_at(start + 1.25, 2), mean - 1)))
            msgs.append((start + 6.5, humidity_msg(sensor, iso_at(start + 6.5, -5), mean + 1)))
    for when, rh in HALL_1:
        sec = (datetime.fromisoformat(when) - BASE).total_seconds()
        msgs.append((sec, humidity_msg("hall-1", when, rh)))
    for _, value in sorted(msgs, key=lambda m: m[0]):
        producer.produce(hum, value=value, partition=0)
    oor = [
        humidity_msg(key.decode(), iso_at(2 + i, 0), rh) for i, (key, rh) in enumerate(OUT_OF_RANGE)
    ]
    for key, value in zip((k for k, _ in OUT_OF_RANGE), oor, strict=True):
        producer.produce(hum, key=key, value=value, partition=1)
    # machine: one message carries a temperature and a vibration
    vib_oor = blank = b""
    for sec in range(MACHINE_SECONDS):
        for sensor in ("m1", "m2", "m3"):
            temp, vib = machine_values(sensor, sec)
            doc = {"id": sensor, "temp": temp, "vibration": vib, "ts": ms(sec)}
            value = orjson.dumps(doc)
            producer.produce(machine, key=sensor.encode(), value=value, partition=0)
        if sec == 3:
            blank = orjson.dumps({**BLANK_ID, "ts": ms(sec + 0.5)})
            producer.produce(machine, key=b"m1", value=blank, partition=0)
        if sec == 7:
            vib_oor = orjson.dumps({**VIBRATION_OUT_OF_RANGE, "ts": ms(sec + 0.5)})
            producer.produce(machine, key=b"m1", value=vib_oor, partition=0)
    assert producer.flush(60) == 0
    return oor, vib_oor, blank


@pytest.fixture(scope="module")
def fleet(module_topic_factory, tmp_path_factory) -> Iterator[FleetRun]:
    topics = {
        "humidity": module_topic_factory("humidity", 2),
        "machine": module_topic_factory("machine", 1),
        "ANOMALIES_TOPIC": module_topic_factory("anomalies", 1),
        "DLQ_TOPIC": module_topic_factory("dlq", 1),
    }
    config = tmp_path_factory.mktemp("families") / "sensors.yaml"
    config.write_text(
        SENSORS_YAML.format(humidity_topic=topics["humidity"], machine_topic=topics["machine"]),
        encoding="utf-8",
    )
    oor, vib_oor, blank = produce_fleet(topics)
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(
            SENSORS_CONFIG=str(config),
            KAFKA_TAIL="false",
            EMIT_ALL_WINDOWS="true",
            STATUS_INTERVAL_SECONDS="0",
            LOG_LEVEL="ERROR",
            ALERT_RESOLVE_WINDOWS="3",
            ALERT_UPDATE_WINDOWS="1",
            ANOMALIES_TOPIC=topics["ANOMALIES_TOPIC"],
            DLQ_TOPIC=topics["DLQ_TOPIC"],
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = consume_all(topics["ANOMALIES_TOPIC"])
    records = []
    for msg in out:
        rec = orjson.loads(msg.value())
        assert msg.key() == rec["sensor_id"].encode()
        records.append(rec)
    yield FleetRun(topics, records, consume_all(topics["DLQ_TOPIC"]), oor, vib_oor, blank)


def test_nested_fields_and_iso_offsets_are_windowed_in_utc(fleet: FleetRun) -> None:
    first, second = fleet.windows("humidity", "hall-1")
    assert (first["window_start"], first["window_end"]) == (utc(0), utc(10))
    assert (first["count"], first["mean"]) == (3, 45.0)  # 12:00:03.5+02, 05:00:05-05, 10:00:09.75Z
    assert (first["min"], first["max"]) == (40.0, 51.0)
    assert (second["window_start"], second["count"], second["mean"]) == (utc(10), 1, 60.0)
    assert first["unit"] == "%RH" and first["event"] == "window" and first["reasons"] == []
    # every humidity sensor: one record per 10 s window, with the mean that was sent
    for sensor, means in HUMIDITY_MEANS.items():
        recs = fleet.windows("humidity", sensor)
        assert [r["window_start"] for r in recs] == [utc(10 * w) for w in range(len(means))]
        assert [(r["count"], r["mean"]) for r in recs] == [(2, m) for m in means], sensor
    assert all("ml" not in r["reasons"] for r in fleet.records)


def test_threshold_rule_opens_an_alert_with_its_name_mean_unit_and_severity(
    fleet: FleetRun,
) -> None:
    hot, *rest = fleet.windows("humidity", "hall-2")
    assert (hot["event"], hot["mean"], hot["unit"]) == ("open", 85.0, "%RH")
    assert (hot["reasons"], hot["severity"], hot["threshold"]) == (["too_humid"], "warning", 80.0)
    assert hot["threshold_alarm"] and hot["anomaly"] and not hot["ml_anomaly"]
    alert = hot["alert"]
    assert (alert["reasons"], alert["severity"], alert["peak_mean"]) == (
        ["too_humid"],
        "warning",
        85.0,
    )
    assert alert["opened_at"] == utc(0)
    # clean afterwards: no reason, resolved after ALERT_RESOLVE_WINDOWS=3 clean windows
    assert [r["reasons"] for r in rest] == [[], [], [], []]
    resolved = [r for r in rest if r["event"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["window_start"] == utc(30)
    assert resolved[0]["alert_id"] == hot["alert_id"]


def test_below_rule(fleet: FleetRun) -> None:
    dry, *rest = fleet.windows("humidity", "hall-dry")
    assert (dry["event"], dry["mean"], dry["reasons"], dry["severity"]) == (
        "open",
        20.0,
        ["too_dry"],
        "info",
    )  # at the level: inclusive
    assert (dry["alert"]["reasons"], dry["alert"]["severity"]) == (["too_dry"], "info")
    assert all(r["reasons"] == [] for r in rest)


def test_for_windows_3_needs_three_consecutive_windows(fleet: FleetRun) -> None:
    # 75, 75, 50, 75, 75: four hot windows, never three in a row
    spell_2 = fleet.windows("humidity", "spell-2")
    assert [r["mean"] for r in spell_2] == HUMIDITY_MEANS["spell-2"]
    assert all(r["reasons"] == [] and r["event"] == "window" for r in spell_2)
    # 70, 70, 70, 50, 50 (70 is the level, inclusive): fires on the third window only
    spell_3 = fleet.windows("humidity", "spell-3")
    assert [r["reasons"] for r in spell_3] == [[], [], ["damp_spell"], [], []]
    third = spell_3[2]
    assert (third["event"], third["window_start"], third["mean"], third["severity"]) == (
        "open",
        utc(20),
        70.0,
        "critical",
    )
    assert third["alert"]["reasons"] == ["damp_spell"]


def test_severity_is_the_highest_of_the_reasons_that_fired(fleet: FleetRun) -> None:
    """hall-4 stays at 85: too_humid (warning) from window 0, damp_spell (critical) joins it
    on window 2, which raises the open alert's severity: news, sent as an update."""
    recs = fleet.windows("humidity", "hall-4")
    assert [r["reasons"] for r in recs] == [
        ["too_humid"],
        ["too_humid"],
        ["too_humid", "damp_spell"],
        [],
        [],
        [],
    ]
    assert [r["severity"] for r in recs] == ["warning", "warning", "critical", None, None, None]
    assert [r["event"] for r in recs] == [
        "open",
        "window",
        "update",
        "window",
        "window",
        "resolved",
    ]
    assert recs[0]["alert"]["severity"] == "warning"
    for rec in recs[2], recs[5]:
        assert (rec["alert"]["severity"], rec["alert"]["reasons"]) == (
            "critical",
            ["too_humid", "damp_spell"],
        )
        assert rec["alert"]["anomalous_windows"] == 3


def test_per_sensor_override_applies_to_matching_sensors_only(fleet: FleetRun) -> None:
    # hall-3 sends 65: under the family's too_humid (80), nothing
    hall_3 = fleet.windows("humidity", "hall-3")
    assert hall_3[0]["mean"] == 65.0 and hall_3[0]["threshold"] == 80.0
    assert all(r["reasons"] == [] and r["event"] == "window" for r in hall_3)
    # lab-1 sends 65 too: "lab-*" (the first pattern that matches) sets too_humid at 60,
    # critical; its other rules are the family's, so too_dry still fires on its dry window
    hot, dry, *_, last = fleet.windows("humidity", "lab-1")
    assert (hot["event"], hot["mean"], hot["reasons"], hot["severity"], hot["threshold"]) == (
        "open",
        65.0,
        ["too_humid"],
        "critical",
        60.0,
    )
    assert hot["alert"]["severity"] == "critical"
    assert (dry["mean"], dry["reasons"], dry["severity"]) == (10.0, ["too_dry"], "info")
    assert (dry["event"], dry["alert"]["reasons"]) == ("update", ["too_humid", "too_dry"])
    # one episode: it keeps its highest severity and gathers both reasons
    assert (last["event"], last["alert_id"]) == ("resolved", hot["alert_id"])
    assert (last["alert"]["severity"], last["alert"]["reasons"]) == (
        "critical",
        ["too_humid", "too_dry"],
    )


def test_out_of_range_value_is_a_dead_letter_with_its_original_bytes(fleet: FleetRun) -> None:
    dead = [
        m
        for m in fleet.dead
        if dict(m.headers())["source_topic"] == fleet.topics["humidity"].encode()
    ]
    assert sorted(m.value() for m in dead) == sorted(fleet.sent_oor)
    assert sorted(m.key() for m in dead) == sorted(k for k, _ in OUT_OF_RANGE)
    for msg in dead:
        headers = dict(msg.headers())
        assert headers["reason"] == b"out_of_range"
        assert headers["source_partition"] == b"1"
        assert b"reading.rh" in headers["detail"]
        assert "family" not in headers  # one family reads this topic
    assert fleet.windows("humidity", "broken-1") == []  # never reached a window


def test_two_families_read_one_topic(fleet: FleetRun) -> None:
    """One message, two readings: each family has its own windows, unit and rules."""
    sent: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for sec in range(MACHINE_SECONDS):
        for sensor in ("m1", "m2", "m3"):
            temp, vib = machine_values(sensor, sec)
            sent[("temperature", sensor, sec // 5)].append(temp)
            sent[("vibration", sensor, sec // 5)].append(vib)
    sent[("temperature", "m1", 1)].append(VIBRATION_OUT_OF_RANGE["temp"])  # vibration refused it
    for family, unit in (("temperature", "°C"), ("vibration", "mm/s")):
        for sensor in ("m1", "m2", "m3"):
            recs = fleet.windows(family, sensor)
            assert [r["window_start"] for r in recs] == [utc(0), utc(5)], (family, sensor)
            for w, rec in enumerate(recs):
                vals = sent[(family, sensor, w)]
                assert rec["unit"] == unit
                assert rec["count"] == len(vals), (family, sensor, w)
                assert rec["mean"] == pytest.approx(statistics.fmean(vals), abs=1e-9)
    assert fleet.windows("temperature", "m1")[1]["count"] == 6
    assert fleet.windows("vibration", "m1")[1]["count"] == 5
    # each family's own rule, on its own value
    overheat = fleet.windows("temperature", "m2")[0]
    assert (overheat["event"], overheat["mean"], overheat["reasons"], overheat["severity"]) == (
        "open",
        95.0,
        ["overheat"],
        "critical",
    )
    shaking = fleet.windows("vibration", "m3")[0]
    assert (shaking["event"], shaking["mean"], shaking["reasons"], shaking["severity"]) == (
        "open",
        12.0,
        ["shaking"],
        "warning",
    )
    assert fleet.windows("vibration", "m2")[0]["reasons"] == []
    assert fleet.windows("temperature", "m3")[0]["reasons"] == []
    # the message vibration refused: a dead letter naming the family, its bytes untouched
    machine = [
        m
        for m in fleet.dead
        if dict(m.headers())["source_topic"] == fleet.topics["machine"].encode()
    ]
    [dead] = [m for m in machine if dict(m.headers())["reason"] == b"out_of_range"]
    headers = dict(dead.headers())
    assert (dead.key(), dead.value()) == (b"m1", fleet.sent_vibration_oor)
    assert (headers["reason"], headers["family"]) == (b"out_of_range", b"vibration")


BAD_CONFIGS = {
    "rule level not a number": (
        "families:\n  humidity:\n    topic: t\n    value: rh\n    valid_range: [0, 100]\n"
        "    rules:\n      - {name: too_humid, above: high}\n",
        "families.humidity.rules[0].above: expected a number, got a str",
    ),
    "override severity": (
        "families:\n  humidity:\n    topic: t\n    value: rh\n    valid_range: [0, 100]\n"
        "    sensors:\n      'lab-*':\n        rules:\n"
        "          - {name: too_humid, above: 60, severity: urgent}\n",
        "families.humidity.sensors['lab-*'].rules[0].severity: expected one of info, warning, "
        "critical, got 'urgent'",
    ),
    "not YAML": ("families:\n  humidity: [\n", "line 3, column 1: not valid YAML"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_file_fails_at_start_up_with_one_line(case: str, tmp_path: Path) -> None:
    text, what = BAD_CONFIGS[case]
    path = tmp_path / "sensors.yaml"
    path.write_text(text, encoding="utf-8")
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(SENSORS_CONFIG=str(path), KAFKA_TAIL="false"),
        timeout=60,
    )
    assert proc.returncode == 2  # a configuration error, before any Kafka client
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and what in lines[0], lines[0]


def test_shared_topic_dead_letters_always_name_the_family(fleet: FleetRun) -> None:
    """A blank sensor id on the shared topic: each family refuses it, and says so."""
    dead = [m for m in fleet.dead if m.value() == fleet.sent_blank_id]
    assert {dict(m.headers())["reason"] for m in dead} == {b"bad_sensor_id"}
    families = sorted(dict(m.headers()).get("family", b"(no header)") for m in dead)
    assert families == [b"temperature", b"vibration"]
