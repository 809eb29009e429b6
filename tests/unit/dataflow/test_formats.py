"""Configured message shapes: nested paths, ids in the value, every timestamp format, shared
topics. Whole polls (the C decoder) and single messages (the general rules) must agree."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from dataflow.encoding import encode_dead_letter
from dataflow.families import Family
from dataflow.readings import BadMessage, Columns, format_of, parse, parse_poll
from dataflow.routing import route
from tests.factories import S, readings_only
from tests.fakes import FakeMessage

T = 1_709_294_400  # 2024-03-01T12:00:00Z
HUMIDITY = Family(
    "humidity",
    "plant",
    value="reading.rh",
    valid_range=(0.0, 100.0),
    window_seconds=5.0,
    sensor_id="device.id",
    timestamp="ts",
    timestamp_format="iso",
    unit="%RH",
)
VIBRATION = Family(
    "vibration",
    "plant",
    value="vib",
    valid_range=(0.0, 50.0),
    window_seconds=5.0,
    sensor_id="device.id",
    timestamp="ts",
    timestamp_format="iso",
)


def both_paths(
    family: Family, values: list[bytes], stamps: list[int] | None = None
) -> list[tuple[str, int, float]]:
    """Readings of a poll, by the whole-poll decoder and message by message: equal."""
    fmt = format_of(family)
    kafka = stamps or [0] * len(values)
    single = [parse(fmt, b"key-%d" % i, v, kafka[i] or None)[1:4] for i, v in enumerate(values)]
    cols = parse_poll(fmt, values, None if stamps is None else [(1, ms) for ms in stamps])
    assert cols is not None, "the poll left the fast path"
    ids = cols.ids if cols.ids is not None else [f"key-{i}" for i in range(len(values))]
    assert list(zip(map(str, ids), cols.ts, cols.values, strict=True)) == single
    return single


def test_nested_fields_an_id_in_the_value_and_an_iso_time_with_an_offset() -> None:
    msgs = [
        orjson.dumps(
            {
                "device": {"id": "lab-1", "model": "x"},
                "reading": {"rh": 55.5},
                "ts": "2024-03-01T14:00:03.5+02:00",
                "extra": [1, 2],
            }
        )
    ]
    assert both_paths(HUMIDITY, msgs) == [("lab-1", T * S + 3_500_000_000, 55.5)]


def test_an_integer_sensor_id_reads_as_its_digits() -> None:
    msgs = [orjson.dumps({"device": {"id": 17}, "reading": {"rh": 40}, "ts": "2024-03-01T12:00Z"})]
    assert both_paths(HUMIDITY, msgs) == [("17", T * S, 40.0)]


@pytest.mark.parametrize(
    ("fmt", "raw", "ns"),
    [
        ("s", T, T * S),
        ("s", T + 0.25, T * S + 250_000_000),
        ("ms", T * 1000 + 7, T * S + 7_000_000),
        ("us", T * 10**6 + 3, T * S + 3_000),
        ("ns", T * S + 1, T * S + 1),
        ("s", str(T), T * S),  # a string of digits
        ("auto", T, T * S),
        ("auto", T * 1000, T * S),
        ("auto", "2024-03-01 12:00:00.000000", T * S),
        ("auto", "2024-03-01T13:00:00+01:00", T * S),
        ("iso", "2024-03-01 12:00:00", T * S),
    ],
)
def test_every_timestamp_format(fmt: str, raw: object, ns: int) -> None:
    fam = Family(
        "f",
        "t",
        value="v",
        valid_range=(0.0, 10.0),
        window_seconds=5.0,
        timestamp="at",
        timestamp_format=fmt,
    )
    msg = orjson.dumps({"v": 1, "at": raw})
    assert parse(format_of(fam), b"k", msg).ts == ns
    cols = parse_poll(format_of(fam), [msg, msg])
    if cols is not None:  # a string of digits for "s" takes the general rules
        assert cols.ts == [ns, ns]


@pytest.mark.parametrize(
    ("fmt", "raw", "reason"),
    [
        ("iso", T, "bad_timestamp"),
        ("s", "2024-03-01", "bad_timestamp"),
        ("ms", True, "bad_timestamp"),
        ("ns", -5, "timestamp_out_of_range"),
        ("s", 5e9, "timestamp_out_of_range"),
    ],
)
def test_a_time_its_format_does_not_allow_is_refused_on_both_paths(
    fmt: str, raw: object, reason: str
) -> None:
    fam = Family(
        "f",
        "t",
        value="v",
        valid_range=(0.0, 10.0),
        window_seconds=5.0,
        timestamp="at",
        timestamp_format=fmt,
    )
    msg = orjson.dumps({"v": 1, "at": raw})
    with pytest.raises(BadMessage) as err:
        parse(format_of(fam), b"k", msg)
    assert err.value.reason == reason
    assert parse_poll(format_of(fam), [msg]) is None


def test_without_a_timestamp_field_the_kafka_time_is_the_event_time() -> None:
    fam = replace(VIBRATION, timestamp=None, sensor_id="key")
    msgs = [orjson.dumps({"vib": 0.5}), orjson.dumps({"vib": 0.75})]
    got = both_paths(fam, msgs, stamps=[T * 1000, T * 1000 + 5])
    assert got == [("key-0", T * S, 0.5), ("key-1", T * S + 5_000_000, 0.75)]
    assert parse_poll(format_of(fam), msgs, [(0, -1), (1, T * 1000)]) is None  # one has none
    with pytest.raises(BadMessage, match="no timestamp field configured and no Kafka"):
        parse(format_of(fam), b"k", msgs[0])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"reading": {"rh": 5}, "ts": "2024-03-01T12:00Z"}, "missing_field"),
        ({"device": {"id": ""}, "reading": {"rh": 5}, "ts": "2024-03-01T12:00Z"}, "bad_sensor_id"),
        ({"device": {"id": 1.5}, "reading": {"rh": 5}, "ts": "2024-03-01T12:00Z"}, "bad_sensor_id"),
        (
            {"device": {"id": "x" * 300}, "reading": {"rh": 5}, "ts": "2024-03-01T12:00Z"},
            "bad_sensor_id",
        ),
        ({"device": {"id": "a"}, "reading": 5, "ts": "2024-03-01T12:00Z"}, "missing_field"),
        (
            {"device": {"id": "a"}, "reading": {"rh": "5"}, "ts": "2024-03-01T12:00Z"},
            "bad_value_type",
        ),
        (
            {"device": {"id": "a"}, "reading": {"rh": 101}, "ts": "2024-03-01T12:00Z"},
            "out_of_range",
        ),
        ({"device": {"id": "a"}, "reading": {"rh": 5}, "ts": None}, "bad_timestamp"),
    ],
)
def test_a_configured_shape_names_what_is_wrong(value: dict, reason: str) -> None:
    msg = orjson.dumps(value)
    with pytest.raises(BadMessage) as err:
        parse(format_of(HUMIDITY), None, msg)
    assert err.value.reason == reason
    # Through routing (a whole poll, where ids are checked once per sensor): the same reason.
    good = orjson.dumps({"device": {"id": "a"}, "reading": {"rh": 5}, "ts": "2024-03-01T12:00Z"})
    poll = [FakeMessage(None, good, "plant", 0, 0), FakeMessage(None, msg, "plant", 0, 1)]
    by_shard, dead, _ = readings_only(route([poll], {"plant": [format_of(HUMIDITY)]}, 1))
    assert [(d.reason, d.offset, d.value) for d in dead] == [(reason, 1, msg)]
    assert [r.sensor_id for r in by_shard[0]] == ["a"]


def test_two_families_on_one_topic_each_read_their_value() -> None:
    fmts = [format_of(HUMIDITY), format_of(replace(VIBRATION, value="reading.vib"))]
    good = orjson.dumps(
        {"device": {"id": "m1"}, "reading": {"rh": 71.2, "vib": 0.4}, "ts": "2024-03-01T12:00:00Z"}
    )
    half = orjson.dumps(
        {"device": {"id": "m2"}, "reading": {"rh": 30.0}, "ts": "2024-03-01T12:00:01Z"}
    )
    polls = [
        [FakeMessage(None, good, "plant", 0, 1)],
        [FakeMessage(None, good, "plant", 0, 2), FakeMessage(None, half, "plant", 0, 3)],
    ]
    by_shard, dead, by_family = readings_only(route(polls, {"plant": fmts}, 1))
    readings = sorted((r.family, r.sensor_id, r.value) for r in by_shard[0])
    assert readings == [
        ("humidity", "m1", 71.2),
        ("humidity", "m1", 71.2),
        ("humidity", "m2", 30.0),
        ("vibration", "m1", 0.4),
        ("vibration", "m1", 0.4),
    ]
    assert by_family == {"humidity": 3, "vibration": 2}
    # The message without a vibration is a dead letter of that family only, bytes untouched.
    [dl] = dead
    assert (dl.reason, dl.offset, dl.family, dl.value) == ("missing_field", 3, "vibration", half)
    assert dict(encode_dead_letter(dl)[2])["family"] == b"vibration"


def test_on_a_shared_topic_an_id_refused_after_a_whole_poll_names_its_family() -> None:
    """A blank id decodes (it is a string): it is refused at routing, after the fast path, and
    the dead letter still says which family refused it, as the per-message path does."""
    fmts = [format_of(HUMIDITY), format_of(replace(VIBRATION, value="reading.vib"))]
    blank = orjson.dumps(
        {"device": {"id": ""}, "reading": {"rh": 1.0, "vib": 0.4}, "ts": "2024-03-01T12:00:00Z"}
    )
    ok = blank.replace(b'"id":""', b'"id":"m1"')
    _, dead, _ = readings_only(
        route(
            [[FakeMessage(None, ok, "plant", 0, 0), FakeMessage(None, blank, "plant", 0, 1)]],
            {"plant": fmts},
            1,
        )
    )
    assert [(d.reason, d.offset, d.family) for d in dead] == [
        ("bad_sensor_id", 1, "humidity"),
        ("bad_sensor_id", 1, "vibration"),
    ]


def test_a_poll_keyed_by_an_id_field_groups_runs_per_sensor() -> None:
    msgs = [
        FakeMessage(
            b"ignored",
            orjson.dumps(
                {
                    "device": {"id": f"s{i % 2}"},
                    "reading": {"rh": float(i)},
                    "ts": f"2024-03-01T12:00:0{i}Z",
                }
            ),
            "plant",
            0,
            i,
        )
        for i in range(4)
    ]
    by_shard, dead, _ = readings_only(route([msgs], {"plant": [format_of(HUMIDITY)]}, 1))
    assert dead == []
    runs = {r.sensor_id: r for r in by_shard[0]}
    assert runs["s0"].values == (0.0, 2.0) and runs["s1"].ts == (T * S + S, T * S + 3 * S)


def test_columns_of_an_empty_poll() -> None:
    assert parse_poll(format_of(HUMIDITY), []) == Columns([], [], [])
