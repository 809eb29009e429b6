"""Window maths: every reading counts, windows close on the sensor's own clock."""

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.windows import Jumps, SensorWindows, WindowStats, rebase, restart_skip
from tests.factories import T0, S

SIZE, LATE = 5 * S, 2 * S


def test_windows_align_to_the_epoch_end_exclusive() -> None:
    win = SensorWindows()
    for ts in (T0 + 4 * S, T0 + 5 * S, T0 - 1):  # the last is before T0, not yet late
        assert win.add(ts, 1.0, SIZE, LATE)
    assert sorted(win.open) == [T0 - SIZE, T0, T0 + SIZE]  # 5 s opens the next window


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


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(-5, 5)), max_size=60), st.integers(0, 12))
def test_matches_a_brute_force_model(events: list[tuple[int, int]], lateness: int) -> None:
    """Any order of readings: the same accepted, refused and closed windows as a naive model
    that keeps every reading and recomputes everything from scratch."""
    size = 5
    w = SensorWindows()
    closed: list[WindowStats] = []
    kept: list[tuple[int, int]] = []  # the model: accepted readings
    done: set[int] = set()  # the model: closed window starts
    clock = None
    for ts, v in events:
        model_late = any(ts < s + size for s in done)
        assert w.add(ts, float(v), size, lateness) is not model_late
        if model_late:
            continue
        kept.append((ts, v))
        clock = ts if clock is None else max(clock, ts)
        if w.due():
            closed.extend(w.close_due(size, lateness))
        done |= {t - t % size for t, _ in kept if t - t % size + size + lateness <= clock}
    closed.extend(w.close_all(size, lateness))
    model = []
    for start in sorted({t - t % size for t, _ in kept}):
        vals = [v for t, v in kept if t - t % size == start]
        model.append((start, len(vals), sum(vals) / len(vals), min(vals), max(vals)))
    assert sorted((c.start, c.count, c.mean, c.min, c.max) for c in closed) == [
        (s, n, pytest.approx(m), lo, hi) for s, n, m, lo, hi in model
    ]


def test_a_window_of_the_largest_accepted_values_has_an_exact_finite_mean() -> None:
    """Values as large as a valid range may reach (MAX_MAGNITUDE): the sum stays finite."""
    from dataflow.families import MAX_MAGNITUDE

    w = SensorWindows()
    for i in range(1000):
        w.add(T0 + i * 1_000_000, MAX_MAGNITUDE if i % 2 else -MAX_MAGNITUDE / 2, SIZE, LATE)
    run = SensorWindows()
    run.add_sorted(tuple(T0 + i for i in range(1000)), (MAX_MAGNITUDE,) * 1000, SIZE, LATE)
    (one,) = w.close_all(SIZE, LATE)
    (two,) = run.close_all(SIZE, LATE)
    assert math.isclose(one.mean, MAX_MAGNITUDE / 4, rel_tol=1e-12)
    assert math.isclose(two.mean, MAX_MAGNITUDE, rel_tol=1e-12)


def test_a_sum_that_overflows_still_gives_a_finite_mean_within_min_and_max() -> None:
    """Past what the flow accepts (1.7e308 twice): no inf or nan reaches the scorer."""
    for values, mean in (
        ((1.7e308, 1.7e308), 1.7e308),
        ((-1.7e308, -1.6e308), -1.7e308),
        ((1.7e308, 1.7e308, -1.7e308), 1.7e308),
    ):
        w = SensorWindows()
        for i, v in enumerate(values):
            w.add(T0 + i, v, SIZE, LATE)
        w.add(T0 + SIZE + LATE, 1.0, SIZE, LATE)  # closes the first window by event time
        (stats,) = w.close_due(SIZE, LATE)
        assert math.isfinite(stats.mean) and stats.min <= stats.mean <= stats.max
        assert stats.mean == mean


def test_a_clock_restarts_only_into_windows_never_written_and_skips_the_ones_ahead() -> None:
    """Windows [0, 5) and [100, 105) written (the clock jumped over the rest): a clock that comes
    back may restart in between, never inside a written window; then the windows written ahead
    are late for the new clock (``Jumps.skips``), and what follows them is taken."""
    w = SensorWindows()
    at = lambda sec: T0 + int(sec * S)  # noqa: E731
    assert w.add(at(1), 1.0, SIZE, LATE)
    assert w.add(at(102), 2.0, SIZE, LATE)
    assert [s.start for s in w.close_due(SIZE, LATE)] == [at(0)]
    assert restart_skip(w, None, at(3), SIZE) is None  # [0, 5): written
    assert restart_skip(w, None, at(101), SIZE) is None  # [100, 105): open, closed first
    skip = restart_skip(w, None, at(7), SIZE)
    assert skip == at(100)  # the first window written ahead, once the open ones close
    assert [s.start for s in w.close_all(SIZE, LATE)] == [at(100)]
    jumps = rebase(w, None, at(7), SIZE, skip)
    assert (jumps.skip_from, jumps.skip_to) == (at(100), at(105))
    assert not w.add(at(4), 0.0, SIZE, LATE)  # before the restart: late
    assert w.add(at(7), 3.0, SIZE, LATE) and w.add(at(99), 3.0, SIZE, LATE)
    assert jumps.skips(at(101)) and not jumps.skips(at(106))  # written under the old clock
    assert w.add(at(106), 3.0, SIZE, LATE)
    assert [s.start for s in w.close_all(SIZE, LATE)] == [at(5), at(95), at(105)]


def test_a_restart_only_goes_into_a_stretch_jumped_over() -> None:
    """Windows written in order up to 20 s, then from 60 s, then from 100 s (a clock that jumped
    twice): a clock that comes back may restart in either stretch, never in a written window;
    a window the old clock wrote, scored after the restart, records no stretch."""
    w, jumps = SensorWindows(), Jumps()
    w.closed_until = T0 + 105 * S
    jumps.gap(T0 + 20 * S, T0 + 60 * S)
    jumps.gap(T0 + 65 * S, T0 + 100 * S)
    assert restart_skip(w, jumps, T0 + 12 * S, SIZE) is None
    assert restart_skip(w, jumps, T0 + 22 * S, SIZE) == T0 + 60 * S
    assert restart_skip(w, jumps, T0 + 72 * S, SIZE) == T0 + 100 * S
    assert restart_skip(w, jumps, T0 + 62 * S, SIZE) is None
    after = rebase(w, jumps, T0 + 22 * S, SIZE, T0 + 60 * S)
    assert after.gaps == []  # nothing of the stretch lay before the restart's window
    assert (after.skip_from, after.skip_to) == (T0 + 60 * S, T0 + 105 * S)
    after.gap(T0 + 10 * S, T0 + 15 * S)  # an old window, scored after the restart
    after.gap(T0 + 40 * S, T0 + 120 * S)  # the new clock past the old one's windows
    assert after.gaps == [(T0 + 40 * S, T0 + 60 * S), (T0 + 105 * S, T0 + 120 * S)]
