"""Property tests: whatever bytes arrive, parsing either gives a sane reading or says why not."""

import math
from collections.abc import Callable
from datetime import datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.readings import BUILTIN, FAMILIES, VALID_RANGES, BadMessage, Reading, parse
from tests.factories import fmt

REASONS = {
    "invalid_json",
    "not_an_object",
    "missing_field",
    "bad_value_type",
    "non_finite_value",
    "out_of_range",
    "bad_timestamp",
    "timestamp_out_of_range",
    "bad_key",
    "oversized",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def check(family: str, key: bytes | None, value: bytes | None) -> None:
    try:
        reading = parse(fmt(family), key, value, kafka_ts_ms=1_700_000_000_000)
    except BadMessage as exc:
        assert exc.reason in REASONS
        return
    assert isinstance(reading, Reading)
    assert reading.family == family and reading.sensor_id.strip()
    lo, hi = VALID_RANGES[family]
    assert math.isfinite(reading.value) and lo <= reading.value <= hi
    assert 0 <= reading.ts < 4_102_444_800 * 10**9


@settings(max_examples=300)
@given(st.sampled_from(FAMILIES), st.none() | st.binary(max_size=40), st.none() | st.binary())
def test_arbitrary_bytes_never_escape_as_another_exception(family, key, value) -> None:
    check(family, key, value)


@settings(max_examples=300)
@given(
    st.sampled_from(FAMILIES),
    st.text(max_size=12),
    json_values,
    json_values,
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
def test_json_of_any_shape_is_a_reading_or_a_reason(family, key, num, stamp, extra) -> None:
    value_field, ts_field = BUILTIN[family].value, BUILTIN[family].timestamp
    check(family, key.encode(), orjson.dumps({**extra, value_field: num, ts_field: stamp}))


@settings(max_examples=500)
@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 31)),
    st.sampled_from([" ", "T"]),
)
def test_fast_timestamp_path_agrees_with_the_full_parser(dt, sep) -> None:
    from dataflow.readings import _iso_to_ns, iso_to_ns

    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")
    assert iso_to_ns(text) == _iso_to_ns(text)


def _outcome(fn: Callable[..., int], *args: object) -> int | str:
    """What ``fn`` decides: a value, or the reason it refused."""
    try:
        return fn(*args)
    except BadMessage as exc:
        return exc.reason


@settings(max_examples=500)
@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from([" ", "T"]),
    st.lists(st.tuples(st.integers(0, 25), st.characters()), max_size=2),
)
def test_fast_timestamp_path_agrees_on_mutated_strings(dt, sep, edits) -> None:
    """Cached seconds must never let through, or change, what the full parser decides."""
    from dataflow.readings import _iso_to_ns, iso_to_ns

    chars = list(dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f"))
    for at, ch in edits:
        chars[at] = ch
    text = "".join(chars)
    for _ in range(2):  # the second time the second may come from the cache
        assert _outcome(iso_to_ns, text) == _outcome(_iso_to_ns, text)


@settings(max_examples=500)
@given(
    st.sampled_from(FAMILIES),
    st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")
    ),
)
def test_parse_fast_paths_follow_the_event_time_rule(family, raw) -> None:
    """``parse`` takes shortcuts for the tutorials' shapes; the result is the general rule's."""
    from dataflow.readings import timestamp_to_ns

    value_field, ts_field = BUILTIN[family].value, BUILTIN[family].timestamp
    msg = orjson.dumps({value_field: 1, ts_field: raw})
    for _ in range(2):
        got = _outcome(lambda: parse(fmt(family), b"k", msg).ts)
        assert got == _outcome(timestamp_to_ns, orjson.loads(msg)[ts_field])
