"""River HalfSpaceTrees per sensor: reproducible, warmed up, calibrated."""

import random

from dataflow.scoring import ModelParams, SensorScorer, threshold_alarm

PARAMS = ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100, quantile=0.99, seed=42)


def normal_means(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [65.0 + rng.gauss(0, 1.5) for _ in range(n)]


def test_threshold_rule_is_inclusive() -> None:
    assert threshold_alarm(90.0, 90.0)
    assert not threshold_alarm(89.999, 90.0)
    assert not threshold_alarm(1e9, None)


def test_same_seed_scores_the_same_each_run() -> None:
    data = normal_means(400, seed=1)
    a, b = SensorScorer(PARAMS), SensorScorer(PARAMS)
    assert [a.score_learn(x) for x in data] == [b.score_learn(x) for x in data]
    other = SensorScorer(ModelParams(limits=(0.0, 120.0), seed=43))
    assert [other.score_learn(x).score for x in data] != [s.score for s in
                                                          map(SensorScorer(PARAMS).score_learn,
                                                              data)]


def test_warm_up_suppresses_ml_anomalies() -> None:
    scorer = SensorScorer(PARAMS)
    ready_at = PARAMS.window_size + PARAMS.warmup
    results = [scorer.score_learn(65.0 if i % 7 else 119.0) for i in range(ready_at)]
    assert not any(r.ml_anomaly or r.model_ready for r in results)
    assert scorer.score_learn(65.0).model_ready


def flag_rate(quantile: float, means: list[float], min_deviation: float = 0.0) -> float:
    params = ModelParams(limits=(0.0, 120.0), quantile=quantile, window_size=50, warmup=100,
                         min_deviation=min_deviation)
    scorer = SensorScorer(params)
    ready = [r for r in map(scorer.score_learn, means) if r.model_ready]
    return sum(r.ml_anomaly for r in ready) / len(ready)


def test_calibrated_cut_flags_about_the_configured_share_of_normal_windows() -> None:
    """A fixed cut flags whatever share the score scale happens to give; ours tracks 1 - q."""
    means = normal_means(6000, seed=7)
    assert 0.025 <= flag_rate(0.95, means) <= 0.08
    assert 0.003 <= flag_rate(0.99, means) <= 0.025


def test_deviation_gate_keeps_ordinary_noise_quiet() -> None:
    """The quantile alone flags 1 - q of normal windows by construction; the gate asks that a
    flagged mean also be far from the sensor's level, so normal noise stays quiet."""
    means = normal_means(6000, seed=7)
    assert flag_rate(0.95, means, min_deviation=4.5) == 0.0


def test_gross_deviation_is_anomalous_even_where_the_trees_score_low() -> None:
    scorer = SensorScorer(ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100))
    for x in normal_means(400, seed=4):
        scorer.score_learn(x)
    assert scorer.deviation(-500.0) > 9  # far outside the feature range: an edge leaf
    drop = scorer.score_learn(-500.0)
    assert drop.ml_anomaly and drop.model_ready


def test_moderate_deviation_is_not_anomalous() -> None:
    scorer = SensorScorer(ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100))
    for x in normal_means(400, seed=4):
        scorer.score_learn(x)
    near = 65.0 + 3 * 1.5  # three standard deviations: unusual, not an anomaly
    assert scorer.deviation(near) < 4.5
    assert not scorer.score_learn(near).ml_anomaly


def test_spike_after_warm_up_is_an_ml_anomaly() -> None:
    scorer = SensorScorer(PARAMS)
    for x in normal_means(500, seed=3):
        scorer.score_learn(x)
    spike = scorer.score_learn(110.0)
    assert spike.model_ready and spike.ml_anomaly
    assert spike.cut is not None and spike.score > spike.cut


def test_persistent_moderate_departure_is_an_ml_anomaly() -> None:
    """A trough or drift 3 standard deviations out never clears the per-window gate, but
    sustained for a dozen windows the CUSUM of the z-score flags it; without it, nothing does."""

    def shifted(drift_limit: float) -> tuple[list[bool], float]:
        scorer = SensorScorer(ModelParams(limits=(0.0, 120.0), window_size=50, warmup=100,
                                          drift_limit=drift_limit))
        for x in normal_means(400, seed=4):
            scorer.score_learn(x)
        rng = random.Random(9)
        means = [65.0 + 3 * 1.5 + rng.gauss(0, 0.3) for _ in range(40)]
        worst = max(scorer.deviation(m) for m in means)
        return [scorer.score_learn(m).ml_anomaly for m in means], worst

    flags, worst = shifted(ModelParams.drift_limit)
    assert worst < ModelParams.min_deviation  # no single window is far enough
    assert not any(flags[:5])  # a few windows out is not yet a departure ...
    assert any(flags[5:30])  # ... a dozen are
    without, _ = shifted(0.0)
    assert not any(without)


def test_spread_forgets_more_slowly_than_the_level() -> None:
    """A sensor's spread holds its rarer, larger swings for ``spread_memory`` level memories."""

    def spread_after(spread_memory: float) -> float:
        scorer = SensorScorer(ModelParams(limits=(0.0, 120.0), level_windows=100,
                                          spread_memory=spread_memory))
        for i in range(2100):  # +-1, then +-3 (spread 3), then +-1 again for 100 windows
            swing = 3.0 if 1000 <= i < 2000 else 1.0
            scorer.score_learn(50.0 + (swing if i % 2 else -swing))
        return scorer.spread

    assert spread_after(2.0) > 2.1  # about 1 + 2 * exp(-1/2)
    assert spread_after(1.0) < 1.8  # about 1 + 2 * exp(-1)
