"""The producer writes what the dataflow reads: every message built by ``producer.shapes`` parses
(``dataflow.readings.parse``) back to exactly the sensor id, event time and value it was built
from, for every timestamp format, nested paths, ids in the key or a field, no timestamp field,
and families sharing one message."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dataflow.families import Family, builtin, parse_families
from dataflow.readings import format_of, parse
from producer import shapes
from producer.simulate import SimulationConfig, generate

T = 1_710_856_626_905_833_677  # 2024-03-19T13:57:06.905833677Z: digits below every unit
FLOOR = {
    "s": 1_710_856_626_000_000_000,
    "ms": 1_710_856_626_905_000_000,
    "us": 1_710_856_626_905_833_000,
    "ns": T,
    "iso": 1_710_856_626_905_833_000,
    "auto": T,
}


def family(**spec: object) -> Family:
    body = {"topic": "t", "value": "v", "valid_range": [0, 100], **spec}
    return parse_families({"families": {"f": body}}, "test.yaml")[0]


def read_back(fam: Family, msg: shapes.Message) -> tuple[str, int, float]:
    reading = parse(format_of(fam), msg.key, msg.value, msg.timestamp_ms)
    return reading.sensor_id, reading.ts, reading.value


@pytest.mark.parametrize("fmt", ["auto", "iso", "s", "ms", "us", "ns"])
@pytest.mark.parametrize("sensor_id", ["key", "device.id"])
def test_every_format_and_id_source_reads_back(fmt: str, sensor_id: str) -> None:
    fam = family(
        sensor_id=sensor_id, value="reading.rh", timestamp="meta.time.ts", timestamp_format=fmt
    )
    msg = shapes.build_message([fam], "lab-7", T, [42.25])
    assert read_back(fam, msg) == ("lab-7", FLOOR[fmt], 42.25)
    assert shapes.time_read_as(fam, T) == FLOOR[fmt]
    assert msg.key == b"lab-7"
    assert msg.timestamp_ms is None  # the family reads its field, not the Kafka timestamp
    doc = json.loads(msg.value)
    assert doc["reading"] == {"rh": 42.25}
    if sensor_id == "device.id":
        assert doc["device"] == {"id": "lab-7"}


def test_timestamp_shapes() -> None:
    def stamp(fmt: str) -> object:
        fam = family(timestamp="ts", timestamp_format=fmt)
        return json.loads(shapes.build_message([fam], "a", T, [1.0]).value)["ts"]

    assert stamp("iso") == "2024-03-19T13:57:06.905833+00:00"
    assert stamp("s") == 1_710_856_626
    assert stamp("ms") == 1_710_856_626_905
    assert stamp("us") == 1_710_856_626_905_833
    assert stamp("ns") == T
    assert stamp("auto") == T  # a configured auto family: nanoseconds


def test_no_timestamp_field_sets_the_kafka_timestamp() -> None:
    fam = family(sensor_id="id")
    msg = shapes.build_message([fam], "m1", T, [3.5])
    assert json.loads(msg.value) == {"id": "m1", "v": 3.5}
    assert msg.timestamp_ms == T // 1_000_000
    assert read_back(fam, msg) == ("m1", FLOOR["ms"], 3.5)
    assert shapes.time_read_as(fam, T) == FLOOR["ms"]


@pytest.mark.parametrize("value", [0.0, 100.0, 1e-7, 33.333333333333336, 7])
def test_values_are_exact(value: float) -> None:
    fam = family(timestamp="ts")
    assert read_back(fam, shapes.build_message([fam], "x", T, [value]))[2] == value


def test_odd_sensor_ids_read_back() -> None:
    for fam in (family(timestamp="ts"), family(sensor_id="who", timestamp="ts")):
        for sid in ("Ünïcode-Sensor", "a b", "0"):
            assert read_back(fam, shapes.build_message([fam], sid, T, [1.0]))[0] == sid


@pytest.mark.parametrize("name", ["air_quality", "temperature"])
def test_tutorial_families_are_byte_identical_to_the_tutorial_shapes(name: str) -> None:
    fam = next(f for f in builtin(air_quality_topic="aq", temperature_topic="tt") if f.name == name)
    config = SimulationConfig(start_ns=T, families=(name,), sensors=3, duration_s=4)  # type: ignore[arg-type]
    for reading in generate(config):
        msg = shapes.build_message([fam], reading.sensor_id, reading.ts, [reading.value])
        if name == "air_quality":  # the tutorial's field order and text, written by hand
            stamp = shapes.encoded_time(fam, reading.ts)[0]
            want = f'{{"timestamp": "{stamp}", "value": {reading.value!r}}}'
        else:
            want = f'{{"Temperature_C": {reading.value!r}, "Timestamp": {reading.ts}}}'
        assert (msg.key, msg.value) == (reading.sensor_id.encode(), want.encode())
        assert msg.timestamp_ms is None
        got = read_back(fam, msg)
        assert got == (
            reading.sensor_id,
            shapes.time_read_as(fam, reading.ts),
            reading.value,
        )


def test_tutorial_auto_shapes() -> None:
    aq, temp = builtin()
    assert json.loads(shapes.build_message([aq], "Sensor1", T, [23.4]).value) == {
        "timestamp": "2024-03-19 13:57:06.905833",
        "value": 23.4,
    }
    assert json.loads(shapes.build_message([temp], "0", T, [65.25]).value) == {
        "Temperature_C": 65.25,
        "Timestamp": T,
    }
    # A replayed value is not rounded as the tutorial simulation rounds it.
    assert read_back(temp, shapes.build_message([temp], "0", T, [69.88083514]))[2] == 69.88083514


def test_a_configured_family_named_like_a_tutorial_keeps_its_own_paths() -> None:
    fam = replace(family(timestamp="when", timestamp_format="iso"), name="temperature")
    assert not shapes.is_tutorial(fam)
    msg = shapes.build_message([fam], "7", T, [5.0])
    assert json.loads(msg.value) == {"v": 5.0, "when": "2024-03-19T13:57:06.905833+00:00"}
    assert read_back(fam, msg) == ("7", FLOOR["iso"], 5.0)


def two_families(**vibration: object) -> tuple[Family, ...]:
    spec = {
        "families": {
            "temp": {
                "topic": "machines",
                "sensor_id": "id",
                "value": "temp",
                "timestamp": "ts",
                "timestamp_format": "ms",
                "valid_range": [-50, 200],
            },
            "vibration": {
                "topic": "machines",
                "sensor_id": "id",
                "value": "vibration",
                "timestamp": "ts",
                "timestamp_format": "ms",
                "valid_range": [0, 10],
                **vibration,
            },
        }
    }
    return parse_families(spec, "test.yaml")


def test_families_sharing_a_topic_share_one_message() -> None:
    fams = two_families()
    (group,) = shapes.plan(fams)
    assert group.topic == "machines" and group.families == fams
    msg = shapes.build_message(fams, "m1", T, [71.2, 0.4])
    assert json.loads(msg.value) == {
        "id": "m1",
        "temp": 71.2,
        "vibration": 0.4,
        "ts": T // 1_000_000,
    }
    assert read_back(fams[0], msg) == ("m1", FLOOR["ms"], 71.2)
    assert read_back(fams[1], msg) == ("m1", FLOOR["ms"], 0.4)


def test_shared_topic_with_different_but_compatible_fields() -> None:
    # Id from the key for one, a field for the other; a second timestamp, and none at all.
    for extra in (
        {"sensor_id": "key", "timestamp": "meta.t", "timestamp_format": "iso"},
        {"sensor_id": "device", "timestamp": None},
    ):
        spec = {k: v for k, v in extra.items() if v is not None}
        fams = two_families(**spec)
        if extra["timestamp"] is None:
            fams = (fams[0], replace(fams[1], timestamp=None, timestamp_format="auto"))
        shapes.plan(fams)
        msg = shapes.build_message(fams, "m1", T, [71.2, 0.4])
        assert read_back(fams[0], msg) == ("m1", FLOOR["ms"], 71.2)
        assert read_back(fams[1], msg)[::2] == ("m1", 0.4)
        assert read_back(fams[1], msg)[1] == shapes.time_read_as(fams[1], T)


def test_families_reading_one_value_path_get_one_value() -> None:
    fams = two_families(value="temp", valid_range=[-50, 200])
    (group,) = shapes.plan(fams)
    assert shapes.probe_values(group) == [0.0, 0.0]
    msg = shapes.build_message(fams, "m1", T, [71.2, 71.2])
    assert read_back(fams[1], msg)[2] == 71.2
    with pytest.raises(shapes.ShapeConflict, match="'temp'"):
        shapes.build_message(fams, "m1", T, [71.2, 3.0])


@pytest.mark.parametrize(
    ("vibration", "path"),
    [
        ({"timestamp_format": "iso"}, "'ts'"),  # one field, two formats
        ({"value": "temp.x"}, "'temp.x'"),  # a path inside another family's value
        ({"sensor_id": "temp"}, "'temp'"),  # the id where the other writes its value
    ],
)
def test_families_that_cannot_share_a_message_are_refused(vibration: dict, path: str) -> None:
    with pytest.raises(shapes.ShapeConflict, match=f"temp and vibration.*{path}"):
        shapes.plan(two_families(**vibration))


def test_plan_groups_by_topic_in_order() -> None:
    fams = (*builtin(), family(timestamp="ts"))
    groups = shapes.plan(fams)
    assert [(g.topic, g.names) for g in groups] == [
        ("air-quality", "air_quality"),
        ("temperature_readings", "temperature"),
        ("t", "f"),
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1"])
def test_bad_values_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        shapes.build_message([family()], "a", T, [bad])  # type: ignore[list-item]


def test_blank_sensor_id_is_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        shapes.build_message([family()], " ", T, [1.0])
