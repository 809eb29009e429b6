"""What a window is measured by: its distance from the sensor's level, and its change. Pure.

A window mean alone says nothing about whether it is unusual; these features do, in units of the
sensor's own variability, so one set of novelty rules serves a thermometer and a CPU gauge alike:

- ``level z``: distance from the running level (exponentially weighted mean over about
  ``level_windows`` windows) in running spreads (weighted mean absolute deviation, with twice
  the memory: a scale takes longer to estimate than a location). 1.25 mean absolute deviations
  are about one standard deviation for normal noise.
- ``change z``: the step from the previous window in units of the running mean absolute step.
  A jump shows here first, before the level has moved much.

``Track`` holds one signal's level, spread and last value; the scorer keeps one for the raw
means and one for their residual from a seasonal baseline.

Why a floor under the spread: a flat or quantised signal's spread decays toward zero, and then
floating-point noise, or a window that lost some of its readings, would score as an enormous
distance. The spread is never taken below a ``floor`` the caller knows (the scorer's: how much a
window mean can move by its readings' own scatter) nor below ``REL_EPS`` of the level
(differences that small are rounding, not readings).

Why a knee and not a cap: beyond ``Z_KNEE`` spreads a feature grows with the logarithm of the
distance. More is still more unusual, so a spike larger than any before still beats the peak
an earlier huge one left (a hard cap made every later spike equal to it, and unseen), while one
absurd distance cannot lift a peak so high that it hides everything after it. The novelty test
(``dataflow.model.novelty``) compares *distances*: its margin and its decay are applied to what
a softened value stands for (``harden``), not to the logarithm, so a spike beyond the knee needs
``margin`` times the distance of the peak, as one below it does. (A margin on the logarithm is a
far larger one on the distance, and a peak capped near the knee made every distance beyond
``margin`` times the cap novel however often it came.)

Why the level and the spread learn far windows softened: the spread is the sensor's routine
scatter, and one spike hundreds of spreads out is not scatter; nor is it where the sensor is.
Learned at its full size it could double the spread at once, so that a spike twice as large a
few windows later measured no larger than the first, and went unseen; and it dragged the level
by several spreads, so that the normal windows after a routine huge spike sat below the level
long enough for the drift sums to page. Beyond ``SPREAD_KNEE`` spreads a deviation teaches the
spread (and a step the step scale) only logarithmically, and beyond ``Z_KNEE`` the level (a
knee as low as the spread's cost NAB windows: the level must follow real moves): a lasting
change of level still moves them within a few windows, since every window teaches them again.

>>> t = Track()
>>> for x in [10.0, 12.0, 10.0, 12.0]:
...     t.learn(x, level_windows=100)
>>> round(t.level, 2), round(t.z(20.0), 1)
(11.0, 10.8)
"""

from __future__ import annotations

import math

Z_KNEE = 50.0  # spreads beyond which a feature grows with the logarithm of the distance
Z_CAP = Z_KNEE * (1.0 + math.log(1e12))  # where an infinite distance lands
# Spreads from the level beyond which a window is absurd: garbage, or (when it lasts) a change of
# level, never a size that later windows should be compared with (``dataflow.model.scoring``, and
# the most a novelty peak remembers, ``dataflow.model.novelty``).
ABSURD_Z = 1000.0
# Spreads beyond which a window teaches the level, the spread (or a step scale) only
# logarithmically: see "Why the level and the spread learn far windows softened".
SPREAD_KNEE = 25.0
REL_EPS = 1e-9  # a difference this small relative to the value is rounding, not the sensor


def soften(z: float) -> float:
    """``z`` (non-negative) itself up to the knee, logarithmic beyond, at most ``Z_CAP``."""
    if z <= Z_KNEE:
        return z
    if z >= 1e12 * Z_KNEE:
        return Z_CAP
    return Z_KNEE * (1.0 + math.log(z / Z_KNEE))


def harden(z: float) -> float:
    """The distance ``soften`` made ``z`` of (inverse of it; infinite at ``Z_CAP``)."""
    if z <= Z_KNEE:
        return z
    if z >= Z_CAP:
        return math.inf
    return Z_KNEE * math.exp(z / Z_KNEE - 1.0)


def tamed(dev: float, scale: float, knee: float = SPREAD_KNEE) -> float:
    """``dev`` (non-negative) as a spread of ``scale`` learns it: itself up to ``knee`` spreads
    (of ``1.25 * scale``), logarithmic beyond, as ``soften`` is beyond its knee."""
    unit = 1.25 * scale
    if unit > 0 and dev > knee * unit:
        return unit * knee * (1.0 + math.log(dev / (knee * unit)))
    return dev


class Track:
    """Running level, spread and last value of one signal."""

    __slots__ = ("last", "level", "seen", "spread")

    def __init__(self) -> None:
        self.level = 0.0
        self.spread = 0.0
        self.last: float | None = None
        self.seen = 0

    def resolution(self) -> float:
        """The smallest difference from the level that is not rounding."""
        return REL_EPS * abs(self.level)

    def scale(self, floor: float = 0.0) -> float:
        """The spread, never below ``floor`` or this signal's own resolution."""
        s = self.spread
        if floor > s:
            s = floor
        r = self.resolution()
        return r if r > s else s

    def z(self, x: float, floor: float = 0.0) -> float:
        """Signed distance of ``x`` from the level in spreads (``soften``ed)."""
        dev = x - self.level
        s = self.scale(floor)
        if s > 0:
            z = dev / (1.25 * s)
            if -Z_KNEE <= z <= Z_KNEE:
                return z
            return soften(z) if z > 0 else -soften(-z)
        if not self.seen or dev == 0:
            return 0.0
        return Z_CAP if dev > 0 else -Z_CAP

    def learn(self, x: float, level_windows: int) -> None:
        """Exponentially weighted; a plain mean until the memory is that long."""
        n = self.seen
        if n == 0:
            self.level = x
        else:
            warm = 1.0 / (n + 1)
            a = 1.0 / level_windows
            d = x - self.level
            d = tamed(d, self.spread, Z_KNEE) if d >= 0 else -tamed(-d, self.spread, Z_KNEE)
            self.level += (warm if warm > a else a) * d
            b = 0.5 / level_windows
            dev = tamed(abs(x - self.level), self.spread)
            self.spread += (warm if warm > b else b) * (dev - self.spread)
        self.last = x
        self.seen = n + 1


class StepScale:
    """Running mean absolute change between consecutive windows."""

    __slots__ = ("scale", "seen")

    def __init__(self) -> None:
        self.scale = 0.0
        self.seen = 0

    def z(self, step: float, floor: float = 0.0) -> float:
        """``|step|`` in mean absolute steps (never fewer than ``floor``), ``soften``ed."""
        step = abs(step)
        s = self.scale if self.scale > floor else floor
        if s > 0:
            z = step / (1.25 * s)
            return z if z <= Z_KNEE else soften(z)
        return 0.0 if step == 0 else Z_CAP

    def learn(self, step: float, level_windows: int) -> None:
        self.seen += 1
        warm = 1.0 / self.seen
        a = 1.0 / level_windows
        self.scale += (warm if warm > a else a) * (tamed(abs(step), self.scale) - self.scale)
