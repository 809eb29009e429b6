"""What goes on the wire: one JSON encoding, sensor-id keys, dead letters keep their bytes."""

import orjson

from dataflow.encoding import encode_late, encode_window, iso_utc
from dataflow.families import TEMPERATURE
from dataflow.readings import Reading
from dataflow.shard import LateReading, WindowResult
from dataflow.windows import WindowStats
from tests.factories import T0, S
from tests.fakes import FakeMessage


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


def test_late_reading_keeps_its_original_bytes() -> None:
    raw = FakeMessage(b"3", b'{"Temperature_C": 1.5, "Timestamp": 5}', _offset=41)
    key, value, headers = encode_late(LateReading(Reading(TEMPERATURE, "3", 5, 1.5, raw)))
    assert (key, value) == (raw.key(), raw.value())
    assert dict(headers)["reason"] == b"late"
    assert dict(headers)["source_offset"] == b"41"


def test_a_refused_reading_names_its_family_as_two_families_of_one_topic_read_it() -> None:
    """Two families reading one message, one of them late: the copies were byte-identical,
    reason, origin and all, with nothing to say whose reading each was."""
    raw = FakeMessage(b"p1", b'{"t": 5, "temp": 61.0, "amps": 3.2}', _offset=2)
    copies = [
        encode_late(LateReading(Reading(family, "p1", 5, 1.0, raw)))
        for family in ("boiler", "pump")
    ]
    assert [dict(h)["family"] for _, _, h in copies] == [b"boiler", b"pump"]
    _, _, headers = encode_late(LateReading(Reading(TEMPERATURE, "3", 5, 1.5), "future"))
    assert dict(headers)["family"] == TEMPERATURE.encode() and dict(headers)["reason"] == b"future"


def test_late_reading_record_without_its_source() -> None:
    key, value, headers = encode_late(LateReading(Reading(TEMPERATURE, "3", 5, 1.5)))
    assert key == b"3" and dict(headers)["reason"] == b"late"
    assert orjson.loads(value) == {
        "family": TEMPERATURE,
        "sensor_id": "3",
        "ts_ns": 5,
        "value": 1.5,
    }


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


def test_every_field_of_a_window_record_is_in_the_documented_schema_table() -> None:
    """The anomalies topic's table (in README.md, or the docs/ page it moved to) names every key
    a window record has, ``explain`` included."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    text = next(
        (p.read_text() for p in pages if p.exists() and "| `ml_anomaly` |" in p.read_text()), ""
    )
    assert text, "no page has the anomalies topic's field table"
    start = text.index("| `ml_anomaly` |")
    start = text.rindex("\n\n", 0, start)
    end = text.find("\n\n", start + 2)
    table = text[start : end if end > 0 else len(text)]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])
    }
    res = WindowResult(
        TEMPERATURE,
        "2",
        WindowStats(T0, T0 + 5 * S, 1, 60.0, 60.0, 60.0),
        0.1,
        True,
        False,
        None,
        90.0,
    )
    from dataflow.encoding import window_record

    missing = sorted(set(window_record(res)) - documented)
    assert not missing, f"not in the anomalies table: {missing}"


def test_a_dead_letter_too_large_to_produce_keeps_its_first_bytes_and_says_so() -> None:
    """A compressed 1.2 MB reading gets through a broker, is refused as oversized, and its
    original bytes could not be produced (librdkafka checks ``message.max.bytes``, 1,000,000,
    on the uncompressed size, in ``produce`` itself): the flow stopped at every restart."""
    from confluent_kafka import Producer

    from dataflow.encoding import DEAD_LETTER_MAX_BYTES, encode_dead_letter
    from dataflow.routing import DeadLetter

    value = b'{"Temperature_C": 65, "pad": "' + b"a" * 1_200_000 + b'"}'
    dl = DeadLetter("oversized", "value too large", b"2", value, "temperature_readings", 0, 7)
    key, got, headers = encode_dead_letter(dl)
    assert key == b"2" and got is not None and value.startswith(got)
    assert len(key) + len(got) == DEAD_LETTER_MAX_BYTES
    assert dict(headers)["truncated"] == (
        f"key of 1 bytes, value of {len(value)}: the first 1 and {len(got)} kept".encode()
    )
    assert dict(headers)["reason"] == b"oversized" and dict(headers)["source_offset"] == b"7"
    # librdkafka takes it (its size check is local: no broker needed to see it refuse).
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "compression.type": "lz4"})
    producer.produce("dead-letters", value=got, key=key, headers=headers)
    producer.purge()
    # A huge key is cut too; a small dead letter is untouched.
    _, _, hk = encode_dead_letter(dl._replace(key=b"k" * 2_000_000, value=b"{}"))
    assert b"the first 899998 and 2 kept" in dict(hk)["truncated"]
    small = dl._replace(value=b"{}")
    assert encode_dead_letter(small)[:2] == (b"2", b"{}") and "truncated" not in dict(
        encode_dead_letter(small)[2]
    )


def test_a_late_or_future_reading_s_dead_letter_is_bounded_too() -> None:
    """A family reading its id from a field never checks the message key: a 2 MB key on a
    reading dated 2099 went out whole as a `future` dead letter, and produce refused it."""
    from dataflow.encoding import DEAD_LETTER_MAX_BYTES

    msg = FakeMessage(b"k" * 2_000_000, b'{"id": "a", "v": 1}')
    r = Reading(TEMPERATURE, "a", T0, 1.0, msg)  # type: ignore[call-arg]
    key, value, headers = encode_late(LateReading(r, "future"))
    assert key is not None and value == b'{"id": "a", "v": 1}'
    assert len(key) + len(value) == DEAD_LETTER_MAX_BYTES and "truncated" in dict(headers)
