"""One machine's joint model: its channels' windows together, and which channels drove a change.

Pure: numpy only, no Kafka, no Bytewax. A pump's current may rise a little while its flow falls a
little, each inside its usual range: no per-sensor model sees it, as only their relation is new.
``MachineModel`` sees the channels of one machine as one vector per window:

1. **Standardised.** Each channel's window value is measured against its own running level and
   spread (exponentially weighted mean and variance over about ``memory`` windows; a plain mean
   until then), so a thermometer and an ammeter weigh alike: ``z`` is each channel's deviation in
   its own spreads, which the drivers report.
2. **Correlated.** An exponentially weighted covariance of ``z`` (the channels' running
   correlations) is decomposed into principal components: the few directions that hold
   ``variance`` of the machine's movement, and the rest. Two statistics are the classic monitor
   of a plant unit (process monitoring's PCA): Hotelling's **T²**, the distance inside the
   principal subspace in its own variances (the usual relations, pushed far), and **Q**, the
   squared residual off it (a relation that no longer holds). Each has a limit from its
   distribution under normal operation at ``confidence`` (chi-squared; Q by Box's scaled
   chi-squared), so ``score``, the larger of the two over its limit, is above 1 for an anomalous
   window. The decomposition is refreshed every ``REFRESH`` windows, between which the
   covariance moves by a small share.
3. **Not taught its faults.** During the warm-up, when nothing is judged yet, a window with a
   channel ``GLITCH_Z`` spreads off is a glitch: the correlations do not learn it, the levels
   and spreads only as far as ``GLITCH_Z`` (``GLITCH_RUN`` in a row are a real change). After
   it, a window the model called anomalous is not learned (a fault learned as normal would
   stop paging while it lasts). ``RELEARN`` memories of anomalous windows in a row are a new
   normal (a machine rebuilt, a new operating point): the model starts anew from then on, with
   its warm-up, and says so (``restarted``: the open alert resolves adapted). The clean windows
   of an episode are learned: a fault that comes and goes is taken in over a few memories.
4. **A chart per channel.** A lasting small change in one channel (its noise grown, a drift, a
   sensor gone still) stays inside every window's T² and Q limits, and would be learned. Each
   channel's ``chart`` is a discounted sum of its z² (weight ``chart``; mean ``1 / chart``
   under normal operation), judged against its own distribution on the windows learned: the
   scaled chi-squared of its running mean and variance (taken at each decomposition), never
   narrower than for independent windows, at ``confidence`` shared over the channels and both
   tails (above: moving more than usual; below: gone still). The charts judge once their
   moments span a memory (``warmup + memory`` windows learned), and their moments learn only
   once an episode's windows weigh less than half in them. A chart beyond a limit makes the
   window anomalous, so not learned.
5. **Drivers.** Each channel's share of the anomaly: its squared residual (of Q) and its part of
   T² (Σ of its term of ``z·C⁻¹z`` in the subspace), each over its limit, and its chart over its
   limit where beyond; ranked, with the channel's ``z``. A relation break shows in the channels
   of the relation.

A missing channel (``nan`` or infinite: it sent nothing in this window) keeps its level, spread
and chart, and its z is what the present channels imply through the principal directions
(``_impute``): it neither breaks a relation nor drives an alert, and the correlations learn only
whole windows. No anomaly until ``warmup`` windows were learned (``ready``): the spreads and
correlations of a few windows mean nothing.

>>> import random
>>> rng = random.Random(1)
>>> model = MachineModel(2, MachineParams(warmup=50))
>>> for _ in range(200):
...     load = rng.gauss(0, 1)
...     _ = model.score_learn([10 + load + rng.gauss(0, 0.1), 5 - load + rng.gauss(0, 0.1)])
>>> model.score_learn([10.5, 4.5]).anomaly      # both moved, together as usual
False
>>> out = model.score_learn([10.5, 5.5])       # each within a spread, but against each other
>>> out.anomaly, [i for i, *_ in out.drivers]
(True, [0, 1])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Z_CAP = 50.0  # a channel's deviation, in spreads, counts at most this much (inf stays out)
REFRESH = 8  # windows learned between two eigen-decompositions of the covariance
EIGEN_FLOOR = 1e-6  # share of the trace below which an eigenvalue counts as that
VAR_FLOOR = 1e-200  # a moved channel's variance is taken as at least this
MAX_DRIVERS = 5  # channels a score names, at most
START = 20  # windows learned before the correlations start to learn
RELEARN = 10  # anomalous windows in a row, in memories, that are a new normal
CHART_CAP = 100.0  # a window's z² counts at most this much in a channel's chart
LIMITS_EVERY = 4  # decompositions between two refreshes of the charts' limits
HALF_LIFE = math.log(2.0)  # times 1 / chart: windows in which a window's weight halves
STILL_EVERY = 8  # windows between two looks for a channel gone still (a slow change)
# During the warm-up, a window with a channel this many spreads off is a glitch, not learned,
# unless GLITCH_RUN of them come in a row (a real change of level).
GLITCH_Z = 8.0
GLITCH_RUN = 3

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MachineParams:
    """How a machine's model is built; one instance is shared by all machines of a family."""

    memory: int = 300  # windows of memory of levels, spreads and correlations
    variance: float = 0.9  # share of the variance the principal subspace keeps
    confidence: float = 0.999  # of each statistic's limit under normal operation
    warmup: int = 100  # windows learned before any anomaly
    chart: float = 0.1  # weight of a window in each channel's chart of z² (0: no charts)


class MachineScore(NamedTuple):
    """Outcome of scoring one machine window."""

    score: float  # the larger of T² and Q over its limit: above 1 is anomalous
    anomaly: bool
    ready: bool
    t2: float  # Hotelling's T², and its limit
    t2_limit: float
    q: float  # the squared residual off the principal subspace, and its limit
    q_limit: float
    # (channel index, z, movement), largest contribution first; movement is the root of the
    # channel's chart over its usual value where the chart drove it (above 1: moving more than
    # usual, below: gone still), 0 where its deviation did
    drivers: tuple[tuple[int, float, float], ...]
    # The model started anew at this window: ``RELEARN`` memories of anomalous windows in a row
    # are a new normal, which the machine's open alert is told (it resolves ``adapted``).
    restarted: bool = False


@functools.cache
def _normal_quantile(p: float) -> float:
    return NormalDist().inv_cdf(p)


def chi2_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of chi-squared with ``df`` degrees of freedom (Wilson and Hilferty's
    cube-root normal approximation; close enough for a limit, and no scipy in the flow)."""
    if df <= 0:
        return 0.0
    z = _normal_quantile(p)
    a = 2.0 / (9.0 * df)
    return float(df * max(1.0 - a + z * math.sqrt(a), 0.0) ** 3)


@functools.cache
def _spread_weights(k: int, a: float) -> tuple[Vector, float]:
    """For ``k`` squared deviations learned one by one at weight ``a`` (West's update): each
    one's weight in the variance, and what is left of the old variance."""
    b = 1.0 - a
    return a * b ** (k - np.arange(k)).astype(np.float64), b**k


class MachineModel:
    """One machine's model over ``channels`` window values. Picklable: a few small arrays.

    Per window the work is a dozen small numpy operations. The correlations are only read when
    they are decomposed, every ``REFRESH`` learned windows, so the windows' z are kept until
    then and folded in with one product; and after the warm-up the spreads' inverses are
    refreshed with them.
    """

    __slots__ = (
        "age",
        "basis",
        "buf",
        "buf_w",
        "calm",
        "chart",
        "chart_bound",
        "chart_inv_hi",
        "chart_lo",
        "chart_m",
        "chart_max_inv",
        "chart_n",
        "chart_s",
        "counts",
        "cov",
        "dev_buf",
        "dev_n",
        "flat",
        "forms",
        "glitch",
        "inv_lam",
        "inv_sd",
        "mean",
        "params",
        "q_limit",
        "related",
        "run",
        "seen",
        "still",
        "t2_limit",
        "tick",
        "var",
    )

    def __init__(self, channels: int, params: MachineParams) -> None:
        if channels < 1:
            raise ValueError("a machine needs at least one channel")
        self.params = params
        self.seen = 0  # windows learned
        # Windows each channel was present in, of those learned: its level and spread learn with
        # its own count (a channel sent one window in thirty kept its warm-up spread for
        # thousands of windows when they counted every window).
        self.counts: Vector = np.zeros(channels)
        self.run = 0  # anomalous windows in a row
        self.glitch = 0  # glitches in a row during the warm-up, not learned
        self.related = 0  # whole windows learned: the correlations' count (see _correlate)
        self.age = REFRESH  # windows learned since the last decomposition (REFRESH: due)
        self.mean: Vector = np.zeros(channels)
        self.var: Vector = np.zeros(channels)
        self.dev_buf: Vector = np.zeros((REFRESH, channels))  # deviations not yet learned
        self.dev_n = 0
        self.inv_sd: Vector = np.zeros(channels)  # 1 / sqrt(var), 0 where var is 0
        self.flat = True  # some channel has not moved yet (var 0) since its first window
        self.cov: Vector = np.eye(channels)  # of z: the running correlations
        self.buf: Vector = np.zeros((REFRESH, channels))  # z learned since, not yet in cov
        self.buf_w: list[float] = []  # the weight each of them has in cov
        self.basis: Vector = np.zeros((channels, 0))  # the principal directions, columns
        self.inv_lam: Vector = np.zeros(0)  # 1 / their variances
        self.t2_limit = self.q_limit = 0.0
        # Each channel's chart: a discounted sum of its z², its running mean and mean square
        # (taken at each decomposition: it moves little in REFRESH windows), and its limits.
        level = 1.0 / params.chart if params.chart else 1.0
        self.chart: Vector = np.full(channels, level)
        self.chart_m: Vector = np.full(channels, level)
        self.chart_s: Vector = np.full(channels, level * level)
        self.chart_n = 0  # values taken into the moments
        self.calm = 0  # windows since the last anomalous one
        self.chart_inv_hi: Vector = np.zeros(channels)  # 1 / the upper limits
        # A bound on the largest chart over its upper limit, so that most windows need not
        # look at every chart: it grows by at most |z|²·max(chart_inv_hi) a window.
        self.chart_bound = math.inf
        self.chart_max_inv = 0.0
        self.chart_lo: Vector = np.zeros(channels)
        self.still = 0.0  # the lower limits' part of the score, every STILL_EVERY windows
        self.tick = 0  # windows scored
        # T², Q and |z|² as quadratic forms of z, stacked: one product scores a window
        self.forms: Vector = np.stack(
            [np.zeros((channels, channels)), np.eye(channels), np.eye(channels)]
        )

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    def retune(self, params: MachineParams) -> None:
        """New settings after a restore: every one applies to what was learned."""
        self.params = params
        self.age = REFRESH

    def _fold(self) -> None:
        """Fold the z kept since the last decomposition into the correlations: each decays the
        ones before it, as learning them one by one would."""
        ws = self.buf_w
        if not ws:
            return
        coef = []
        keep = 1.0
        for a in reversed(ws):
            coef.append(a * keep)
            keep *= 1.0 - a
        coef.reverse()
        zs = self.buf[: len(ws)]
        c = self.cov
        c *= keep
        c += (zs.T * np.array(coef)) @ zs
        self.buf_w = []

    def _decompose(self) -> None:
        p = self.params
        self._fold()
        self._fold_levels()
        if self.seen >= p.warmup:
            self._spread()
        lam_a, vec = np.linalg.eigh(self.cov)  # ascending
        lam = lam_a.tolist()[::-1]  # a handful of numbers: plain floats are quicker here
        n = len(lam)
        total = sum(lam)
        floor = EIGEN_FLOOR * total if total > 0 else EIGEN_FLOOR
        lam = [x if x > floor else floor for x in lam]
        whole = sum(lam)
        k, cum = 0, 0.0
        while k < n:
            cum += lam[k]
            k += 1
            if cum >= p.variance * whole:
                break
        if k >= n and n > 1:
            k = n - 1  # a residual is left, for Q: relations are what a machine model is for
        self.basis = basis = vec[:, n - k :][:, ::-1].copy()
        self.inv_lam = np.array([1.0 / x for x in lam[:k]])
        forms = self.forms  # in place: T²'s, Q's (the residual's projector), and |z|²'s (eye)
        np.matmul(basis * self.inv_lam, basis.T, out=forms[0])
        np.matmul(basis, basis.T, out=forms[1])
        np.subtract(forms[2], forms[1], out=forms[1])
        self.t2_limit = chi2_quantile(p.confidence, k)
        rest = lam[k:]
        theta1, theta2 = sum(rest), sum(x * x for x in rest)
        self.q_limit = (
            theta2 / theta1 * chi2_quantile(p.confidence, theta1 * theta1 / theta2)
            if theta1 > 0
            else 0.0
        )
        if p.chart and self.seen >= p.warmup // 2:
            self._chart_learn()
            if self.seen >= p.warmup and self.chart_n % LIMITS_EVERY == 0:
                self._chart_limits()
        self.age = 0

    def _chart_limits(self) -> None:
        """Each chart's limits from its own distribution on the windows learned (each chart
        value taken before its window was learned): the scaled chi-squared of its running mean
        and variance, at ``confidence`` shared over the channels and the two tails."""
        p = self.params
        m = self.chart_m
        v = np.maximum(self.chart_s - m * m, 1e-12 * m * m)
        # Both tails, Bonferroni over the channels: a channel moving more than its usual, and
        # one gone still (a stuck valve or sensor).
        # Never narrower than for independent windows of a standardised channel (z² of mean 1
        # and variance 2: its EWMA's variance 2·lam / (2 - lam)), which a few windows' moments
        # can understate: windows that follow each other only widen an EWMA's distribution.
        z = _normal_quantile(1.0 - (1.0 - p.confidence) / len(m))
        lam = p.chart
        a0 = 2.0 * lam / (2.0 - lam) / 9.0
        a = np.maximum(v / (9.0 * m * m), a0)
        ra = np.sqrt(a)
        hi = m * np.maximum(1.0 - a + z * ra, 0.0) ** 3
        self.chart_inv_hi = np.divide(1.0, hi, out=np.zeros_like(hi), where=hi > 0)
        self.chart_max_inv = float(self.chart_inv_hi.max())
        self.chart_bound = math.inf  # new limits: look again
        self.chart_lo = m * np.maximum(1.0 - a - z * ra, 0.0) ** 3

    def score_learn(self, values: Sequence[float]) -> MachineScore:
        """Score one window of every channel (``nan``: the channel sent nothing), then learn it
        unless it was anomalous."""
        p = self.params
        x = np.array(values, dtype=np.float64)
        dev = x - self.mean
        # One sum tells a whole window (nan and inf spread through it); a huge one that
        # overflows only takes the slower path.
        whole = math.isfinite(sum(values))
        if not whole:
            present = np.isfinite(x)
            dev[~present] = 0.0  # at its level
        seen = self.seen
        z = dev * self.inv_sd
        if self.flat:  # a channel that never moved: any move is as far as it gets
            z = np.where(self.inv_sd > 0, z, np.sign(dev) * Z_CAP)
        if self.age >= REFRESH:
            self._decompose()
        if not whole:
            z = self._impute(z, present)
        ready = seen >= p.warmup
        t2, q, zsq = (self.forms @ z @ z).tolist()
        q = q if q > 0.0 else 0.0  # the residual's squared length, never below 0 by rounding
        tl, ql = self.t2_limit, self.q_limit
        score = max(t2 / tl if tl > 0 else 0.0, q / ql if ql > 0 else 0.0)
        lam = p.chart
        if lam:
            zz = z * z
            if zsq > CHART_CAP:
                np.minimum(zz, CHART_CAP, out=zz)
            chart = self.chart
            if not whole:  # a channel that sent nothing keeps its chart (c = (1-lam)c + lam*c)
                zz[~present] = lam * chart[~present]
                self.chart_bound = math.inf
            chart *= 1.0 - lam
            chart += zz
            if seen >= p.warmup + p.memory:  # the charts' moments span a memory
                self.tick += 1
                # Every window while a channel is flagged still: looked at every STILL_EVERY
                # windows only, a channel moving again kept its machine anomalous (and other
                # channels named its drivers) for up to STILL_EVERY - 1 windows.
                if self.tick >= STILL_EVERY or self.still > 1.0:
                    self.tick = 0
                    self.still = max((self.chart_lo / np.maximum(chart, 1e-300)).tolist())
                bound = (1.0 - lam) * self.chart_bound + min(zsq, CHART_CAP) * self.chart_max_inv
                if bound > 1.0:  # maybe above: look (below, the charts' part stays out)
                    bound = max((chart * self.chart_inv_hi).tolist())  # quicker than .max()
                    score = max(score, bound)
                self.chart_bound = bound
                score = max(score, self.still)
        anomaly = ready and score > 1.0
        drivers: tuple[tuple[int, float, float], ...] = ()
        if anomaly:
            drivers = self._drivers(z, z @ self.basis, None if whole else present)
            self.run += 1
            self.calm = 0
            if self.run < RELEARN * p.memory:
                return MachineScore(score, True, ready, t2, tl, q, ql, drivers)
            # A new normal (a machine rebuilt, a new operating point): the model starts anew
            # from this window, with a warm-up. Learned on top of the old relations, it
            # called the new state's ordinary windows anomalous until they outweighed them,
            # and paged the same lasting change again after each cooldown.
            self.__init__(self.channels, p)  # type: ignore[misc]
            return self.score_learn(values)._replace(restarted=True)
        else:
            self.run = 0
            self.calm += 1
        relate = True
        if not ready and seen >= START and not self.flat:
            # Nothing is judged yet, so nothing would stop one glitch (a PLC restart reading
            # 0) from teaching the correlations a relation broken for memories. The levels and
            # spreads still learn it, as if GLITCH_Z spreads off: a heavy-tailed channel's
            # spread needs its tails (leaving such windows out narrowed TEP's limits).
            if float(np.abs(z).max()) > GLITCH_Z:
                self.glitch += 1
                relate = self.glitch >= GLITCH_RUN
                if not relate:  # and the levels and spreads learn it as GLITCH_Z spreads off
                    sd = np.divide(1.0, self.inv_sd, out=np.zeros_like(dev), where=self.inv_sd > 0)
                    dev = np.clip(dev, -GLITCH_Z * sd, GLITCH_Z * sd)
                    x = self.mean + dev
            else:
                self.glitch = 0
        if whole:
            self._learn(x, dev, z, seen, relate)
        elif present.any():
            self._learn_some(dev, present, seen)
        return MachineScore(score, anomaly, ready, t2, tl, q, ql, drivers)

    def _chart_learn(self) -> None:
        """Take the charts' values into their moments (from half the warm-up: before, the
        levels and spreads are those of a handful of windows), once per REFRESH windows
        learned, each with the weight of those windows; the first replaces the start."""
        c = self.chart
        if self.calm * self.params.chart < HALF_LIFE:
            # An anomalous window still weighs half or more in the charts: what they show is
            # not learned (an episode's clean windows would teach its charts otherwise).
            return
        n = self.chart_n
        a = max(1.0 / (n + 1), REFRESH / self.params.memory)
        self.chart_m += a * (c - self.chart_m)
        self.chart_s += a * (c * c - self.chart_s)
        self.chart_n = n + 1

    def _impute(self, z: Vector, present: npt.NDArray[np.bool_]) -> Vector:
        """The missing channels' z as the present ones imply it: its conditional mean under the
        learned correlations (``C_mp C_pp^-1 z_p``), so a channel that sent nothing neither
        breaks the relations (at its level, 0, it would while the others move) nor scores
        beyond what the present ones show. (A fit through the principal directions was nearly
        singular with one channel missing, and put T² in the millions.) With no channel
        present: 0."""
        if not present.any():
            return z
        cov = self.cov
        p_idx = np.flatnonzero(present)
        m_idx = np.flatnonzero(~present)
        try:
            w = np.linalg.solve(cov[np.ix_(p_idx, p_idx)], z[p_idx])
        except np.linalg.LinAlgError:
            w = np.linalg.lstsq(cov[np.ix_(p_idx, p_idx)], z[p_idx], rcond=None)[0]
        z = z.copy()
        z[m_idx] = cov[np.ix_(m_idx, p_idx)] @ w
        return z

    def _drivers(
        self, z: Vector, t: Vector, present: npt.NDArray[np.bool_] | None = None
    ) -> tuple[tuple[int, float, float], ...]:
        """Channels ranked by their share of the score: the squared residual (of Q) and the
        term of T² of each, over the statistic's limit; with each one's z (within +-Z_CAP).
        A channel that sent nothing (not ``present``) drives nothing: its z was imputed."""
        tl, ql = self.t2_limit, self.q_limit
        r = z - self.basis @ t
        part_t2 = z * (self.basis @ (t * self.inv_lam))  # each channel's term; they sum to T²
        contrib = (r * r) / (ql if ql > 0 else 1.0) + np.maximum(part_t2, 0.0) / (
            tl if tl > 0 else 1.0
        )
        charted = np.zeros_like(contrib)  # each channel's chart part, where beyond a limit
        if self.params.chart:  # a channel beyond its chart's limits
            out = np.maximum(
                self.chart * self.chart_inv_hi, self.chart_lo / np.maximum(self.chart, 1e-300)
            )
            charted = np.where(out > 1.0, out, 0.0)
            contrib = contrib + charted
        if present is not None:
            contrib = np.where(present, contrib, 0.0)
        total = float(contrib.sum())
        order = np.argsort(-contrib, kind="stable")
        picked: list[tuple[int, float, float]] = []
        share = 0.0
        for i in order[:MAX_DRIVERS]:
            c = float(contrib[i])
            if c <= 0 or (picked and c < total / (4 * len(contrib))):
                break
            zi = float(z[i])
            movement = 0.0
            if charted[i] > 0.5 * c:  # its chart, more than its deviation, drove it
                movement = math.sqrt(float(self.chart[i]) / max(float(self.chart_m[i]), 1e-300))
            zi = round(Z_CAP if zi > Z_CAP else max(zi, -Z_CAP), 2)
            picked.append((int(i), zi, round(movement, 3)))
            share += c
            if share >= 0.9 * total:
                break
        return tuple(picked)

    def _learn(self, x: Vector, dev: Vector, z: Vector, seen: int, relate: bool = True) -> None:
        p = self.params
        counts = self.counts
        if counts.min() + 1 >= p.memory and seen >= p.warmup and not self.flat:
            # Past the warm-up the weight is 1 / memory and the spreads are only read at the
            # decompositions: the deviations are kept and folded in there (_fold_levels); the
            # level moves at once.
            n = self.dev_n
            if n >= REFRESH:
                self._fold_levels()
                n = 0
            self.dev_buf[n] = dev
            self.dev_n = n + 1
            self.mean += dev * (1.0 / p.memory)
            if relate:
                self._correlate(z)
            self.related += 1
            counts += 1
            self.seen = seen + 1
            self.age += 1
            return
        self._fold_levels()
        a = np.maximum(1.0 / (counts + 1), 1.0 / p.memory)
        if seen:
            # Exponentially weighted mean and variance (West's update).
            self.mean += a * dev
            var = self.var
            var += a * (dev * dev)
            var *= 1.0 - a
            if relate:
                self._correlate(z)
        else:
            self.mean[:] = x
        if seen < self.params.warmup or self.flat:
            self._spread()
        self.related += 1
        counts += 1
        self.seen = seen + 1
        self.age += 1

    def _fold_levels(self) -> None:
        """Learn the spreads of the deviations kept since the last fold, as learning them one
        by one would (each was taken against the level of its window)."""
        k = self.dev_n
        if not k:
            return
        self.dev_n = 0
        var_w, keep = _spread_weights(k, 1.0 / self.params.memory)
        devs = self.dev_buf[:k]
        var = self.var
        var *= keep
        var += var_w @ (devs * devs)

    def _spread(self) -> None:
        var = self.var
        if not self.flat:  # every channel has moved: a variance never returns to 0
            # (floored: a channel constant for long enough would underflow to 0, and 0 * inf)
            np.divide(1.0, np.sqrt(np.maximum(var, VAR_FLOOR)), out=self.inv_sd)
            return
        moved = var > 0
        self.flat = not bool(moved.all())
        self.inv_sd = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=moved)

    def _correlate(self, z: Vector) -> None:
        """Keep z for the correlations from the ``START``-th whole window on (the first
        windows' z, against the level and spread of a handful, would weigh on them far beyond
        their number); ``_fold`` takes them in. Counted in whole windows learned (``related``),
        the only ones the correlations learn: counted in all windows, a channel missing half
        the time left the identity's weight in them for good, and a wide Q limit hid breaks."""
        n = self.related - START
        if n < 0:
            return
        a = max(1.0 / (n + 2), 1.0 / self.params.memory)  # the identity counts as one window
        ws = self.buf_w
        if len(ws) >= REFRESH:
            self._fold()
            ws = self.buf_w
        self.buf[len(ws)] = z
        ws.append(a)

    def _learn_some(self, dev: Vector, present: npt.NDArray[np.bool_], seen: int) -> None:
        """Some channels are missing: they keep their level and spread, and the correlations
        learn nothing (a missing channel's z, imputed or at its level, would teach them a
        relation that holds exactly, or not at all, and narrow or break their limits)."""
        if not seen:
            return  # a first level must have every channel
        self._fold_levels()
        a = np.maximum(1.0 / (self.counts + 1), 1.0 / self.params.memory)
        self.mean += a * dev  # dev is 0 where missing
        self.var += np.where(present, a * (dev * dev), 0.0)
        self.var *= np.where(present, 1.0 - a, 1.0)
        self.counts[present] += 1
        if seen < self.params.warmup or self.flat:
            self._spread()
        self.seen = seen + 1
        self.age += 1
