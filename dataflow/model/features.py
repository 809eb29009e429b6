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

>>> t = Track()
>>> for x in [10.0, 12.0, 10.0, 12.0]:
...     t.learn(x, level_windows=100)
>>> round(t.level, 2), round(t.z(20.0), 1)
(11.0, 10.8)
"""

from __future__ import annotations

Z_CAP = 50.0  # a feature's ceiling: beyond it, more is not more unusual, and inf stays out


class Track:
    """Running level, spread and last value of one signal."""

    __slots__ = ("last", "level", "seen", "spread")

    def __init__(self) -> None:
        self.level = 0.0
        self.spread = 0.0
        self.last: float | None = None
        self.seen = 0

    def z(self, x: float) -> float:
        """Signed distance of ``x`` from the level in spreads, within +-``Z_CAP``."""
        dev = x - self.level
        if self.spread > 0:
            z = dev / (1.25 * self.spread)
            return Z_CAP if z > Z_CAP else (-Z_CAP if z < -Z_CAP else z)
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
            self.level += (warm if warm > a else a) * (x - self.level)
            b = 0.5 / level_windows
            self.spread += (warm if warm > b else b) * (abs(x - self.level) - self.spread)
        self.last = x
        self.seen = n + 1


class StepScale:
    """Running mean absolute change between consecutive windows."""

    __slots__ = ("scale", "seen")

    def __init__(self) -> None:
        self.scale = 0.0
        self.seen = 0

    def z(self, step: float) -> float:
        """``|step|`` in mean absolute steps, at most ``Z_CAP``."""
        step = abs(step)
        if self.scale > 0:
            z = step / (1.25 * self.scale)
            return Z_CAP if z > Z_CAP else z
        return 0.0 if step == 0 else Z_CAP

    def learn(self, step: float, level_windows: int) -> None:
        self.seen += 1
        warm = 1.0 / self.seen
        a = 1.0 / level_windows
        self.scale += (warm if warm > a else a) * (abs(step) - self.scale)
