"""The time rules the producer and the dataflow share (``dataflow.timestamps``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from dataflow.timestamps import (
    MAX_NS,
    MIN_NS,
    NAIVE_FORMAT,
    UNIT_NS,
    datetime_to_ns,
    in_range,
    ns_to_datetime,
)
from tests.factories import S


def test_a_naive_time_is_utc_and_an_offset_is_converted() -> None:
    naive = datetime(2022, 7, 15, 11, 34, 32, 113400)
    ns = datetime_to_ns(naive)
    assert ns == 1_657_884_872_113_400_000
    assert datetime_to_ns(naive.replace(tzinfo=UTC)) == ns
    two_hours_east = timezone(timedelta(hours=2))
    assert datetime_to_ns(datetime(2022, 7, 15, 13, 34, 32, 113400, two_hours_east)) == ns


def test_microseconds_stay_exact_where_float_seconds_would_round() -> None:
    late = datetime(2099, 12, 31, 23, 59, 59, 999999, UTC)
    assert datetime_to_ns(late) % S == 999_999_000
    assert datetime_to_ns(late) != int(late.timestamp() * 1e9)  # the float path rounds it


@given(st.integers(min_value=MIN_NS, max_value=MAX_NS - 1))
def test_ns_to_datetime_floors_to_the_microsecond_and_reads_back(ns: int) -> None:
    moment = ns_to_datetime(ns)
    assert moment.tzinfo is UTC
    assert datetime_to_ns(moment) == ns - ns % UNIT_NS["us"]


def test_the_range_is_1970_up_to_but_not_including_2100() -> None:
    assert in_range(0) and not in_range(-1)
    assert MAX_NS == 4_102_444_800 * S  # 2100-01-01T00:00:00Z
    assert in_range(MAX_NS - 1) and not in_range(MAX_NS)


def test_units_and_the_tutorial_format() -> None:
    assert UNIT_NS == {"s": S, "ms": S // 1000, "us": S // 1_000_000, "ns": 1}
    text = ns_to_datetime(1_657_884_872_113_400_000).strftime(NAIVE_FORMAT)
    assert text == "2022-07-15 11:34:32.113400"
