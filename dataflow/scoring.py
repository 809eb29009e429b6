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
    window_size: int = 50
    quantile: float = 0.99
    warmup: int = 100
    seed: int = 42


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
    """One sensor's model. Score, then learn, so a window never scores against itself."""

    __slots__ = ("cut", "model", "params", "seen")

    def __init__(self, params: ModelParams) -> None:
        self.params = params
        self.model = CompactHST(forest(params))
        self.cut = stats.Quantile(params.quantile)
        self.seen = 0

    def score_learn(self, mean: float) -> Score:
        """Score a window mean against this sensor's history, then learn it unless anomalous."""
        x = (mean,)
        score = self.model.score_one(x)
        p = self.params
        cut = self.cut.get() if self.seen > p.window_size else None
        ready = self.seen >= p.window_size + p.warmup
        ml = ready and cut is not None and score > cut
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
