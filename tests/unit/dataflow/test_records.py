"""What goes on the wire: one JSON encoding, sensor-id keys, dead letters keep their bytes."""

import orjson

from dataflow.families import TEMPERATURE
from dataflow.readings import Reading
from dataflow.records import encode_dead_letter, encode_late, encode_window, iso_utc, route
from dataflow.shard import LateReading, WindowResult, shard_of
from dataflow.windows import WindowStats
from tests.factories import T0, S, topics
from tests.fakes import FakeMessage

TOPICS = topics(only=(TEMPERATURE,))


def msg(
    key: bytes | None, value: bytes | None, offset: int = 0, topic: str = "temperature_readings"
) -> FakeMessage:
    return FakeMessage(key, value, topic, 1, offset, 1_700_000_000_000)


def test_window_value_is_a_json_object_encoded_once() -> None:
    res = WindowResult(
        TEMPERATURE,
        "2",
        WindowStats(T0, T0 + 5 * S, 5, 95.5, 94.0, 97.0),
        0.42,
        True,
        False,
        0.8,
        90.0,
        ("threshold",),
        "critical",
        "°C",
    )
    key, value, headers = encode_window(res)
    assert key == b"2" and headers == []
    obj = orjson.loads(value)
    assert isinstance(obj, dict)  # a double-encoded value would decode to a str
    assert obj["window_start"] == "2024-03-19T13:57:05.000Z"
    assert obj["window_end"] == "2024-03-19T13:57:10.000Z"
    assert obj["anomaly"] is True and obj["reasons"] == ["threshold"]
    assert obj["threshold_alarm"] is True and obj["threshold"] == 90.0
    assert (obj["severity"], obj["unit"]) == ("critical", "°C")
    assert (obj["count"], obj["mean"], obj["min"], obj["max"]) == (5, 95.5, 94.0, 97.0)


def test_iso_utc_keeps_milliseconds() -> None:
    assert iso_utc(1_710_856_626_905_833_677) == "2024-03-19T13:57:06.905Z"


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
    by_shard, dead, by_family = route([[with_ts, without, own_ts]], TOPICS, 1)
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
    by_shard, dead, by_family = route([good[:25], [bad, *good[25:]], [stray]], TOPICS, 8, cache)
    assert cache == {
        TEMPERATURE: {
            str(i).encode(): (str(i), shard_of(TEMPERATURE, str(i), 8)) for i in range(50)
        }
    }
    again, _, _ = route([good], TOPICS, 8, cache)
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


def test_late_reading_keeps_its_original_bytes() -> None:
    raw = msg(b"3", b'{"Temperature_C": 1.5, "Timestamp": 5}', offset=41)
    key, value, headers = encode_late(LateReading(Reading(TEMPERATURE, "3", 5, 1.5, raw)))
    assert (key, value) == (raw.key(), raw.value())
    assert dict(headers)["reason"] == b"late"
    assert dict(headers)["source_offset"] == b"41"


def test_late_reading_record_without_its_source() -> None:
    key, value, headers = encode_late(LateReading(Reading(TEMPERATURE, "3", 5, 1.5)))
    assert key == b"3" and dict(headers)["reason"] == b"late"
    assert orjson.loads(value) == {
        "family": TEMPERATURE,
        "sensor_id": "3",
        "ts_ns": 5,
        "value": 1.5,
    }


def test_a_shard_batch_crosses_processes_as_plain_values_and_keeps_late_bytes() -> None:
    """Bytewax pickles a shard's batch to send it to another process; a reading that then turns
    out late must still reach the dead letters with its original bytes and origin."""
    import pickle

    from dataflow.readings import SourceRef
    from dataflow.records import ShardBatch

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
    copy = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert isinstance(copy, ShardBatch) and len(copy) == 3
    for before, after in zip(batch, copy, strict=True):
        assert after[:4] == before[:4]  # family, sensor id, time, value
        assert isinstance(after.source, SourceRef)
        assert encode_late(LateReading(after)) == encode_late(LateReading(before))
    again = pickle.loads(pickle.dumps(copy))  # a second hop keeps the SourceRef as it is
    assert [r.source for r in again] == [r.source for r in copy]


def test_an_implausible_value_is_a_dead_letter_with_its_bytes_and_the_rest_are_read() -> None:
    """Two finite values that would overflow a window's sum: refused before any window, by the
    family's valid range, the default one or the one configured."""

    def reading(value: float, offset: int) -> FakeMessage:
        ts = 1_710_856_626_905_833_677 + offset * S
        return msg(b"2", orjson.dumps({"Temperature_C": value, "Timestamp": ts}), offset)

    poll = [reading(50.0, 0), reading(1.7e308, 1), reading(1.7e308, 2), reading(51.0, 3)]
    by_shard, dead, by_family = route([poll], TOPICS, 1)
    assert [r.value for r in by_shard[0]] == [50.0, 51.0]
    assert [(d.reason, d.value, d.offset) for d in dead] == [
        ("out_of_range", poll[1].value(), 1),
        ("out_of_range", poll[2].value(), 2),
    ]
    assert "-273.15..10000" in dead[0].detail
    assert by_family == {TEMPERATURE: 2}
    _, dead, _ = route([poll], topics({TEMPERATURE: (0.0, 50.5)}), 1)
    assert [d.offset for d in dead] == [1, 2, 3]


def test_a_stale_resolution_and_a_forgotten_sensor_have_the_window_keys_set_to_null() -> None:
    from dataflow.alerts import AlertEvent
    from dataflow.shard import SensorEvent

    window = orjson.loads(
        encode_window(
            WindowResult(
                TEMPERATURE,
                "2",
                WindowStats(0, 5 * S, 1, 60.0, 60.0, 60.0),
                0.1,
                True,
                False,
                None,
                90.0,
            )
        )[1]
    )
    alert = AlertEvent(
        "resolved", "temperature/2@0", 0, 97.0, 0.5, 5 * S, ("threshold",), 4, "stale", "critical"
    )
    key, value, _ = encode_window(SensorEvent(TEMPERATURE, "2", "resolved", 301.25, alert, "°C"))
    stale = orjson.loads(value)
    assert key == b"2" and stale.keys() == window.keys()
    assert (stale["event"], stale["state"], stale["resolution"]) == (
        "resolved",
        "resolved",
        "stale",
    )
    assert stale["silent_seconds"] == 301.25 and stale["alert"]["peak_mean"] == 97.0
    assert stale["window_start"] is None and stale["mean"] is None and stale["reasons"] == []
    assert stale["severity"] is None and stale["alert"]["severity"] == "critical"
    assert stale["unit"] == "°C"
    gone = orjson.loads(encode_window(SensorEvent(TEMPERATURE, "2", "forgotten", 9e5))[1])
    assert gone.keys() == window.keys() and gone["alert"] is None and gone["alert_id"] is None
    assert window["resolution"] is None and window["silent_seconds"] is None
