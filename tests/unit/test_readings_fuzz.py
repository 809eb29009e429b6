"""Property tests: whatever bytes arrive, parsing either gives a sane reading or says why not."""

import math
from datetime import datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.readings import FAMILIES, FIELDS, BadMessage, Reading, parse

REASONS = {"invalid_json", "not_an_object", "missing_field", "bad_value_type",
           "non_finite_value", "bad_timestamp", "timestamp_out_of_range", "bad_key", "oversized"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def check(family: str, key: bytes | None, value: bytes | None) -> None:
    try:
        reading = parse(family, key, value, kafka_ts_ms=1_700_000_000_000)
    except BadMessage as exc:
        assert exc.reason in REASONS
        return
    assert isinstance(reading, Reading)
    assert reading.family == family and reading.sensor_id.strip()
    assert math.isfinite(reading.value)
    assert 0 <= reading.ts < 4_102_444_800 * 10**9


@settings(max_examples=300)
@given(st.sampled_from(FAMILIES), st.none() | st.binary(max_size=40), st.none() | st.binary())
def test_arbitrary_bytes_never_escape_as_another_exception(family, key, value) -> None:
    check(family, key, value)


@settings(max_examples=300)
@given(st.sampled_from(FAMILIES), st.text(max_size=12), json_values, json_values,
       st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_json_of_any_shape_is_a_reading_or_a_reason(family, key, num, stamp, extra) -> None:
    value_field, ts_field = FIELDS[family]
    check(family, key.encode(), orjson.dumps({**extra, value_field: num, ts_field: stamp}))


@settings(max_examples=500)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 31)),
       st.sampled_from([" ", "T"]))
def test_fast_timestamp_path_agrees_with_the_full_parser(dt, sep) -> None:
    from dataflow.readings import _iso_to_ns, iso_to_ns

    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")
    assert iso_to_ns(text) == _iso_to_ns(text)
