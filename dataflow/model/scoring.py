"""Per-sensor scoring of closed windows: novelty against the sensor's own past, beside a rule.

Each closed window's mean goes through, in order (score first, then learn, so a window never
scores against itself; only the sensor's own past is used):

1. **Seasonality** (``dataflow.model.seasonality``): where a daily or weekly baseline explains the
   sensor much better than its level does, the window is measured as its residual from it.
2. **Features** (``dataflow.model.features``): the distance from the running level and the step from
   the previous window, in the sensor's own spreads; and the level distance averaged over the
   last few windows, for a change in how often bursts come.
3. **Novelty** (``dataflow.model.novelty``): a window is an ML anomaly when a feature exceeds the
   decaying peak of that feature in the sensor's long past (``Envelope``), or when a moderate
   departure lasts (``Drift``, a CUSUM of the clipped level z-score). A noisy sensor's routine
   bursts match its earlier bursts, so they stop paging; a stationary sensor that has just become
   ready has nothing new to say, so it does not page for that reason alone.
4. **River's HalfSpaceTrees** scores the window mean against the sensor's recent mass (the
   ``score`` in every window's output). With ``hst_novelty`` its score takes part through the
   same envelope as the features (a score beyond any the sensor had for a long time is novel).
   That is off by default: on NAB's development files it added false alarms faster than it found
   windows, fed with the mean or with the level z-score alike (``bench/RESULTS.md``).

A change of level accepted: when the drift sums have been at their cap (twice the limit) and
each of the last ``BURST_WINDOWS`` windows was beyond the novelty floor, the sensor has moved
for good, not burst. Left to the running level, a large move (a CPU from 6 to 14.5 at a spread
of 0.25) lags for hundreds of windows, and every window of the lag teaches the spread a
distance of many spreads: the spread grows to the lag, and the sensor is blind to spikes in its
new regime for days. So the level is re-anchored at once, by the nearest of those windows'
distances (``min`` of the burst window, in the spread of now: it moves no further than every one
of them went), the drift sums and the burst window restart, and the three envelopes' peaks go
back to those from before the episode (``calm``): the windows of the move were measured against
the old level, and are not a size the new regime's spikes should be compared with (kept in the
burst window, they made the next windows a burst against the peak put back). A burst that
lasts (a tweet storm) rarely holds every window beyond the floor until the sums are capped; one
that does is re-anchored to, and the drift the other way when it ends is paged as drift always
was.

An absurd window, more than ``ABSURD_Z`` spreads from the level (a device sending garbage that
its valid range still lets through), is scored and may alert, but nothing learns it: it would
drag the level and spread so far, and raise the novelty peaks so high, that the sensor's later
anomalies went unseen. ``ABSURD_RUN`` such windows in a row are a real change of level, and
from then on are learned as any window. A mean that is not finite is never learned.

Why an anomaly: a window the model calls anomalous carries ``Score.why``, the numbers it was
judged by before it was learned (``dataflow.model.explain``); a clean window carries None and
costs nothing more than reading the three envelopes' peaks.

Why a warm-up: HalfSpaceTrees scores 0 until its first reference window (``window_size``
windows) is full, and the level, spread and peaks of a handful of windows mean nothing. Until a
sensor has learned ``window_size + warmup`` windows it raises no ML anomaly (``model_ready`` is
false). The threshold rule does not need a model and fires from the first window.

>>> from dataflow.model.scoring import ModelParams, SensorScorer
>>> scorer = SensorScorer(ModelParams(limits=(0.0, 100.0), window_size=5, warmup=5, seed=7))
>>> S = 5 * 10**9
>>> [scorer.score_learn(i * S, 50.0 + i % 3).ml_anomaly for i in range(10)]
[False, False, False, False, False, False, False, False, False, False]
>>> scorer.score_learn(10 * S, 50.0).model_ready
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

from river import anomaly

from dataflow.model.explain import BURST, DRIFT, LEVEL, PATTERN, STEP, TREES, Evidence
from dataflow.model.features import ABSURD_Z, StepScale, Track
from dataflow.model.hst import CompactHST, Forest
from dataflow.model.novelty import Drift, Envelope
from dataflow.model.novelty import cut as novelty_cut
from dataflow.model.pattern import Memory
from dataflow.model.seasonality import Seasonality

FEATURE = "mean"
BURST_WINDOWS = 5  # windows averaged for the burst-rate feature
# How many absurd windows in a row (beyond ``ABSURD_Z`` spreads, ``features``) are a real change
# of level rather than garbage (see the module docstring).
ABSURD_RUN = 3
# Spreads from the level an alert's sensor must come back within for the alert to resolve as
# clean rather than adapted (see dataflow.alerts).
HOME_SPREADS = 3.0


@dataclass(frozen=True)
class ModelParams:
    """How each sensor's model is built; one instance is shared by all sensors of a family."""

    limits: tuple[float, float]
    window_ns: int = 5_000_000_000  # the family's window length, for seasonal slots
    n_trees: int = 5
    height: int = 3
    window_size: int = 100
    warmup: int = 100
    seed: int = 42
    level_windows: int = 300  # memory, in windows, of the running level (spread: twice)
    novelty_margin: float = 1.2  # a feature must exceed this times its decayed peak ...
    novelty_floor: float = 6.0  # ... and this many spreads
    novelty_half_life: float = 3000.0  # windows for a feature's peak to decay by half
    novelty_start: int = 20  # windows before the peaks start to learn
    hst_novelty: bool = False  # HalfSpaceTrees' score takes part in the novelty test
    hst_floor: float = 0.5  # ... when above this
    drift_slack: float = 2.0  # spreads a window may deviate before it adds to the drift sums
    drift_limit: float = 16.0  # a drift sum above this is an ML anomaly (0: off)
    drift_clip: float = 4.0  # most one window adds to a drift sum, in spreads
    pattern: bool = False  # the pattern detector (``dataflow.model.pattern``) takes part
    pattern_floor: float = 2.0  # ... when its distance is above this many spreads
    seasonality: bool = True
    season_ratio: float = 0.7  # a baseline is used when its error is below this share of the
    # level's


# Settings that shape what a model has learned: a restored model keeps its own (see retune).
STRUCTURAL = (
    "limits",
    "window_ns",
    "n_trees",
    "height",
    "window_size",
    "seed",
    "seasonality",
    "season_ratio",
    "hst_novelty",
    "hst_floor",
    "novelty_start",
    "pattern",
    "pattern_floor",
)


class Score(NamedTuple):
    """Outcome of scoring one window."""

    score: float  # HalfSpaceTrees' score of the mean, in [0, 1]
    ml_anomaly: bool
    model_ready: bool
    cut: float | None  # the HalfSpaceTrees score this window had to beat to be novel
    why: Evidence | None = None  # for an ML anomaly only: what it was judged against


_new = tuple.__new__  # a NamedTuple without its Python-level __new__: one Score per window


@functools.cache
def forest(params: ModelParams) -> Forest:
    """The trees every sensor with these parameters shares, built once by River."""
    return Forest.from_river(
        anomaly.HalfSpaceTrees(
            n_trees=params.n_trees,
            height=params.height,
            window_size=params.window_size,
            limits={FEATURE: params.limits},
            seed=params.seed,
        )
    )


class SensorScorer:
    """One sensor's model: seasonal baseline, features, novelty peaks, drift and the trees."""

    __slots__ = (
        "absurd",
        "burst",
        "calm",
        "change",
        "drift",
        "envelopes",
        "hst_envelope",
        "model",
        "params",
        "pattern",
        "pattern_envelope",
        "raw",
        "residual",
        "scatter",
        "season",
        "seen",
    )

    def __init__(self, params: ModelParams) -> None:
        self.params = params
        self.model = CompactHST(forest(params))
        self.seen = 0
        self.absurd = 0  # absurd windows in a row, not learned
        self.scatter = 0.0  # running share of a window mean owed to its readings' scatter
        self.raw = Track()  # the window means
        self.residual = Track()  # their residual from the seasonal baseline, where one is used
        self.change = StepScale()
        self.season = (
            Seasonality(params.window_ns, params.season_ratio) if params.seasonality else None
        )
        self.burst: list[float] = []  # the last BURST_WINDOWS level z-scores
        # The envelopes' peaks before the current drift episode; None while the sums are 0.
        self.calm: tuple[float, float, float] | None = None
        p = params
        half, margin, start = p.novelty_half_life, p.novelty_margin, p.novelty_start
        # Level distance, step, burst rate; and HalfSpaceTrees' score only where it votes.
        self.envelopes = (
            Envelope(half, margin, p.novelty_floor, start),
            Envelope(half, margin, p.novelty_floor, start),
            Envelope(half, margin, p.novelty_floor, start),
        )
        self.hst_envelope = Envelope(half, margin, p.hst_floor, start) if p.hst_novelty else None
        self.drift = Drift(p.drift_slack, p.drift_limit, p.drift_clip)
        # Allocated only where the pattern detector is on: nothing more to store otherwise.
        self.pattern: Memory | None = None
        self.pattern_envelope: Envelope | None = None
        if p.pattern:
            self.pattern = Memory()
            self.pattern_envelope = Envelope(half, margin, p.pattern_floor, start)

    def retune(self, params: ModelParams) -> bool:
        """Take new settings after a restore, where they can apply to what was learned: the
        warm-up, level memory, novelty and drift settings. Those that shape what was learned
        (the trees, the feature range, the window length, seasonality, the seed) cannot, and
        then the model keeps its own (False): they apply to new sensors only."""
        if any(getattr(params, name) != getattr(self.params, name) for name in STRUCTURAL):
            return False
        self.params = p = params
        decay = 0.5 ** (1.0 / p.novelty_half_life)
        for env in self.envelopes:
            env.decay, env.margin, env.floor = decay, p.novelty_margin, p.novelty_floor
        if self.hst_envelope is not None:
            self.hst_envelope.decay, self.hst_envelope.margin = decay, p.novelty_margin
        if self.pattern_envelope is not None:
            self.pattern_envelope.decay, self.pattern_envelope.margin = decay, p.novelty_margin
        self.drift.slack, self.drift.limit, self.drift.clip = (
            p.drift_slack,
            p.drift_limit,
            p.drift_clip,
        )
        return True

    def home(self) -> tuple[float, float]:
        """Where the sensor is, as the model knows it: its level, and how far from it a window
        is still near it (``HOME_SPREADS`` spreads); (level, 0) before it has a spread."""
        raw = self.raw
        floor = raw.resolution()
        if self.scatter > floor:
            floor = self.scatter
        reach = HOME_SPREADS * 1.25 * raw.scale(floor) if raw.spread > 0 else 0.0
        return raw.level, reach

    def score_learn(self, start: int, mean: float, scatter: float = 0.0) -> Score:
        """Score the window starting at ``start`` (ns) with this mean, then learn it.

        ``scatter`` is ``window_scatter`` of the window's readings (0 for one reading): the
        running value of it floors the spread, so a mean that moved by no more than its own
        readings' scatter allows (a flat signal, a window that lost a few readings) is not
        news however still the sensor has been.
        """
        p = self.params
        seen = self.seen
        ready = seen >= p.window_size + p.warmup
        hz = self.hst_envelope
        cut = None if hz is None else novelty_cut(hz.margin, hz.peak)
        if mean - mean != 0.0:  # inf or nan: no evidence of anything, and nothing to learn
            return _new(Score, (0.0, False, ready, cut, None))
        model = self.model
        score = model.score_one((mean,))
        season = self.season
        r = season.residual(start, mean) if season is not None else None
        # The residual's own level and spread need windows to settle, like the raw ones did.
        if r is not None and self.residual.seen >= p.novelty_start:
            track, value = self.residual, r
        else:
            track, value = self.raw, mean
        raw = self.raw
        # A residual or a step is in the raw means' units: one floor for all three.
        floor = raw.resolution()
        if self.scatter > floor:
            floor = self.scatter
        z = track.z(value, floor)  # 0 before the track has seen a window
        level_z = abs(z)
        last = track.last
        step = 0.0 if last is None else value - last
        step_z = self.change.z(step, floor)  # 0 for the first window: no step yet
        lz, sz, bz = self.envelopes
        if raw.spread > 0 and abs(mean - raw.level) > ABSURD_Z * 1.25 * raw.scale():
            self.absurd += 1
            if self.absurd < ABSURD_RUN:
                # Judged against the peaks, and not learned by anything.
                novel = (
                    lz.novel(level_z) or sz.novel(step_z) or (hz is not None and hz.novel(score))
                )
                if not (ready and novel):
                    return _new(Score, (score, False, ready, cut, None))
                evidence = self._why(
                    track,
                    value,
                    mean,
                    floor,
                    level_z,
                    step,
                    step_z,
                    None,
                    lz.peak,
                    sz.peak,
                    bz.peak,
                    score,
                    cut,
                    False,
                )
                return _new(Score, (score, True, ready, cut, evidence))
        else:
            self.absurd = 0
        burst = self.burst
        burst.append(level_z)
        if len(burst) > BURST_WINDOWS:
            del burst[0]
        rate = sum(burst) / len(burst)
        # The peaks this window is judged against: the explanation of an anomaly needs them.
        lp, sp, bp = lz.peak, sz.peak, bz.peak
        novel = lz.observe(level_z)
        novel = sz.observe(step_z) or novel
        novel = bz.observe(rate) or novel
        if hz is not None:
            novel = hz.observe(score) or novel
        pattern = self.pattern
        distance = pattern_peak = 0.0
        if pattern is not None:
            pe = self.pattern_envelope
            assert pe is not None
            distance, pattern_peak = pattern.observe(z), pe.peak
            novel = pe.observe(distance) or novel
        drift = self.drift.observe(z) if track.spread > 0 else False
        ml = ready and (novel or drift)
        why = None
        if ml:  # rare: only now is the evidence gathered, before anything learns the window
            why = self._why(
                track,
                value,
                mean,
                floor,
                level_z,
                step,
                step_z,
                rate,
                lp,
                sp,
                bp,
                score,
                cut,
                drift,
                distance,
                pattern_peak,
            )
        raw.learn(mean, p.level_windows)
        if not 0.0 <= scatter < math.inf:  # nothing the running value could recover from
            scatter = 0.0
        if scatter > 0.0 or self.scatter > 0.0:
            n = seen + 1 if seen + 1 < p.level_windows else p.level_windows
            self.scatter += (scatter - self.scatter) / n
        if r is not None:
            self.residual.learn(r, p.level_windows)
        if last is not None:
            self.change.learn(step, p.level_windows)
        if season is not None:
            season.learn(start, mean, raw.level)
        if not ml:
            # Like River's anomaly filters: do not teach the trees what they just called
            # anomalous.
            model.learn_one((mean,))
        self.seen = seen + 1
        sums = self.drift
        if sums.up == 0.0 and sums.down == 0.0:
            self.calm = None
        elif self.calm is None:
            self.calm = (lp, sp, bp)
        if (
            drift
            and track is raw
            and len(burst) == BURST_WINDOWS
            and min(burst) > p.novelty_floor
            and (sums.up if sums.up > sums.down else sums.down) >= 2 * sums.limit
        ):
            self._anchor(min(burst), floor)
        return _new(Score, (score, ml, ready, cut, why))

    def _anchor(self, moved: float, floor: float) -> None:
        """Accept a change of level (see the module docstring): the level moves by ``moved``
        spreads towards the drift, the sums restart, and the peaks are those before it."""
        sums, raw = self.drift, self.raw
        sign = 1.0 if sums.up > sums.down else -1.0
        raw.level = raw.level + sign * moved * 1.25 * raw.scale(floor)
        sums.up = sums.down = 0.0
        self.burst.clear()  # distances from the old level
        calm = self.calm
        if calm is not None:
            for env, peak in zip(self.envelopes, calm, strict=True):
                env.peak = peak
        self.calm = None

    def _why(
        self,
        track: Track,
        value: float,
        mean: float,
        floor: float,
        level_z: float,
        step: float,
        step_z: float,
        rate: float | None,
        level_peak: float,
        step_peak: float,
        burst_peak: float,
        score: float,
        cut: float | None,
        drift: bool,
        pattern: float = 0.0,
        pattern_peak: float = 0.0,
    ) -> Evidence:
        """The numbers an anomalous window was judged by (``dataflow.model.explain``); called
        before the window is learned, with the envelopes' peaks from before they observed it.
        ``value`` is what ``track`` measured (the mean, or its seasonal residual); ``rate`` the
        burst rate (None for an absurd window, which no burst, drift or pattern sees);
        ``pattern`` the pattern distance and ``pattern_peak`` its envelope's peak (0 where it
        is off). Which detectors fired is decided again here from those numbers, as the
        envelopes decide it, so the clean windows' path keeps no record of it."""
        lz, sz, bz = self.envelopes
        hz = self.hst_envelope
        level_cut = max(lz.floor, novelty_cut(lz.margin, level_peak))
        step_cut = max(sz.floor, novelty_cut(sz.margin, step_peak))
        burst_cut = max(bz.floor, novelty_cut(bz.margin, burst_peak))
        score_cut = 0.0 if hz is None or cut is None else max(hz.floor, cut)
        pz = self.pattern_envelope
        pattern_cut = 0.0 if pz is None else max(pz.floor, novelty_cut(pz.margin, pattern_peak))
        fired = (
            (LEVEL if level_z > level_cut else 0)
            | (STEP if step_z > step_cut else 0)
            | (BURST if rate is not None and rate > burst_cut else 0)
            | (TREES if hz is not None and score > score_cut else 0)
            | (DRIFT if drift else 0)
            | (PATTERN if pz is not None and rate is not None and pattern > pattern_cut else 0)
        )
        change = self.change.scale
        sums = self.drift
        up, down = sums.up, sums.down
        return Evidence(
            fired,
            mean,
            # The level, or the seasonal expectation plus the residual's own level: where the
            # detectors expected this window.
            mean - value + track.level,
            track is self.residual,
            1.25 * track.scale(floor),
            level_cut,
            step,
            1.25 * (change if change > floor else floor),
            step_cut,
            0.0 if rate is None else rate,
            len(self.burst),
            burst_cut,
            score,
            score_cut,
            up if up >= down else -down,
            sums.limit,
            pattern,
            pattern_cut,
        )


def window_scatter(count: int, low: float, high: float) -> float:
    """How far a window's mean may move by its readings' own scatter: about a third of the
    standard error of a mean of ``count`` readings whose range is ``high - low`` (a range of
    ten normal readings is about three standard deviations), so it floors the spread only
    where the window means' own spread has collapsed below what their readings allow."""
    if count < 2 or not high >= low:  # one reading, or no honest range (nan, swapped)
        return 0.0
    scatter = (high - low) / (9.0 * math.sqrt(count))
    return scatter if scatter < math.inf else 0.0  # a range beyond floats floors nothing


def threshold_alarm(mean: float, threshold: float | None) -> bool:
    """The fixed rule: a window mean at or above the family's threshold is an alarm."""
    return threshold is not None and mean >= threshold
