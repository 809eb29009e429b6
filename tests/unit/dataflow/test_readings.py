"""Both tutorial formats, the event-time rule, and every rejection reason."""

from datetime import UTC, datetime

import orjson
import pytest

from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.readings import BadMessage, Reading, parse
from tests.factories import S, fmt

T0 = datetime(2022, 7, 15, 11, 34, 32, 113400, tzinfo=UTC)
T0_NS = (int(T0.replace(microsecond=0).timestamp()) * 1_000_000 + 113400) * 1000


def aq(obj: object, key: bytes = b"Sensor3") -> Reading:
    return parse(fmt(AIR_QUALITY), key, orjson.dumps(obj))


def temp(obj: object, key: bytes = b"2") -> Reading:
    return parse(fmt(TEMPERATURE), key, orjson.dumps(obj))


def test_air_quality_tutorial_shape() -> None:
    r = parse(
        fmt(AIR_QUALITY), b"Sensor3", b'{"timestamp": "2022-07-15 11:34:32.113400", "value": 23}'
    )
    assert r == Reading(AIR_QUALITY, "Sensor3", T0_NS, 23.0)


def test_temperature_tutorial_shape_keeps_every_nanosecond() -> None:
    r = parse(fmt(TEMPERATURE), b"2", b'{"Temperature_C": 65, "Timestamp": 1710856626905833677}')
    assert r == Reading(TEMPERATURE, "2", 1710856626905833677, 65.0)


@pytest.mark.parametrize(
    "text",
    [
        "2022-07-15 11:34:32.113400",  # naive: UTC
        "2022-07-15T11:34:32.113400",
        "2022-07-15T11:34:32.113400Z",
        "2022-07-15T11:34:32.113400+00:00",
        "2022-07-15T13:34:32.113400+02:00",  # offsets convert to UTC
        "2022-07-15T06:34:32.113400-05:00",
    ],
)
def test_iso_timestamps_with_and_without_zone(text: str) -> None:
    assert aq({"timestamp": text, "value": 1}).ts == T0_NS


@pytest.mark.parametrize(
    "raw",
    [
        1657884872,  # seconds
        1657884872.0,
        1657884872000,  # milliseconds
        1657884872000000,  # microseconds
        1657884872000000000,  # nanoseconds
        "1657884872000",  # digits in a string: same rule
    ],
)
def test_epoch_units_inferred_from_magnitude(raw: object) -> None:
    assert temp({"Temperature_C": 1, "Timestamp": raw}).ts == 1657884872 * S


def test_fractional_epoch_seconds() -> None:
    assert temp({"Temperature_C": 1, "Timestamp": 1657884872.25}).ts == 1657884872 * S + S // 4


def test_kafka_timestamp_used_only_when_payload_has_none() -> None:
    r = parse(fmt(TEMPERATURE), b"7", b'{"Temperature_C": 70.5}', kafka_ts_ms=1657884872123)
    assert r.ts == 1657884872123 * 1_000_000
    r = parse(fmt(TEMPERATURE), b"7", b'{"Temperature_C": 70.5, "Timestamp": 1657884872}', 99)
    assert r.ts == 1657884872 * S


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"2", b"not json", "invalid_json"),
        (b"2", b'{"Temperature_C": NaN, "Timestamp": 1}', "invalid_json"),
        (b"2", b'{"Temperature_C": 1e999, "Timestamp": 1657884872}', "invalid_json"),
        (b"2", None, "invalid_json"),
        (b"2", b'"{\\"Temperature_C\\": 65}"', "not_an_object"),  # double-encoded JSON
        (b"2", b"[1, 2]", "not_an_object"),
        (b"2", b'{"Timestamp": 1657884872}', "missing_field"),
        (b"2", b'{"Temperature_C": 65}', "missing_field"),  # and no Kafka timestamp
        (b"2", b'{"Temperature_C": "65", "Timestamp": 1657884872}', "bad_value_type"),
        (b"2", b'{"Temperature_C": true, "Timestamp": 1657884872}', "bad_value_type"),
        (b"2", b'{"Temperature_C": null, "Timestamp": 1657884872}', "bad_value_type"),
        (b"2", b'{"Temperature_C": 65, "Timestamp": "yesterday"}', "bad_timestamp"),
        (b"2", b'{"Temperature_C": 65, "Timestamp": null}', "bad_timestamp"),
        (b"2", b'{"Temperature_C": 65, "Timestamp": [1]}', "bad_timestamp"),
        (b"2", b'{"Temperature_C": 65, "Timestamp": -5}', "timestamp_out_of_range"),
        # Digits to str.isdigit, not to int(): these once escaped as a ValueError.
        (b"2", '{"Temperature_C": 65, "Timestamp": "\u00b9"}'.encode(), "bad_timestamp"),
        (
            b"2",
            '{"Temperature_C": 65, "Timestamp": "2022-07-15 11:34:32.\u00b913400"}'.encode(),
            "bad_timestamp",
        ),
        (
            b"2",
            b'{"Temperature_C": 65, "Timestamp": "1900-01-01 00:00:00.000000"}',
            "timestamp_out_of_range",
        ),
        (
            b"2",
            b'{"Temperature_C": 65, "Timestamp": "2150-01-01T00:00:00"}',
            "timestamp_out_of_range",
        ),
        (None, b'{"Temperature_C": 65, "Timestamp": 1657884872}', "bad_key"),
        (b"", b'{"Temperature_C": 65, "Timestamp": 1657884872}', "bad_key"),
        (b"\xff\xfe", b'{"Temperature_C": 65, "Timestamp": 1657884872}', "bad_key"),
        (b"  ", b'{"Temperature_C": 65, "Timestamp": 1657884872}', "bad_key"),
        (b"2", b'{"Temperature_C": 65, "x": "' + b"a" * 70_000 + b'"}', "oversized"),
    ],
)
def test_rejections_carry_a_reason(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(BadMessage) as err:
        parse(fmt(TEMPERATURE), key, value)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "text",
    [
        "2022-07-15 11:34:60.000000",
        "2022-13-15 11:34:32.113400",
        "2022-07-15 24:00:00.000000",
        "2022-07-15 11:34:3x.113400",
    ],
)
def test_impossible_tutorial_shaped_times_are_rejected(text: str) -> None:
    with pytest.raises(BadMessage, match="bad_timestamp"):
        aq({"timestamp": text, "value": 1})


def test_families_read_their_own_field_names() -> None:
    with pytest.raises(BadMessage, match="missing_field"):
        aq({"Temperature_C": 65, "Timestamp": 1657884872})


@pytest.mark.parametrize("digits", [25, 4301, 5000])
def test_a_timestamp_string_of_too_many_digits_is_a_dead_letter_not_a_crash(digits: int) -> None:
    """Python refuses int() of more than 4,300 digits with a plain ValueError: one such message
    (5 KB, under the size limit) stopped the flow, and again after every restart."""
    from dataflow.readings import unit_timestamp_to_ns

    for call in (
        lambda t: aq({"timestamp": t, "value": 23}),
        lambda t: temp({"Temperature_C": 65, "Timestamp": t}),
        lambda t: unit_timestamp_to_ns(t, S),
    ):
        with pytest.raises(BadMessage) as err:
            call("9" * digits)
        assert err.value.reason == "timestamp_out_of_range"
    # An epoch in ns as a string is still read.
    assert temp({"Temperature_C": 65, "Timestamp": "1710856626905833677"}).ts == 1710856626905833677
