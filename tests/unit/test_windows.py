"""Window maths: every reading counts, windows close on the sensor's own clock."""

import random
import statistics

import pytest

from dataflow.windows import SensorWindows, window_start

S = 1_000_000_000
SIZE, LATE = 5 * S, 2 * S
T0 = 1_700_000_000 * S  # a multiple of 5 s


def test_window_start_aligns_to_epoch() -> None:
    assert window_start(T0 + 4 * S, SIZE) == T0
    assert window_start(T0 + 5 * S, SIZE) == T0 + SIZE  # end is exclusive
    assert window_start(T0 - 1, SIZE) == T0 - SIZE


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 50])
def test_a_window_averages_all_k_readings(k: int) -> None:
    """The tutorial averaged one reading per "5 s window"; ours averages every one of them."""
    rng = random.Random(k)
    values = [rng.uniform(20, 100) for _ in range(k)]
    win = SensorWindows()
    for i, v in enumerate(values):
        assert win.add(T0 + i * SIZE // k, v, SIZE, LATE)
    assert win.close_due(SIZE, LATE) == []  # clock has not passed end + lateness
    win.add(T0 + SIZE + LATE, 0.0, SIZE, LATE)  # the sensor's clock reaches end + lateness
    [stats] = win.close_due(SIZE, LATE)
    assert stats.count == k
    assert stats.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert (stats.min, stats.max) == (min(values), max(values))
    assert (stats.start, stats.end) == (T0, T0 + SIZE)


def test_closes_exactly_at_end_plus_lateness() -> None:
    win = SensorWindows()
    win.add(T0, 1.0, SIZE, LATE)
    win.add(T0 + SIZE + LATE - 1, 2.0, SIZE, LATE)
    assert not win.due()
    win.add(T0 + SIZE + LATE, 3.0, SIZE, LATE)
    assert win.due()
    assert [w.start for w in win.close_due(SIZE, LATE)] == [T0]
    assert list(win.open) == [T0 + SIZE]


def test_out_of_order_reading_within_lateness_counts() -> None:
    win = SensorWindows()
    win.add(T0 + 1 * S, 10.0, SIZE, LATE)
    win.add(T0 + 6 * S, 50.0, SIZE, LATE)  # next window, clock at 6 s: first still open
    assert win.add(T0 + 2 * S, 20.0, SIZE, LATE)  # late but within the allowed lateness
    win.add(T0 + 7 * S, 60.0, SIZE, LATE)  # clock reaches 5 + 2 s: first window closes
    [first] = win.close_due(SIZE, LATE)
    assert (first.count, first.mean) == (2, 15.0)


def test_reading_after_its_window_closed_is_refused() -> None:
    win = SensorWindows()
    win.add(T0, 1.0, SIZE, LATE)
    win.add(T0 + 8 * S, 1.0, SIZE, LATE)
    win.close_due(SIZE, LATE)
    assert not win.add(T0 + 4 * S, 99.0, SIZE, LATE)
    assert list(win.open) == [T0 + SIZE]  # untouched


def test_gap_closes_every_due_window_oldest_first() -> None:
    win = SensorWindows()
    win.add(T0, 1.0, SIZE, LATE)
    win.add(T0 + 6 * S, 2.0, SIZE, LATE)
    win.add(T0 + 60 * S, 3.0, SIZE, LATE)
    assert [w.mean for w in win.close_due(SIZE, LATE)] == [1.0, 2.0]


def test_close_all() -> None:
    win = SensorWindows()
    win.add(T0 + 6 * S, 2.0, SIZE, LATE)
    win.add(T0, 1.0, SIZE, LATE)
    assert [w.start for w in win.close_all(SIZE, LATE)] == [T0, T0 + SIZE]
    assert not win.open
    assert not win.add(T0 + 9 * S, 1.0, SIZE, LATE)
