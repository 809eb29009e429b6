"""Envelopes, drift sums, features and seasonal baselines: the detector's parts, alone."""

import itertools
import math
import random
from array import array

import pytest

from dataflow.model.features import ABSURD_Z, Z_CAP, Z_KNEE, StepScale, Track, harden, soften
from dataflow.model.novelty import PEAK_MOST, Drift, Envelope, cut, fade
from dataflow.model.seasonality import DAY_NS, WEEK_NS, Baseline, Seasonality


def test_envelope_pages_for_a_new_peak_and_forgets_old_ones() -> None:
    e = Envelope(half_life=100.0, margin=1.2, floor=3.0, start=0)
    assert e.observe(10.0)  # the first peak is news
    assert not e.observe(11.0)  # within 1.2x of it: routine
    assert e.observe(14.0)  # beyond 1.2x the peak (now 11): news
    for _ in range(1000):  # ten half-lives of quiet
        assert not e.observe(0.5)
    assert e.observe(5.0)  # the old peak is forgotten
    assert not e.observe(2.9) and not Envelope(100.0, 1.2, 3.0, 0).observe(2.9)  # below floor


def test_envelope_does_not_learn_before_start() -> None:
    e = Envelope(half_life=100.0, margin=1.2, floor=3.0, start=5)
    for _ in range(5):
        e.observe(40.0)  # the unsettled first windows
    assert e.peak == 0.0
    assert e.observe(10.0)


def test_drift_needs_a_lasting_departure_and_clips_spikes() -> None:
    d = Drift(slack=2.0, limit=16.0, clip=4.0)
    assert not d.observe(1000.0)  # one spike adds at most clip - slack
    flags = [d.observe(4.0) for _ in range(10)]
    assert not any(flags[:6]) and any(flags)
    assert not Drift(2.0, 0.0, 4.0).observe(1000.0)  # limit 0: off


def test_track_z_is_zero_before_any_spread_and_finite_after() -> None:
    t = Track()
    assert t.z(5.0) == 0.0
    t.learn(5.0, 100)
    assert t.z(5.0) == 0.0
    up, down = t.z(6.0), t.z(4.0)
    assert Z_KNEE < up < Z_CAP and down == -up  # a flat sensor's departure: huge, finite
    assert t.z(5.0 + 1e-12) == 0.0 or abs(t.z(5.0 + 1e-12)) < 1.0  # rounding is not news
    assert t.z(math.inf) == Z_CAP and t.z(-math.inf) == -Z_CAP
    s = StepScale()
    assert s.z(0.0) == 0.0 and s.z(1.0) == Z_CAP


def test_the_knee_keeps_order_beyond_it() -> None:
    """A hard cap made every huge distance equal; past the knee, more is still more."""
    points = [0.0, 10.0, Z_KNEE, 60.0, 100.0, 500.0, 5000.0, 1e9, 1e80]
    soft = [soften(x) for x in points]
    assert soft[:3] == points[:3]
    assert all(a < b for a, b in itertools.pairwise(soft))
    assert soften(Z_KNEE * (1 + 1e-9)) - Z_KNEE < 1e-6  # continuous at the knee
    assert soften(math.inf) == Z_CAP


def test_the_margin_and_the_decay_apply_to_distances_beyond_the_knee() -> None:
    """Beyond the knee a spike needs ``margin`` times the *distance* of the peak, not of its
    logarithm; the same spike again is routine, one ``margin`` times larger is news."""
    for size in (100.0, 500.0, 800.0):
        e = Envelope(half_life=3000.0, margin=1.2, floor=6.0, start=0)
        assert e.observe(soften(size))
        assert e.peak == soften(size)  # remembered as it is, beyond the knee
        assert harden(cut(1.2, e.peak)) == pytest.approx(1.2 * size)
        assert not e.observe(soften(size))  # the same spike again
        assert not e.observe(soften(1.15 * size))
        assert e.observe(soften(1.4 * size))  # beyond 1.2 times the 1.15 it learned
    assert cut(1.2, 10.0) == 12.0  # below the knee: margin times the peak
    assert cut(1.2, 0.0) == 0.0


def test_a_peak_remembers_at_most_an_absurd_distance() -> None:
    """Beyond ABSURD_Z spreads a window is garbage or a change of level: one of millions of
    spreads must not leave a peak that hides every later spike."""
    e = Envelope(half_life=3000.0, margin=1.2, floor=6.0, start=0)
    assert e.observe(soften(1e7))
    assert e.peak == PEAK_MOST == soften(ABSURD_Z)
    assert e.observe(soften(1.3 * ABSURD_Z))
    assert e.observe(Z_CAP)  # an infinite distance: news, and remembered within the same bound
    assert e.peak == PEAK_MOST


def test_a_peak_fades_as_the_distance_it_stands_for() -> None:
    decay = 0.5 ** (1.0 / 100.0)
    for size in (10.0, 100.0, 1e4):
        peak = soften(size)
        for _ in range(100):  # one half-life
            peak = fade(peak, decay)
        assert harden(peak) == pytest.approx(size / 2)
    peak = Z_CAP  # an infinite distance: fades too, never stuck
    for _ in range(100_000):
        peak = fade(peak, decay)
    assert peak < 1.0


def test_seasonality_is_used_only_where_it_explains_the_sensor() -> None:
    window = 3600 * 10**9
    rng = random.Random(1)
    cyclic, flat = Seasonality(window), Seasonality(window)
    for i in range(24 * 10):
        t = i * window
        hour = (t % DAY_NS) // (3600 * 10**9)
        cyclic.learn(t, 100.0 + (50.0 if 8 <= hour < 20 else 0.0), level=125.0)
        flat.learn(t, 100.0 + rng.gauss(0, 1), level=100.0)
    noon = 10 * DAY_NS + 12 * 3600 * 10**9
    assert cyclic.residual(noon, 150.0) == 0.0  # noon is expected high
    assert cyclic.residual(noon, 100.0) == -50.0  # a flat noon is a departure
    assert flat.residual(noon, 100.0) is None  # noise has no cycle to explain


def test_weekly_baseline_knows_a_sunday_from_a_weekday() -> None:
    window = 3600 * 10**9
    s = Seasonality(window)
    monday = 4 * DAY_NS  # 1970-01-05 was a Monday
    for i in range(24 * 7 * 5):
        t = monday + i * window
        weekend = (t - monday) % WEEK_NS >= 5 * DAY_NS
        s.learn(t, 20.0 if weekend else 80.0, level=63.0)
    wednesday = monday + 5 * WEEK_NS + 2 * DAY_NS
    assert s.residual(wednesday, 20.0) == -60.0  # a weekday that looks like a Sunday


def test_weekly_baseline_seeded_a_day_on_equals_one_learned_from_the_start() -> None:
    """The weekly arrays exist only from a sensor's second day; on regular windows (with gaps,
    starting mid-slot) they hold what a weekly baseline learning from the first window holds."""
    for window in (5 * 10**9, 300 * 10**9, 1800 * 10**9, 3 * 3600 * 10**9):
        rng = random.Random(window)
        s = Seasonality(window)
        eager = Baseline(s.weekly) if s.weekly is not None else None
        assert eager is not None and len(s.baselines) == 1
        t = rng.randrange(10**15)
        young = True
        for _ in range(min(20_000, 9 * DAY_NS // window)):
            t += window * (1 if rng.random() < 0.95 else rng.randint(2, 30))
            x = 10 * math.sin(2 * math.pi * (t % DAY_NS) / DAY_NS) + rng.gauss(0, 1)
            young = young and len(s.baselines) == 1
            s.learn(t, x, level=0.0)
            eager.learn(t, x, 0.0, s.quality_rate)
            assert young or t - s.baselines[0].first >= DAY_NS - s.baselines[0].period.slot_ns
        weekly = s.baselines[1]
        assert list(weekly.means) == list(eager.means), window
        assert list(weekly.counts) == list(eager.counts), window
        assert (weekly.eres, weekly.eraw, weekly.first) == (eager.eres, eager.eraw, eager.first)


def test_a_seasonality_pickled_before_lazy_weeks_restores_with_both_baselines() -> None:
    s = Seasonality(300 * 10**9)
    assert s.weekly is not None
    old = (None, {"baselines": (*s.baselines, Baseline(s.weekly)), "quality_rate": 0.01})
    restored = Seasonality.__new__(Seasonality)
    restored.__setstate__(old)
    restored.learn(0, 1.0, level=1.0)
    restored.learn(2 * DAY_NS, 1.0, level=1.0)
    assert restored.weekly is None and len(restored.baselines) == 2
    assert [b.first for b in restored.baselines] == [0, 0]


def _learn_unsaturated(means: list[float], counts: list[int], slot: int, x: float, rate: float):
    """A slot's EWMA step with the true count, as before counts saturated (the reference)."""
    n = counts[slot] + 1
    counts[slot] = n
    warm = 1.0 / n
    means[slot] += (warm if warm > rate else rate) * (x - means[slot])


def test_slot_counts_saturate_at_the_cap_and_learn_as_with_true_counts() -> None:
    """Counts stop at the first count whose warm weight is the rate: two bytes each, and every
    mean bit for bit what true counts give, at window lengths from 100 ms to 3 hours."""
    for window in (10**8, 5 * 10**9, 300 * 10**9, 3 * 3600 * 10**9):
        s = Seasonality(window)
        daily = s.baselines[0]
        shape = daily.period
        assert 1.0 / shape.cap <= shape.rate < 1.0 / (shape.cap - 1) or shape.cap == 1
        assert daily.counts.typecode == ("H" if shape.cap <= 0xFFFF else "I")
        means, counts = [0.0] * len(daily.means), [0] * len(daily.means)
        rng = random.Random(window)
        slot_windows = max(1, shape.slot_ns // window)
        for i in range(min(3 * shape.cap, 30_000)):  # beyond the cap in the first slot
            t = (i // slot_windows) * shape.period_ns + (i % slot_windows) * window
            x = rng.gauss(50.0, 5.0)
            slot = daily.slot(t)
            _learn_unsaturated(means, counts, slot, x, shape.rate)
            daily.learn(t, x, 50.0, s.quality_rate)
        assert list(daily.means) == means, window
        assert list(daily.counts) == [min(n, shape.cap) for n in counts], window
        assert max(counts) > shape.cap or 3 * shape.cap > 30_000


def test_counts_pickled_wide_come_back_saturated_in_two_bytes() -> None:
    """A baseline pickled with four-byte counts beyond the cap (and a period without a cap)
    restores in the new type, saturated, and learns on exactly as the old one would."""
    s = Seasonality(5 * 10**9)
    old = s.baselines[0]
    shape = old.period
    state = {k: v for k, v in shape.__dict__.items() if k != "cap"}
    state["zero_counts"] = array("I", bytes(4 * len(shape.zero_means)))
    period = type(shape).__new__(type(shape))
    period.__setstate__(state)
    assert period.cap == shape.cap and period.zero_counts.typecode == "H"
    wide = array("I", [0, 3, shape.cap + 5, 0xFFFFFFFE] + [0] * (len(shape.zero_means) - 4))
    means = array("d", [0.0, 1.0, 2.0, 3.0] + [0.0] * (len(shape.zero_means) - 4))
    b = Baseline.__new__(Baseline)
    b.__setstate__(
        (
            None,
            {
                "period": period,
                "means": means[:],
                "counts": wide,
                "first": 0,
                "eres": 0.0,
                "eraw": 0.0,
            },
        )
    )
    assert b.counts.typecode == "H"
    assert list(b.counts[:4]) == [0, 3, shape.cap, shape.cap]
    ref_means, ref_counts = list(means), list(wide)
    for slot in range(4):
        t = slot * shape.slot_ns
        b.learn(t, 10.0, 5.0, 0.01)
        _learn_unsaturated(ref_means, ref_counts, slot, 10.0, shape.rate)
    assert list(b.means) == ref_means


def test_a_spike_that_recurs_is_routine_at_the_size_of_the_largest_of_them() -> None:
    """A daily spike whose size varies by some 15 % (a cron job's CPU): each day's meets the
    largest before it, however much the peak decayed in between. It paged once the decay
    (6 % a day at a half-life of ten days of 5-minute windows) and the variation together beat
    the margin (``ec2_cpu_utilization_c6585a`` in NAB)."""
    e = Envelope(half_life=3000.0, margin=1.2, floor=6.0, start=0)
    day = 288
    sizes = [37.5, 32.7, 36.0, 34.1, 37.7, 34.3, 34.8, 37.8, 37.2, 36.1, 36.2, 41.3]
    paged = []
    for size in sizes:
        paged.append(e.observe(size))
        for _ in range(day - 1):
            e.observe(0.3)
    assert paged == [True] + [False] * (len(sizes) - 1)
    assert e.top == 41.3


def test_a_spike_that_does_not_recur_still_fades() -> None:
    """Lesser windows do not renew the top: after one huge spike and weeks of ordinary ones, a
    spike of half its size is news again, as it was before tops."""
    e = Envelope(half_life=1000.0, margin=1.2, floor=6.0, start=0)
    assert e.observe(40.0)
    for _ in range(3000):  # three half-lives
        assert not e.observe(5.0 + (_ % 7))
    assert e.top == 40.0 and e.peak < 12.0
    assert e.observe(20.0)
