"""What the detector must not be blind to, and must not page on (issue: detection II).

Each test reproduces a case that the scorer got wrong before the knee and the scatter floor.
"""

import math
import random

import pytest

from dataflow.alerts import AlertTracker
from dataflow.model.scoring import ModelParams, SensorScorer, window_scatter

PARAMS = ModelParams(limits=(-1e6, 1e6), window_size=50, warmup=100, seed=42)
W = 5_000_000_000  # one 5 s window, ns
READY = PARAMS.window_size + PARAMS.warmup


def test_a_huge_spike_does_not_blind_the_sensor_to_larger_ones() -> None:
    """After one spike of 60 spreads, larger ones must still page (a hard cap hid them)."""
    rng = random.Random(3)
    scorer = SensorScorer(PARAMS)
    t = 0

    def window(value: float) -> bool:
        nonlocal t
        t += 1
        result = scorer.score_learn(t * W, value)
        # The explanation recomputes the envelopes' cuts: it must name what decided.
        assert not result.ml_anomaly or (result.why is not None and result.why.fired)
        return result.ml_anomaly

    for _ in range(READY + 200):
        window(65.0 + rng.gauss(0, 1.0))
    spread = 1.25 * scorer.raw.spread  # one "spread" as the features count it
    assert window(scorer.raw.level + 60 * spread)
    for size in (100, 500, 1_000, 5_000):
        for _ in range(30):
            window(65.0 + rng.gauss(0, 1.0))
        assert window(scorer.raw.level + size * spread), size


def test_a_flat_signal_does_not_page_on_rounding() -> None:
    """A constant sensor's window means differ only in their last bits when a window holds
    fewer readings; that is not news."""
    scorer = SensorScorer(PARAMS)
    rng = random.Random(5)
    pages = []
    for i in range(READY + 500):
        n = rng.choice([10, 10, 10, 9, 8])
        mean = sum([20.1] * n) / n
        pages.append(scorer.score_learn(i * W, mean, window_scatter(n, 20.1, 20.1)).ml_anomaly)
    assert not any(pages)
    assert scorer.score_learn((READY + 500) * W, 21.1).ml_anomaly  # a real step still pages


def test_a_quantised_signal_does_not_page_when_a_window_loses_readings() -> None:
    """Readings at a 0.1 resolution, half of them one step up: the window means are flat, so
    their spread collapses; a window that lost two readings moves by an eighth of a step."""
    scorer = SensorScorer(PARAMS)
    rng = random.Random(7)
    pages = []
    for i in range(READY + 2_000):
        readings = [20.0] * 5 + [20.1] * 5
        if rng.random() < 0.02:
            del readings[:2]  # two readings lost
        mean = sum(readings) / len(readings)
        scatter = window_scatter(len(readings), min(readings), max(readings))
        pages.append(scorer.score_learn(i * W, mean, scatter).ml_anomaly)
    assert not any(pages[READY:])
    step = [21.0] * 5 + [21.1] * 5  # the sensor moved by ten of its steps
    t = (READY + 2_000) * W
    assert scorer.score_learn(t, sum(step) / 10, window_scatter(10, 21.0, 21.1)).ml_anomaly


def test_window_scatter_is_zero_for_one_reading() -> None:
    assert window_scatter(1, 5.0, 5.0) == 0.0
    assert window_scatter(0, 0.0, 0.0) == 0.0
    assert window_scatter(4, 1.0, 3.0) > window_scatter(16, 1.0, 3.0) > 0.0


def lasting_shift(adapt_after: int, back_after: int | None) -> list[tuple[int, str, str | None]]:
    """A sensor 30 spreads off for good (or back after ``back_after`` windows), its windows
    through the scorer and the alert lifecycle as the shard runs them."""
    rng = random.Random(11)
    scorer, tracker = SensorScorer(PARAMS), AlertTracker()
    events = []
    shifted_from = READY + 100
    for i in range(READY + 1_500):
        off = i >= shifted_from and (back_after is None or i < shifted_from + back_after)
        mean = 65.0 + rng.gauss(0, 1.0) + (30 * 1.25 * 0.8 if off else 0.0)
        score = scorer.score_learn(i * W, mean)
        reasons = ["ml"] if score.ml_anomaly else []
        ev = tracker.observe(
            "s", i, mean, 0.0, reasons, 12, 3, 48, None, scorer.home(), adapt_after
        )
        if ev is not None:
            events.append((i, ev.event, ev.resolution))
    return events


def test_a_lasting_shift_resolves_as_adapted_and_only_after_the_set_time() -> None:
    events = lasting_shift(adapt_after=360, back_after=None)
    opened = [i for i, kind, _ in events if kind == "open"]
    resolved = [(i, how) for i, kind, how in events if kind == "resolved"]
    assert opened and opened[0] >= READY + 100
    assert resolved and all(how == "adapted" for _, how in resolved)
    # Adapted only once the model had called it clean for the time the user set.
    assert resolved[0][0] - opened[0] >= 360


def test_a_sensor_that_comes_back_resolves_clean() -> None:
    events = lasting_shift(adapt_after=10_000, back_after=60)
    resolved = [how for _, kind, how in events if kind == "resolved"]
    assert resolved and resolved[0] == "clean"


def test_window_scatter_of_no_honest_range_is_zero() -> None:
    """Swapped, non-finite or beyond-float ranges floor nothing (they made the running scatter
    inf, then nan, for good)."""
    assert window_scatter(4, 3.0, 1.0) == 0.0
    assert window_scatter(4, -1e308, 1e308) == 0.0
    assert window_scatter(4, math.nan, 1.0) == window_scatter(4, 1.0, math.inf) == 0.0


def test_a_window_of_absurd_scatter_does_not_poison_the_spread() -> None:
    scorer = SensorScorer(PARAMS)
    rng = random.Random(9)
    for i in range(READY + 100):
        scorer.score_learn(i * W, 65.0 + rng.gauss(0, 1.0), math.inf if i == 120 else 0.1)
    assert math.isfinite(scorer.scatter)
    assert scorer.score_learn((READY + 100) * W, 95.0, 0.1).ml_anomaly  # a step still pages


def test_a_return_after_an_adapted_alert_is_one_alert_that_resolves_clean() -> None:
    """20 -> 50 for good (adapted), then back to 20: one alert for the return, resolved
    clean, not a clean resolution at the first quiet windows and a second page after the
    cooldown (the model's level was still at 50); the fault coming back is news again."""
    rng = random.Random(0)
    scorer, tracker = SensorScorer(PARAMS), AlertTracker()
    events = []
    i = 0
    for level, n in ((20.0, 1_000), (50.0, 1_500), (20.0, 1_500), (50.0, 1_500)):
        for _ in range(n):
            mean = level + rng.gauss(0, 1.0)
            score = scorer.score_learn(i * W, mean)
            reasons = ["ml"] if score.ml_anomaly else []
            ev = tracker.observe("s", i, mean, 0.0, reasons, 12, 3, 48, None, scorer.home(), 360)
            if ev is not None and ev.event != "update":
                events.append((i // 500 * 500, ev.event, ev.resolution))
            i += 1
    assert [(kind, how) for _, kind, how in events] == [
        ("open", None),
        ("resolved", "adapted"),
        ("open", None),  # the return
        ("resolved", "clean"),
        ("open", None),  # the fault again
        ("resolved", "adapted"),
    ]
    assert [at for at, kind, _ in events if kind == "open"] == [1_000, 2_500, 4_000]


def test_the_same_huge_spike_again_is_not_news() -> None:
    """A spike far beyond the knee pages once; the identical spike again, while its peak is
    remembered, is routine. (A peak capped near the knee made every such spike page.)"""
    rng = random.Random(13)
    scorer = SensorScorer(PARAMS)
    pages = []
    for i in range(READY + 500 * 12):
        spike = i >= READY and (i - READY) % 500 == 250
        mean = 1.0 + rng.uniform(-0.01, 0.01) + (3.0 if spike else 0.0)
        paged = scorer.score_learn(i * W, mean).ml_anomaly
        if spike:
            pages.append(paged)
    assert pages[0]
    assert not any(pages[1:]), pages


def test_a_flat_start_does_not_blind_the_sensor() -> None:
    """A sensor flat through its warm-up has no spread: its first departure measures millions
    of spreads against rounding. That must not become a peak that hides later spikes."""
    rng = random.Random(17)
    scorer = SensorScorer(PARAMS)
    t = 0
    for _ in range(READY):
        scorer.score_learn(t * W, 5.0)
        t += 1
    for _ in range(8_000):  # the sensor starts to vary, and the peaks fade for a while
        scorer.score_learn(t * W, 5.0 + rng.gauss(0, 1.0))
        t += 1
    spread = 1.25 * scorer.raw.spread
    assert scorer.score_learn(t * W, scorer.raw.level + 300 * spread).ml_anomaly


@pytest.mark.parametrize(
    ("lasting", "expected"),
    [
        (200, ["open", "clean"]),
        (360, ["open", "clean"]),  # back just before it would have adapted
        (580, ["open", "adapted", "open", "clean"]),  # adapted, then the return
        (700, ["open", "adapted", "open", "clean"]),
    ],
)
def test_a_fault_and_its_return_page_once_each(lasting: int, expected: list[str]) -> None:
    """A +30 fault of ``lasting`` windows, then back: each episode is one alert. Resolved as
    soon as one window was near home, the model (its level still lagging at the fault's) paged
    the return again after the cooldown. The fault, 30 spreads for good, is accepted as a change
    of level within a few dozen windows (``SensorScorer._anchor``), so the alert adapts after
    the tracker's 360 windows at the new home, not after the level's lag of about 600."""
    rng = random.Random(0)
    scorer, tracker = SensorScorer(PARAMS), AlertTracker()
    events = []
    for i in range(1_000 + lasting + 1_500):
        mean = 20.0 + rng.gauss(0, 1.0) + (30.0 if 1_000 <= i < 1_000 + lasting else 0.0)
        score = scorer.score_learn(i * W, mean)
        reasons = ["ml"] if score.ml_anomaly else []
        ev = tracker.observe("s", i, mean, 0.0, reasons, 12, 3, 48, None, scorer.home(), 360)
        if ev is not None and ev.event != "update":
            events.append(ev.resolution or ev.event)
    assert events == expected


def test_a_routine_of_huge_spikes_leaves_the_normal_windows_normal() -> None:
    """Ten identical 900-spread spikes, one every 40 windows: the spikes may page, the normal
    windows between them must not. Learned in full, each spike dragged the level by about
    three spreads, and the normal windows below it paged as drift for hundreds of windows."""
    for seed in range(3):
        rng = random.Random(seed)
        values = [65 + rng.gauss(0, 1) for _ in range(350)]
        for _ in range(10):
            values += [65 + rng.gauss(0, 1) for _ in range(39)] + [65.0 + 900]
        values += [65 + rng.gauss(0, 1) for _ in range(300)]
        scorer = SensorScorer(PARAMS)
        normal_pages = 0
        for i, v in enumerate(values):
            paged = scorer.score_learn(i * W, v).ml_anomaly
            normal_pages += paged and v < 100
        assert normal_pages == 0, seed


@pytest.mark.parametrize("noise", [1.0, 0.0])
def test_a_plain_return_resolves_within_a_few_windows_of_the_last_page(noise: float) -> None:
    """A 200-window fault and an exact return: the model stops paging at once, so the alert
    resolves a few windows later. (Waiting for the level to come within one spread held it
    open 90-145 windows longer, with nothing to page about.)"""
    rng = random.Random(0)
    scorer, tracker = SensorScorer(PARAMS), AlertTracker()
    last_page = resolved_at = -1
    for i in range(3_000):
        mean = 20.0 + noise * rng.gauss(0, 1.0) + (30.0 if 1_000 <= i < 1_200 else 0.0)
        if noise == 0.0:
            mean += 0.01 * (i % 3)  # a little movement: a perfectly flat sensor has no spread
        score = scorer.score_learn(i * W, mean)
        last_page = i if score.ml_anomaly else last_page
        reasons = ["ml"] if score.ml_anomaly else []
        ev = tracker.observe("s", i, mean, 0.0, reasons, 12, 3, 48, None, scorer.home(), 360)
        if ev is not None and ev.event == "resolved":
            resolved_at = i
    assert resolved_at - last_page <= 10, (last_page, resolved_at)


@pytest.mark.parametrize("back_after", [1, 20, 30, 40])
def test_a_return_soon_after_an_adapted_alert_is_paged(back_after: int) -> None:
    """A +30 fault that adapts (``ALERT_ADAPT_WINDOWS`` clean windows at the new level), then
    the sensor comes home ``back_after`` windows after that resolution, with the flow's own
    defaults. The return is news (the alert for it resolves clean, as the return long after
    does above); but its windows fall in the cooldown that the adapted resolution started, and
    the model accepts the return as a change of level (``SensorScorer._anchor``, some 20
    windows) before the cooldown is over: held back by the cooldown, it was never paged."""
    from dataflow.config import Settings
    from dataflow.flow import shard_config

    cfg = shard_config(Settings.from_env({}))
    params = cfg.families["air_quality"].model
    rng = random.Random(11)
    scorer, tracker = SensorScorer(params), AlertTracker()
    events: list[tuple[int, str, str | None]] = []
    adapted_at = back_at = None
    for i in range(2_500):
        if adapted_at is not None and back_at is None and i >= adapted_at + back_after:
            back_at = i
        off = i >= 400 and back_at is None
        mean = 65.0 + rng.gauss(0, 1.0) + (30.0 if off else 0.0)
        score = scorer.score_learn(i * params.window_ns, mean)
        ev = tracker.observe(
            "s",
            i * params.window_ns,
            mean,
            0.0,
            ["ml"] if score.ml_anomaly else [],
            cfg.update_every,
            cfg.resolve_after,
            cfg.cooldown,
            None,
            scorer.home(),
            cfg.adapt_after,
        )
        if ev is not None and ev.event != "update":
            events.append((i, ev.event, ev.resolution))
            if ev.resolution == "adapted":
                adapted_at = i
    assert adapted_at is not None and back_at is not None, events
    assert [(kind, how) for _, kind, how in events] == [
        ("open", None),
        ("resolved", "adapted"),
        ("open", None),  # the return
        ("resolved", "clean"),
    ], events
