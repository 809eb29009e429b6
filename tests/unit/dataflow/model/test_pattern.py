"""The pattern detector (``dataflow.model.pattern``, ``ML_PATTERN``): alone and in the scorer."""

import math
import pickle
import random

import numpy as np

from dataflow.model.explain import PATTERN, explain
from dataflow.model.pattern import CLIP, LAGS, REFRESH, K, Memory
from dataflow.model.scoring import ModelParams, SensorScorer

S = 5 * 10**9


def brute(zs: list[float]) -> float:
    """The nearest earlier subsequence's RMS distance, from the definition."""
    h = np.clip(np.array(zs), -CLIP, CLIP)
    latest = h[-K:]
    n = len(h)
    best = min(float(np.square(latest - h[n - j - K : n - j]).sum()) for j in range(K, K + LAGS))
    return math.sqrt(best / K)


def square_wave(i: int) -> float:
    return 1.5 if (i // 4) % 2 else -1.5


def test_a_new_pattern_is_found() -> None:
    m = Memory()
    for i in range(1000):
        d = m.observe(square_wave(i))
    assert d < 1e-6  # the wave's shape is among its recent ones
    # The same values, in an order the sensor never showed: flickering every window.
    far = [m.observe(1.5 if i % 2 else -1.5) for i in range(K)]
    assert far[-1] > 1.5


def test_a_pattern_seen_before_is_not_new() -> None:
    m = Memory()
    rng = random.Random(3)
    for _ in range(300):
        m.observe(rng.gauss(0.0, 1.0))
    motif = [2.0, -2.0, 2.5, 0.0, -1.0, 1.0]
    first = [m.observe(z) for z in motif]
    for _ in range(30):  # some noise, well within the LAGS remembered
        m.observe(rng.gauss(0.0, 1.0))
    again = [m.observe(z) for z in motif]
    assert again[-1] < 1e-6 < first[-1]


def test_distances_match_their_definition_and_memory_stays_bounded() -> None:
    m = Memory()
    rng = random.Random(5)
    zs: list[float] = []
    size = len(pickle.dumps(m))
    shapes = (m.hist.shape, m.dist.shape)
    for i in range(100_000):
        z = rng.gauss(0.0, 2.0) if i % 1000 else 40.0  # now and then beyond the clip
        zs.append(z)
        d = m.observe(z)
        if i in (LAGS + 2 * K + 5, REFRESH - 1, REFRESH, 99_999):
            assert math.isclose(d, brute(zs[-(LAGS + 2 * K) :]), rel_tol=1e-3, abs_tol=1e-3)
        if len(zs) > LAGS + 2 * K:
            del zs[0]
    assert (m.hist.shape, m.dist.shape) == shapes
    assert len(pickle.dumps(m)) <= size + 8  # the count grows; nothing else


def test_deterministic() -> None:
    rng = random.Random(9)
    zs = [rng.gauss(0.0, 1.5) for _ in range(3000)]
    a, b = Memory(), Memory()
    assert [a.observe(z) for z in zs] == [b.observe(z) for z in zs]
    assert pickle.loads(pickle.dumps(a)).observe(1.0) == b.observe(1.0)


def scorer(pattern: bool) -> SensorScorer:
    return SensorScorer(
        ModelParams(limits=(0.0, 100.0), window_size=50, warmup=50, seed=7, pattern=pattern)
    )


def test_the_scorer_pages_for_a_change_of_shape_only_with_the_setting_on() -> None:
    rng = random.Random(11)
    on, off = scorer(True), scorer(False)
    assert off.pattern is None and off.pattern_envelope is None
    for i in range(3000):  # noise: every shape of it is routine
        m = 50.0 + rng.gauss(0.0, 1.0)
        assert not on.score_learn(i * S, m).ml_anomaly
        off.score_learn(i * S, m)
    # A plateau 3 spreads up: no level, step or burst beyond its floor, the drift sums not yet
    # at their limit ...
    plateau = 50.0 + 3.0 * 1.25 * on.raw.spread
    outs_on = [on.score_learn((3000 + i) * S, plateau) for i in range(K + 2)]
    outs_off = [off.score_learn((3000 + i) * S, plateau) for i in range(K + 2)]
    assert not any(o.ml_anomaly for o in outs_off)
    # ... but a shape the noise never made, and the explanation says so.
    hits = [o for o in outs_on if o.ml_anomaly]
    assert hits and all(o.why is not None and o.why.fired == PATTERN for o in hits)
    assert hits[0].why is not None
    text = explain(hits[0].why)
    assert text["detector"] == "pattern" and "shape" in text["text"]


def test_off_by_default_and_nothing_allocated() -> None:
    s = SensorScorer(ModelParams(limits=(0.0, 1.0)))
    assert s.pattern is None and s.pattern_envelope is None


def test_a_v8_snapshot_scorer_gets_no_pattern_detector() -> None:
    from types import SimpleNamespace

    from dataflow.upgrade import migrate

    old = SensorScorer(ModelParams(limits=(0.0, 1.0)))
    del old.pattern, old.pattern_envelope  # as a v8 pickle has it: no such slots
    sensor = SimpleNamespace(machine=None, alerts=SimpleNamespace(home=0.0, reach=0.0), scorer=old)
    state = SimpleNamespace(
        config=SimpleNamespace(adapt_after=1), machines={}, _touched=set(), sensors={"s": sensor}
    )
    migrate(8, state, 9)
    assert old.pattern is None and old.pattern_envelope is None
    assert not old.score_learn(0, 0.5).ml_anomaly


def test_the_module_examples_hold() -> None:
    import doctest

    from dataflow.model import pattern

    assert doctest.testmod(pattern).failed == 0
