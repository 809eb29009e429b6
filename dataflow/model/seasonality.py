"""A sensor's time-of-day and day-of-week baseline, used only where it explains the sensor.

Why: many sensors follow a daily or weekly cycle (load, traffic, temperature of a building). A
change that stays inside the usual range, such as a cycle that goes flat, misses a peak, or a
weekday that looks like a Sunday, is invisible to a model of the level alone: the level's spread
holds the whole cycle. Against the value expected at that time of day (or week) such a change is
a plain departure.

Each ``Baseline`` keeps one exponentially weighted mean per slot of its period (48 half-hour slots
of a day; 336 of a week) and how well it has predicted the sensor (a running mean absolute
residual) against the level alone. ``Seasonality`` offers the residual of the baseline that
predicts best, and only when it beats the level clearly (``ratio``), after a whole period has
been seen: a sensor without a cycle is left alone. Pure, small (two flat arrays per period).

>>> DAY = 86_400 * 10**9
>>> s = Seasonality(window_ns=1800 * 10**9)
>>> for i in range(48 * 3):  # three days of a square wave: 10 by night, 50 by day
...     t = i * 1800 * 10**9
...     value = 50.0 if (t % DAY) >= DAY // 2 else 10.0
...     r = s.residual(t, value)
...     s.learn(t, value, level=30.0)
>>> s.residual(3 * DAY, 10.0), s.residual(3 * DAY, 50.0)
(0.0, 40.0)
"""

from __future__ import annotations

import functools
from array import array
from dataclasses import dataclass, field

DAY_NS = 86_400 * 1_000_000_000
WEEK_NS = 7 * DAY_NS
# The Unix epoch was a Thursday: shift so that a week's slots start on Monday 00:00 UTC.
_MONDAY_SHIFT_NS = 3 * DAY_NS


@dataclass(frozen=True)
class Period:
    """What every sensor's baseline of one period shares: slots, EWMA weight, empty arrays."""

    period_ns: int
    slot_ns: int
    shift_ns: int
    rate: float  # a slot's EWMA weight once it has ``memory`` periods of windows
    zero_means: array[float] = field(repr=False, compare=False)
    zero_counts: array[int] = field(repr=False, compare=False)


@functools.cache
def period(period_ns: int, slots: int, window_ns: int, memory: float, shift_ns: int) -> Period:
    """One ``Period`` per family and period, built once: a fleet's sensors only copy its arrays."""
    slot_ns = period_ns // slots
    # Windows per slot per period (at least 1), times the memory in periods.
    rate = 1.0 / (max(1.0, slot_ns / window_ns) * memory)
    return Period(
        period_ns,
        slot_ns,
        shift_ns,
        rate,
        array("d", bytes(8 * slots)),
        array("I", bytes(4 * slots)),
    )


class Baseline:
    """Per-slot means of one period; ``memory`` periods of weight, as an EWMA per slot."""

    __slots__ = ("counts", "eraw", "eres", "first", "means", "period")

    def __init__(self, shape: Period) -> None:
        self.period = shape
        self.means = shape.zero_means[:]  # a copy of the empty arrays: faster than building
        self.counts = shape.zero_counts[:]
        self.first = -1  # event time of the first window learned
        self.eres = 0.0  # running mean |value - slot mean|, from the second period on
        self.eraw = 0.0  # the same windows' running mean |value - level|

    def slot(self, t: int) -> int:
        p = self.period
        return ((t + p.shift_ns) % p.period_ns) // p.slot_ns

    def expected(self, t: int) -> float | None:
        """The slot's mean, or None before a whole period was seen or if the slot is empty."""
        if self.first < 0 or t - self.first < self.period.period_ns:
            return None
        i = self.slot(t)
        return self.means[i] if self.counts[i] else None

    def learn(self, t: int, value: float, level: float, quality_rate: float) -> None:
        if self.first < 0:
            self.first = t
        i = self.slot(t)
        n = self.counts[i]
        if n and t - self.first >= self.period.period_ns:
            self.eres += quality_rate * (abs(value - self.means[i]) - self.eres)
            self.eraw += quality_rate * (abs(value - level) - self.eraw)
        n += 1
        self.counts[i] = n if n < 0xFFFFFFFF else n - 1
        warm = 1.0 / n
        rate = self.period.rate
        self.means[i] += (warm if warm > rate else rate) * (value - self.means[i])


class Seasonality:
    """A daily and a weekly ``Baseline``; the residual of whichever explains the sensor best."""

    __slots__ = ("baselines", "quality_rate", "ratio")

    def __init__(
        self,
        window_ns: int,
        ratio: float = 0.7,
        daily_slots: int = 48,
        weekly_slots: int = 336,
        quality_windows: int = 300,
    ) -> None:
        self.ratio = ratio
        self.quality_rate = 1.0 / quality_windows
        self.baselines = (
            Baseline(period(DAY_NS, daily_slots, window_ns, 7.0, 0)),
            Baseline(period(WEEK_NS, weekly_slots, window_ns, 4.0, _MONDAY_SHIFT_NS)),
        )

    def residual(self, t: int, value: float) -> float | None:
        """``value`` minus the best baseline's expectation at ``t``; None where none is used."""
        best: float | None = None
        best_err = 0.0
        for b in self.baselines:
            if b.eres >= self.ratio * b.eraw or (best is not None and b.eres >= best_err):
                continue
            expected = b.expected(t)
            if expected is not None:
                best, best_err = value - expected, b.eres
        return best

    def learn(self, t: int, value: float, level: float) -> None:
        """Learn a window mean; ``level`` is the sensor's running level, the yardstick."""
        for b in self.baselines:
            b.learn(t, value, level, self.quality_rate)
