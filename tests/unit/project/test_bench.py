"""The benchmarks' loaders write what the dataflow reads, and mean what the producer means.

``bench/workloads.py`` formats the tutorials' messages by hand for speed; these checks read
them back with the dataflow's own decoders and compare with the producer's encoder.
"""

from __future__ import annotations

import pytest

from bench import workloads as wl
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.readings import Reading, parse, parse_poll
from producer.shapes import encode
from tests.factories import fmt

# Event times that stress the formatting: an epoch second, a 7-digit fraction, a far year.
TIMES = [wl.T0_NS, wl.T0_NS + 123_456_789, 4_102_444_799_999_999_000]


@pytest.mark.parametrize("ts", TIMES)
@pytest.mark.parametrize("value", [0.0, 23.4, 105.25])
def test_the_loader_messages_read_as_the_producer_s(ts: int, value: float) -> None:
    for family, message in (
        (AIR_QUALITY, wl.air_quality_value(wl.naive_stamp(ts), value)),
        (TEMPERATURE, wl.temperature_value(value, ts)),
    ):
        key, ours = encode(Reading(family, "s1", ts, value))
        got = parse(fmt(family), key, message)
        assert got == parse(fmt(family), key, ours)
        assert got.value == value
        # The air-quality format holds microseconds; the temperature one nanoseconds.
        assert got.ts == (ts - ts % 1_000 if family == AIR_QUALITY else ts)


def test_a_workload_s_polls_decode_whole_with_every_value_and_time() -> None:
    work = wl.WORKLOADS["W1"]
    rows = list(wl.readings(work, 4 * work.sensors))
    for is_aq, family in ((True, AIR_QUALITY), (False, TEMPERATURE)):
        values = [value for aq, _, value, _, _ in rows if aq is is_aq]
        cols = parse_poll(fmt(family), values)
        assert cols is not None, f"{family}: a loader message left the fast path"
        assert len(cols.values) == len(values) == 2 * work.sensors
        assert set(cols.ts) == {wl.T0_NS + tick * work.step_ns for tick in range(4)}
