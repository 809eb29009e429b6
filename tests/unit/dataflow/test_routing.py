"""Routing: polls to each shard's readings, the shard a sensor lives in, dead letters with their
bytes."""

import os
import subprocess
import sys

import orjson

from dataflow.encoding import encode_dead_letter, encode_late
from dataflow.families import TEMPERATURE
from dataflow.progress import Beat
from dataflow.readings import Rows
from dataflow.routing import route, shard_of
from dataflow.shard import LateReading
from tests.factories import S, readings_only, topics
from tests.fakes import FakeMessage

TOPICS = topics(only=(TEMPERATURE,))


def msg(
    key: bytes | None, value: bytes | None, offset: int = 0, topic: str = "temperature_readings"
) -> FakeMessage:
    return FakeMessage(key, value, topic, 1, offset, 1_700_000_000_000)


def test_route_takes_the_kafka_timestamp_only_when_the_payload_has_none() -> None:
    payload = orjson.dumps({"Temperature_C": 60})
    with_ts = FakeMessage(b"1", payload, "temperature_readings", 0, 1, 1_700_000_123_456)
    without = FakeMessage(b"2", payload, "temperature_readings", 0, 2, None)
    own_ts = FakeMessage(
        b"3",
        orjson.dumps({"Temperature_C": 60, "Timestamp": 1_600_000_000}),
        "temperature_readings",
        0,
        3,
        1_700_000_123_456,
    )
    by_shard, dead, by_family = readings_only(route([[with_ts, without, own_ts]], TOPICS, 1))
    assert [(r.sensor_id, r.ts) for r in by_shard[0]] == [
        ("1", 1_700_000_123_456 * 1_000_000),
        ("3", 1_600_000_000 * S),
    ]
    assert [(d.reason, d.key, d.offset) for d in dead] == [("missing_field", b"2", 2)]
    assert by_family == {TEMPERATURE: 2}


def test_route_groups_by_shard_and_keeps_bad_bytes() -> None:
    good = [
        msg(str(i).encode(), orjson.dumps({"Temperature_C": i, "Timestamp": 1_700_000_000}))
        for i in range(50)
    ]
    bad = msg(b"7", b"\xff not json", offset=99)
    stray = msg(b"7", b"{}", topic="elsewhere")
    cache: dict = {}
    by_shard, dead, by_family = readings_only(
        route([good[:25], [bad, *good[25:]], [stray]], TOPICS, 8, cache)
    )
    assert cache == {
        TEMPERATURE: {
            str(i).encode(): (str(i), shard_of(TEMPERATURE, str(i), 8)) for i in range(50)
        }
    }
    again, _, _ = readings_only(route([good], TOPICS, 8, cache))
    assert again == by_shard
    assert by_family == {TEMPERATURE: 50}
    assert sum(len(v) for v in by_shard.values()) == 50
    for shard, readings in by_shard.items():
        assert all(shard_of(r.family, r.sensor_id, 8) == shard for r in readings)
    assert [(d.reason, d.key, d.value, d.offset) for d in dead] == [
        ("invalid_json", b"7", b"\xff not json", 99),
        ("unknown_topic", b"7", b"{}", 0),
    ]
    key, value, headers = encode_dead_letter(dead[0])
    assert (key, value) == (b"7", b"\xff not json")
    assert dict(headers)["reason"] == b"invalid_json"
    assert dict(headers)["source_offset"] == b"99"


def test_a_shard_batch_crosses_processes_as_plain_values_and_keeps_late_bytes() -> None:
    """Bytewax pickles a shard's batch to send it to another process; a reading that then turns
    out late must still reach the dead letters with its original bytes and origin."""
    import pickle

    from dataflow.readings import SourceRef
    from dataflow.routing import ShardBatch

    sources = [
        msg(
            b"%d" % (7 + i),  # three sensors: single readings, not a run
            orjson.dumps({"Temperature_C": 60 + i, "Timestamp": 1_700_000_000 + i}),
            offset=40 + i,
        )
        for i in range(3)
    ]
    by_shard, _, _ = route([sources], TOPICS, 1)
    batch = by_shard[0]
    assert isinstance(batch, ShardBatch)
    assert [type(item) for item in batch] == [Beat, Rows]  # distinct sensors: one Rows
    copy = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert isinstance(copy, ShardBatch) and [type(item) for item in copy] == [Beat, Rows]
    before_all, after_all = batch[1].readings(), copy[1].readings()
    assert len(after_all) == 3
    for before, after in zip(before_all, after_all, strict=True):
        assert after[:4] == before[:4]  # family, sensor id, time, value
        assert isinstance(after.source, SourceRef)
        assert encode_late(LateReading(after)) == encode_late(LateReading(before))
    again = pickle.loads(pickle.dumps(copy))  # a second hop keeps the SourceRef as it is
    assert [r.source for r in again[1].readings()] == [r.source for r in after_all]


def test_an_implausible_value_is_a_dead_letter_with_its_bytes_and_the_rest_are_read() -> None:
    """Two finite values that would overflow a window's sum: refused before any window, by the
    family's valid range, the default one or the one configured."""

    def reading(value: float, offset: int) -> FakeMessage:
        ts = 1_710_856_626_905_833_677 + offset * S
        return msg(b"2", orjson.dumps({"Temperature_C": value, "Timestamp": ts}), offset)

    poll = [reading(50.0, 0), reading(1.7e308, 1), reading(1.7e308, 2), reading(51.0, 3)]
    by_shard, dead, by_family = readings_only(route([poll], TOPICS, 1))
    assert [r.value for r in by_shard[0]] == [50.0, 51.0]
    assert [(d.reason, d.value, d.offset) for d in dead] == [
        ("out_of_range", poll[1].value(), 1),
        ("out_of_range", poll[2].value(), 2),
    ]
    assert "-273.15..10000" in dead[0].detail
    assert by_family == {TEMPERATURE: 2}
    _, dead, _ = readings_only(route([poll], topics({TEMPERATURE: (0.0, 50.5)}), 1))
    assert [d.offset for d in dead] == [1, 2, 3]


def test_shard_of_is_stable_across_processes() -> None:
    code = "from dataflow.routing import shard_of; print(shard_of('temperature', '2', 32))"
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": "."}
        seen.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert seen == {f"{shard_of('temperature', '2', 32)}\n"}


def test_shards_spread_a_fleet_evenly() -> None:
    counts = [0] * 32
    for i in range(32_000):
        counts[shard_of(TEMPERATURE, str(i), 32)] += 1
    assert min(counts) > 800 and max(counts) < 1200
