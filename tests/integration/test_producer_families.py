"""The producer's configured families and ``--replay`` through the real broker: what lands on the
topics parses, with the dataflow's own parser, to exactly the readings meant.

A sensors file declares four families on fresh topics: two sharing one message (id in a field,
millisecond timestamps), one with nested fields and an ISO timestamp (id in the key), and one
without a timestamp field (the Kafka message timestamp is its event time, id in a nested field).
The producer runs as a user runs it, once simulating them and once replaying a small CSV.
Event times are recent: a topic's time-based retention would delete old Kafka timestamps.
"""

from __future__ import annotations

import time
from pathlib import Path

from dataflow.families import load_families
from dataflow.readings import format_of, parse
from producer.settings import parse_settings
from producer.shapes import time_read_as
from producer.simulate import generate_families
from tests.factories import S
from tests.integration.conftest import consume_all, python_env, run_module

SENSORS = 2
SECONDS = 4


def config(path: Path, topics: dict[str, str]) -> Path:
    path.write_text(
        f"""\
families:
  temp:
    topic: {topics["machines"]}
    sensor_id: id
    value: temp
    timestamp: ts
    timestamp_format: ms
    unit: "°C"
    valid_range: [-50, 200]
    limits: [40, 100]
  vibration:
    topic: {topics["machines"]}
    sensor_id: id
    value: vibration
    timestamp: ts
    timestamp_format: ms
    valid_range: [0, 10]
  humidity:
    topic: {topics["humidity"]}
    value: reading.rh
    timestamp: meta.time
    timestamp_format: iso
    valid_range: [0, 100]
  pressure:
    topic: {topics["pressure"]}
    sensor_id: device.id
    value: bar
    valid_range: [0, 20]
""",
        encoding="utf-8",
    )
    return path


def readings(topic: str, families: list) -> set[tuple[str, str, int, float]]:
    """Every message of ``topic`` as read by each family that reads it."""
    out = set()
    msgs = consume_all(topic)
    for msg in msgs:
        kind, stamp = msg.timestamp()
        for fam in families:
            got = parse(format_of(fam), msg.key(), msg.value(), stamp if kind else None)
            out.add((got.family, got.sensor_id, got.ts, got.value))
    assert len(msgs) * len(families) == len(out)
    return out


def test_simulated_families_and_a_replay_read_back_exactly(topic_factory, tmp_path: Path) -> None:
    topics = {name: topic_factory(name) for name in ("machines", "humidity", "pressure")}
    sensors_file = config(tmp_path / "sensors.yaml", topics)
    families = {f.name: f for f in load_families(sensors_file)}
    env = python_env(SENSORS_CONFIG=str(sensors_file))
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    argv = [
        "--families",
        "temp,vibration,humidity,pressure",
        "--sensors",
        str(SENSORS),
        "--duration",
        str(SECONDS),
        "--start",
        start,
    ]

    produced = run_module(["producer", *argv], env, timeout=120)
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert f"sent {3 * SENSORS * SECONDS} messages (0 failed)" in produced.stderr

    settings = parse_settings(argv, environ={"SENSORS_CONFIG": str(sensors_file)})
    assert settings.start_ns is not None
    expected: dict[str, set] = {topic: set() for topic in topics.values()}
    for reading in generate_families(settings.family_simulation(settings.start_ns)):
        group = settings.groups[reading.group]
        for fam, value in zip(group.families, reading.values, strict=True):
            expected[group.topic].add(
                (fam.name, reading.sensor_id, time_read_as(fam, reading.ts), value)
            )
    assert (
        readings(topics["machines"], [families["temp"], families["vibration"]])
        == expected[topics["machines"]]
    )
    assert readings(topics["humidity"], [families["humidity"]]) == expected[topics["humidity"]]
    assert readings(topics["pressure"], [families["pressure"]]) == expected[topics["pressure"]]
    assert len(expected[topics["machines"]]) == 2 * SENSORS * SECONDS

    # Replay: ISO and epoch timestamps, a sensor id column, a "missing" marker skipped.
    base = int(time.time()) - 3600
    rows = [
        ("d1", str(base), "1.5"),
        ("d2", f"{base + 1}000", "-200"),
        ("d2", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(base + 2)), "19.25"),
        ("d1", str(base + 3), "7"),
    ]
    history = tmp_path / "history.csv"
    history.write_text(
        "sensor_id,timestamp,value\n" + "".join(f"{s},{t},{v}\n" for s, t, v in rows),
        encoding="utf-8",
    )
    replay_topic = topic_factory("replay")
    replay_file = config(tmp_path / "replay.yaml", {**topics, "pressure": replay_topic})
    replayed = run_module(
        [
            "producer",
            "--replay",
            str(history),
            "--family",
            "pressure",
            "--skip-value",
            "-200",
            "--speed",
            "1000",
        ],
        python_env(SENSORS_CONFIG=str(replay_file)),
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert "sent 3 messages (0 failed)" in replayed.stderr
    assert readings(replay_topic, [families["pressure"]]) == {
        ("pressure", "d1", base * S, 1.5),
        ("pressure", "d2", (base + 2) * S, 19.25),
        ("pressure", "d1", (base + 3) * S, 7.0),
    }
