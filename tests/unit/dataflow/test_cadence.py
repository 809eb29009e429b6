"""A family's usual interval between readings, on hand-made arrival times.

The rule SensorFamilySilent fires after max(10 min, 3 x this interval), so what matters is that
a slow family's interval is its reporting period (not the milliseconds between the polls of one
round), a fast family's is under a second, and an outage does not become the norm.
"""

from __future__ import annotations

from collections import deque

import pytest

from dataflow.cadence import KEEP, POOL_S, SHORT_S, Cadence, weighted_median


def rounds(period: float, count: int, burst: int = 1, spread: float = 0.0, start: float = 0.0):
    """Arrival times of ``count`` reporting rounds ``period`` apart, each ``burst`` batches
    spread over ``spread`` seconds (several sensors, several polls)."""
    step = spread / (burst - 1) if burst > 1 else 0.0
    return [start + r * period + b * step for r in range(count) for b in range(burst)]


def feed(cadence: Cadence, times: list[float]) -> float:
    for t in times:
        cadence.observe(t)
    return cadence.interval


def test_nothing_is_known_before_a_second_arrival() -> None:
    cadence = Cadence()
    assert cadence.interval == 0.0
    assert cadence.observe(1000.0) == 0.0


def test_a_family_reporting_every_five_minutes_has_a_five_minute_interval() -> None:
    assert feed(Cadence(), rounds(300.0, 20)) == 300.0


def test_a_round_of_many_polls_is_one_gap_not_many() -> None:
    """Ten batches within 0.2 s every 15 minutes: the family is silent for almost 15 minutes at
    a time, whatever the count of its tiny gaps says."""
    spread = 0.2
    interval = feed(Cadence(), rounds(900.0, 20, burst=10, spread=spread))
    assert interval == pytest.approx(900.0 - spread)


def test_a_fast_family_is_under_a_second() -> None:
    interval = feed(Cadence(), [i * 0.1 for i in range(20_000)])  # 2000 s at 10 batches/s
    assert 0.0 < interval < SHORT_S


def test_a_fast_family_with_hiccups_stays_fast() -> None:
    """Every 0.1 s, and a 5 s pause every minute: most of the time it is in short gaps."""
    times: list[float] = []
    t = 0.0
    for _ in range(30):
        times += [t + i * 0.1 for i in range(550)]
        t += 55.0 + 5.0
    assert feed(Cadence(), times) < SHORT_S


def test_one_outage_shorter_than_the_recent_history_does_not_become_the_norm() -> None:
    cadence = Cadence()
    times = rounds(300.0, 40)
    outage = 2 * 3600.0
    times += rounds(300.0, 5, start=times[-1] + outage)
    assert outage < 300.0 * 40  # the premise: more recent time in normal gaps than in the gap
    assert feed(cadence, times) == 300.0


def test_a_new_pace_replaces_the_old_once_the_old_gaps_have_aged_out() -> None:
    cadence = Cadence()
    times = rounds(300.0, 30)
    assert feed(cadence, times) == 300.0
    faster = rounds(60.0, KEEP + 1, start=times[-1] + 60.0)
    assert feed(cadence, faster) == 60.0


def test_short_gaps_are_pooled_into_entries_of_about_a_minute() -> None:
    """A fast family must not push its long gaps out of the history one tiny gap at a time."""
    cadence = Cadence()
    times = rounds(300.0, 10)
    feed(cadence, times)
    start = times[-1] + 300.0
    fast_for = 10 * POOL_S
    feed(cadence, [start + i * 0.5 for i in range(int(fast_for / 0.5) + 1)])
    entries = cadence._entries
    assert len(entries) < KEEP
    assert sum(1 for gap, _ in entries if gap < SHORT_S) == pytest.approx(fast_for / POOL_S, abs=1)


def test_a_clock_stepping_back_is_no_negative_gap() -> None:
    cadence = Cadence()
    feed(cadence, [1000.0, 1300.0, 1200.0, 1500.0])
    assert cadence.interval >= 0.0
    assert min(gap for gap, _ in cadence._entries) >= 0.0


@pytest.mark.parametrize(
    ("entries", "median"),
    [
        ([(1.0, 1.0), (2.0, 1.0), (3.0, 10.0)], 3.0),  # 3 holds most of the weight
        ([(100.0, 1.0), (1.0, 10.0)], 1.0),  # order of the entries does not matter
        ([(5.0, 1.0), (7.0, 1.0)], 5.0),  # a tie: the smaller reaches half first
        ([], 0.0),
    ],
)
def test_weighted_median(entries: list[tuple[float, float]], median: float) -> None:
    assert weighted_median(deque(entries)) == median
