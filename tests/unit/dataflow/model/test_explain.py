"""Every ML anomaly says why: the detector that fired, the value against the sensor's own baseline
in its units and in spreads, and the threshold it crossed, all as the scorer saw them before it
learned the window."""

import math
import random

import orjson
import pytest

from dataflow.encoding import encode_window, window_record
from dataflow.families import AIR_QUALITY
from dataflow.model.explain import BURST, DRIFT, LEVEL, STEP, TREES, Evidence, explain
from dataflow.model.features import Z_KNEE, harden, soften
from dataflow.model.novelty import cut
from dataflow.model.scoring import ModelParams, Score, SensorScorer
from dataflow.readings import Reading
from dataflow.shard import ShardState, WindowResult
from tests.factories import LATER, T0, S, shard_config

PARAMS = ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100, seed=42)
W = 5_000_000_000


def normal_means(n: int, seed: int, sd: float = 1.5, level: float = 65.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, sd) for _ in range(n)]


def feed(scorer: SensorScorer, means: list[float], start: int = 0) -> list[Score]:
    return [scorer.score_learn((start + i) * W, m) for i, m in enumerate(means)]


def before(scorer: SensorScorer) -> dict[str, float]:
    """What the next window will be judged against (no seasonal baseline in these tests)."""
    lz, sz, bz = scorer.envelopes
    floor = max(scorer.raw.resolution(), scorer.scatter)
    return {
        "level": scorer.raw.level,
        "spread": 1.25 * scorer.raw.scale(floor),
        "last": scorer.raw.last or 0.0,
        "step": 1.25 * max(scorer.change.scale, floor),
        "level_cut": max(lz.floor, cut(lz.margin, lz.peak)),
        "step_cut": max(sz.floor, cut(sz.margin, sz.peak)),
        "burst_cut": max(bz.floor, cut(bz.margin, bz.peak)),
    }


def test_harden_undoes_soften() -> None:
    for z in (0.0, 3.0, Z_KNEE, 70.0, 1e4, 1e9):
        assert harden(soften(z)) == pytest.approx(z)
    assert harden(soften(math.inf)) == math.inf


def test_a_level_spike_names_the_level_with_its_numbers_in_degrees_and_spreads() -> None:
    params = ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100, seasonality=False)
    scorer = SensorScorer(params)
    feed(scorer, normal_means(500, seed=3))
    was = before(scorer)
    spike = scorer.score_learn(500 * W, 80.0)
    assert spike.ml_anomaly and spike.why is not None
    assert spike.why.fired & LEVEL
    out = explain(spike.why, "°C")
    spreads = (80.0 - was["level"]) / was["spread"]
    assert out["detector"] == "level" and out["detectors"][0] == "level"
    assert out["value"] == 80.0 and out["unit"] == "°C" and out["seasonal"] is False
    assert out["baseline"] == pytest.approx(was["level"])
    assert out["spreads"] == pytest.approx(spreads, abs=0.01)
    assert out["threshold_spreads"] == pytest.approx(was["level_cut"], abs=0.01)
    assert out["spreads"] > out["threshold_spreads"]
    assert out["text"].startswith(
        f"level 80.0 °C, {spreads:.1f} spreads above its usual {was['level']:.1f} °C "
        f"(pages beyond {was['level_cut']:.1f})"
    )


def test_a_spike_below_says_below_and_a_huge_one_gives_its_real_distance() -> None:
    scorer = SensorScorer(PARAMS)
    feed(scorer, normal_means(500, seed=3))
    was = before(scorer)
    out = explain(scorer.score_learn(500 * W, 9.0).why or _missing(), "°C")
    assert out["spreads"] < 0 and " spreads below its usual " in out["text"]
    # Far beyond the knee: the distance given is the real one, not the softened feature.
    scorer = SensorScorer(PARAMS)
    feed(scorer, normal_means(500, seed=3))
    out = explain(scorer.score_learn(500 * W, 9999.0).why or _missing(), "°C")
    assert out["spreads"] == pytest.approx((9999.0 - was["level"]) / was["spread"], rel=1e-3)
    assert out["spreads"] > 1000


def _missing() -> Evidence:
    raise AssertionError("an ML anomaly without evidence")


def test_a_step_inside_the_usual_range_names_the_step() -> None:
    """A slow cycle of wide range, steps tiny: a jump well inside the range is a step only."""
    params = ModelParams(limits=(0.0, 200.0), window_size=50, warmup=100, seasonality=False)
    scorer = SensorScorer(params)
    rng = random.Random(1)
    feed(scorer, [100 + 20 * math.sin(i / 40) + rng.gauss(0, 0.1) for i in range(600)])
    was = before(scorer)
    jump = was["last"] + 8.0
    result = scorer.score_learn(600 * W, jump)
    assert result.ml_anomaly and result.why is not None
    assert result.why.fired == STEP  # the level alone is nothing new
    out = explain(result.why, "%")
    steps = 8.0 / was["step"]
    assert out["detector"] == "step" and out["detectors"] == ["step"]
    assert out["baseline"] == pytest.approx(was["last"])
    assert out["spreads"] == pytest.approx(steps, abs=0.01)
    assert out["threshold_spreads"] == pytest.approx(was["step_cut"], abs=0.01)
    assert out["text"] == (
        f"step +8.0 % to {jump:.1f} %, {steps:.1f} usual steps (pages beyond {was['step_cut']:.1f})"
    )


def test_bursts_coming_more_often_name_the_burst_rate() -> None:
    rng = random.Random(6)
    scorer = SensorScorer(PARAMS)
    feed(scorer, [50 + (25 if i % 97 == 0 else 0) + rng.gauss(0, 1) for i in range(3000)])
    for i in range(6):
        was = before(scorer)
        mean = 75 + rng.gauss(0, 1) if i < 3 else 50 + rng.gauss(0, 1)
        result = scorer.score_learn((3000 + i) * W, mean)
        if result.ml_anomaly:
            break
    else:
        pytest.fail("the cluster of bursts was not found")
    assert result.why is not None and result.why.fired == BURST
    out = explain(result.why)
    rate = sum(scorer.burst) / len(scorer.burst)  # the window's own z is the last of them
    assert out["detector"] == "burst" and out["unit"] is None
    assert out["spreads"] == pytest.approx(rate, abs=0.01)
    assert out["threshold_spreads"] == pytest.approx(was["burst_cut"], abs=0.01)
    assert out["text"].startswith(
        f"burst: the last 5 windows averaged {rate:.1f} spreads from its usual "
        f"{was['level']:.1f} (pages beyond {was['burst_cut']:.1f}), now {mean:.1f}"
    )


def test_a_lasting_shift_names_the_drift_sum_against_its_limit() -> None:
    params = ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100, seasonality=False)
    scorer = SensorScorer(params)
    feed(scorer, normal_means(600, seed=4))
    rng = random.Random(9)
    for i in range(40):
        was = before(scorer)
        mean = 65.0 + 6 + rng.gauss(0, 0.3)
        result = scorer.score_learn((600 + i) * W, mean)
        if result.ml_anomaly:
            break
    else:
        pytest.fail("the shift was not found")
    assert result.why is not None and result.why.fired == DRIFT
    out = explain(result.why, "°C")
    total = scorer.drift.up
    assert total > params.drift_limit
    assert out["detector"] == "drift" and out["detectors"] == ["drift"]
    assert out["spreads"] == pytest.approx(total, abs=0.01)
    assert out["threshold_spreads"] == params.drift_limit
    assert out["baseline"] == pytest.approx(was["level"])
    distance = (mean - was["level"]) / was["spread"]
    assert out["text"] == (
        f"drift: a lasting shift above its usual {was['level']:.1f} °C, now {mean:.1f} °C "
        f"({distance:.1f} spreads); its sum reached {total:.1f} spreads (pages beyond 16.0)"
    )


def test_a_spike_that_several_detectors_see_names_each_of_them() -> None:
    scorer = SensorScorer(PARAMS)
    feed(scorer, normal_means(500, seed=3))
    out = explain(scorer.score_learn(500 * W, 110.0).why or _missing(), "°C")
    assert out["detectors"][:2] == ["level", "step"]
    assert out["text"].startswith("level 110.0 °C, ") and "; step +" in out["text"]


def test_clean_windows_and_windows_before_ready_carry_no_evidence() -> None:
    scorer = SensorScorer(PARAMS)
    results = feed(scorer, [65.0 if i % 7 else 119.0 for i in range(150)])  # warm-up spikes
    assert not any(r.why for r in results)
    results = feed(scorer, normal_means(500, seed=2), 150)
    assert all((r.why is None) == (not r.ml_anomaly) for r in results)
    assert not scorer.score_learn(650 * W, math.nan).why


def test_the_record_of_an_ml_alert_explains_it_and_a_clean_window_has_null() -> None:
    """Through a shard, as the flow scores: the alert's record carries ``explain`` as the
    scorer saw the window, a window without an ML reason carries null."""
    state = ShardState(shard_config(emit_all=True))
    rng = random.Random(3)
    values = [65.0 + rng.gauss(0, 1.5) for _ in range(400)] + [110.0, 65.0]
    out = state.ingest(
        [Reading(AIR_QUALITY, "a", T0 + i * 5 * S, v) for i, v in enumerate(values)], LATER
    )
    out += state.flush()
    windows = [r for r in out if isinstance(r, WindowResult)]
    ml = [r for r in windows if r.ml_anomaly]
    assert [r.stats.mean for r in ml] == [110.0]
    record = orjson.loads(encode_window(ml[0])[1])
    assert record["reasons"] == ["ml"] and record["event"] == "open"
    assert record["explain"]["detector"] == "level"
    assert record["explain"]["text"].startswith("level 110.0, ")
    assert record["explain"] == orjson.loads(orjson.dumps(explain(ml[0].why or _missing())))
    clean = [window_record(r) for r in windows if not r.ml_anomaly]
    assert clean and all(r["explain"] is None for r in clean)


def test_every_ml_anomaly_names_a_detector_and_only_ml_anomalies_carry_evidence() -> None:
    """Which detectors fired is decided again from the numbers kept, as the envelopes decide it:
    it must name one for every anomaly, whatever made it one."""
    for seed in range(4):
        rng = random.Random(seed)
        scorer = SensorScorer(PARAMS)
        means = [
            50 + (rng.choice((10, 25, 60)) if rng.random() < 0.01 else 0) + rng.gauss(0, 1)
            for _ in range(2500)
        ]
        means[1500:1540] = [m + 6 for m in means[1500:1540]]  # a lasting shift
        means[2000] = 5000.0  # an absurd window
        results = feed(scorer, means)
        anomalies = [r for r in results if r.ml_anomaly]
        assert anomalies
        assert all(r.why is not None and r.why.fired for r in anomalies), seed
        assert all(r.why is None for r in results if not r.ml_anomaly)


def test_with_the_trees_voting_their_score_and_cut_are_named() -> None:
    params = ModelParams(
        limits=(0.0, 120.0), window_size=50, warmup=100, hst_novelty=True, seasonality=False
    )
    scorer = SensorScorer(params)
    feed(scorer, normal_means(500, seed=3))
    assert scorer.hst_envelope is not None
    hz = scorer.hst_envelope
    score_cut = max(hz.floor, cut(hz.margin, hz.peak))
    result = scorer.score_learn(500 * W, 110.0)
    assert result.why is not None and result.why.fired & TREES
    out = explain(result.why)
    assert "trees" in out["detectors"] and out["detector"] == "level"
    assert (
        f"trees: score {result.score:.3f} beyond {score_cut:.3f}, 110.0 against its usual "
        in (out["text"])
    )


def test_a_cycle_gone_flat_is_told_against_its_usual_value_for_this_time() -> None:
    """Measured through the seasonal baseline: the baseline given is what the sensor usually
    reads at this time of day, not its overall level."""
    per_day = 288  # five-minute windows
    params = ModelParams(limits=(0.0, 200.0), window_ns=300 * S, window_size=50, warmup=100)
    scorer = SensorScorer(params)
    rng = random.Random(2)
    found = []
    for i in range(per_day * 8):
        phase = 2 * math.pi * (i % per_day) / per_day
        value = 100 + (50 * math.sin(phase) if i < per_day * 7 else 0.0) + rng.gauss(0, 1)
        result = scorer.score_learn(i * 300 * S, value)
        if result.why is not None:
            found.append((phase, value, explain(result.why, "kW")))
    assert found
    phase, value, out = found[0]
    assert out["seasonal"] is True and " for this time" in out["text"]
    assert out["baseline"] == pytest.approx(100 + 50 * math.sin(phase), abs=5.0)
    assert abs(out["baseline"] - value) > 10  # though within its daily range


# A window of a family whose declared range reaches 1e300, by the level detector.
HUGE = Evidence(
    fired=LEVEL,
    mean=1e300,
    baseline=2.5e299,
    seasonal=False,
    spread=1e297,
    level_cut=6.0,
    step=7.5e299,
    step_spread=1e297,
    step_cut=6.0,
    burst=3.0,
    burst_windows=5,
    burst_cut=6.0,
    score=0.0,
    score_cut=0.0,
    drift=0.0,
    drift_limit=16.0,
)


def test_huge_values_are_told_in_a_few_significant_digits() -> None:
    """A declared range may reach 1e300: the text of a window there was 1,639 characters of
    300-digit numbers, unreadable on a pager (and cut or refused by some receivers)."""
    ev = HUGE
    text = explain(ev)["text"]
    assert "1e+300" in text and "2.5e+299" in text and len(text) < 300, text
    small = explain(ev._replace(mean=61.5, baseline=60.0, spread=0.25, step=1.5, step_spread=0.2))
    assert "61.5" in small["text"] and "e+" not in small["text"]


def test_every_detector_s_text_tells_huge_numbers_briefly() -> None:
    """The step, burst, drift, pattern texts formatted their own numbers in full."""
    from dataflow.model.explain import BURST, DRIFT, PATTERN, STEP

    ev = HUGE._replace(
        fired=STEP | BURST | DRIFT | PATTERN,
        burst=3e299,
        drift=-2e298,
        pattern=4e298,
        pattern_cut=2.0,
    )
    text = explain(ev)["text"]
    assert "step +7.5e+299" in text and "averaged 3e+299" in text and "reached 2e+298" in text
    assert len(text) < 600 and "0000000000000" not in text, text
