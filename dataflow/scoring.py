"""Per-sensor scoring of closed windows: River ``HalfSpaceTrees`` plus a fixed threshold rule.

Why a calibrated cut: HalfSpaceTrees scores are not probabilities. A fixed 0.7 cut, as in the
tutorial this project replaces, flags about 40 % of normal windows. Here each sensor compares a
window's score with a running quantile (P², O(1) memory) of *its own* past scores, so that about
``1 - q`` of its normal windows score above the cut, whatever the sensor's range.

Why a warm-up: HalfSpaceTrees scores 0 until its first reference window (``window_size`` windows)
is full, and a quantile of a handful of scores means nothing. Until a sensor has learned
``window_size + warmup`` windows it raises no ML anomaly (``model_ready`` is false). The threshold
rule does not need a model and fires from the first window.

>>> from dataflow.scoring import ModelParams, SensorScorer
>>> scorer = SensorScorer(ModelParams(limits=(0.0, 100.0), window_size=5, warmup=5, seed=7))
>>> [scorer.score_learn(50.0 + i % 3).ml_anomaly for i in range(10)]
[False, False, False, False, False, False, False, False, False, False]
>>> scorer.score_learn(50.0).model_ready
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

from river import anomaly, stats

from dataflow.hst import CompactHST, Forest

FEATURE = "mean"


@dataclass(frozen=True)
class ModelParams:
    """How each sensor's model is built; one instance is shared by all sensors of a family."""

    limits: tuple[float, float]
    n_trees: int = 5
    height: int = 3
    window_size: int = 100
    quantile: float = 0.99
    warmup: int = 100
    seed: int = 42
    min_deviation: float = 4.5  # an ML anomaly must also be this far from the level (0: off)
    level_windows: int = 300  # memory, in windows, of the running level and spread


class Score(NamedTuple):
    """Outcome of scoring one window."""

    score: float
    ml_anomaly: bool
    model_ready: bool
    cut: float | None  # the sensor's score quantile at the time, None before any is known


@functools.cache
def forest(params: ModelParams) -> Forest:
    """The trees every sensor with these parameters shares, built once by River."""
    return Forest.from_river(anomaly.HalfSpaceTrees(
        n_trees=params.n_trees,
        height=params.height,
        window_size=params.window_size,
        limits={FEATURE: params.limits},
        seed=params.seed,
    ))


class SensorScorer:
    """One sensor's model. Score, then learn, so a window never scores against itself.

    Beside the trees, a running level (exponentially weighted mean) and spread (weighted mean
    absolute deviation) of the sensor's window means. HalfSpaceTrees' score saturates: once a
    mean is outside the recent mass, 5 % and 50 % away score alike, so the top quantile of scores
    is also full of ordinary wiggles. An ML anomaly must therefore also deviate from the level by
    more than ``min_deviation`` spreads (a robust z-score; 1.25 mean absolute deviations are about
    one standard deviation for normal noise), and a mean more than twice that far is one even if
    the trees disagree.
    """

    __slots__ = ("cut", "level", "model", "params", "seen", "spread")

    def __init__(self, params: ModelParams) -> None:
        self.params = params
        self.model = CompactHST(forest(params))
        self.cut = stats.Quantile(params.quantile)
        self.seen = 0
        self.level = 0.0
        self.spread = 0.0

    def deviation(self, mean: float) -> float:
        """How many spreads ``mean`` is from the running level (0 before any window)."""
        if self.seen == 0:
            return 0.0
        dev = abs(mean - self.level)
        if self.spread > 0:
            return dev / (1.25 * self.spread)
        return math.inf if dev > 0 else 0.0

    def _track_level(self, mean: float) -> None:
        if self.seen == 0:
            self.level = mean
            return
        a = max(1.0 / self.params.level_windows, 1.0 / (self.seen + 1))
        self.level += a * (mean - self.level)
        self.spread += a * (abs(mean - self.level) - self.spread)

    def score_learn(self, mean: float) -> Score:
        """Score a window mean against this sensor's history, then learn it unless anomalous."""
        x = (mean,)
        score = self.model.score_one(x)
        p = self.params
        cut = self.cut.get() if self.seen > p.window_size else None
        ready = self.seen >= p.window_size + p.warmup
        dev = self.deviation(mean)
        far = p.min_deviation <= 0 or dev > p.min_deviation
        # Twice as far is anomalous whatever the trees say: a mean beyond the feature range
        # lands in an edge leaf shared with ordinary values, and can score low.
        gross = p.min_deviation > 0 and dev > 2 * p.min_deviation
        ml = ready and ((cut is not None and score > cut and far) or gross)
        self._track_level(mean)
        if self.seen >= p.window_size:
            self.cut.update(score)
        if not ml:
            # Like River's anomaly filters: do not teach the model what it just called anomalous.
            self.model.learn_one(x)
        self.seen += 1
        return Score(score, ml, ready, cut)


def threshold_alarm(mean: float, threshold: float | None) -> bool:
    """The fixed rule: a window mean at or above the family's threshold is an alarm."""
    return threshold is not None and mean >= threshold
