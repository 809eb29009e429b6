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

from dataflow.pickled import restore

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
    cap: int  # a slot's count stops here: from it on the weight is ``rate`` (see ``count_cap``)
    zero_means: array[float] = field(repr=False, compare=False)
    zero_counts: array[int] = field(repr=False, compare=False)

    def __setstate__(self, state: dict[str, object]) -> None:
        """A period pickled before counts saturated has no ``cap``: it follows from the rate, and
        its counts take the type ``period`` gives them now (``Baseline.__setstate__``)."""
        self.__dict__.update(state)
        if "cap" not in state:
            cap = count_cap(self.rate)
            object.__setattr__(self, "cap", cap)
            if cap <= 0xFFFF:
                object.__setattr__(self, "zero_counts", array("H", bytes(2 * len(self.zero_means))))


@functools.cache
def period(period_ns: int, slots: int, window_ns: int, memory: float, shift_ns: int) -> Period:
    """One ``Period`` per family and period, built once: a fleet's sensors only copy its arrays."""
    slot_ns = period_ns // slots
    # Windows per slot per period (at least 1), times the memory in periods.
    rate = 1.0 / (max(1.0, slot_ns / window_ns) * memory)
    cap = count_cap(rate)
    wide = cap > 0xFFFF
    return Period(
        period_ns,
        slot_ns,
        shift_ns,
        rate,
        cap,
        array("d", bytes(8 * slots)),
        array("I" if wide else "H", bytes((4 if wide else 2) * slots)),
    )


def count_cap(rate: float) -> int:
    """The first count whose warm weight ``1/n`` is no more than ``rate``: a slot's count saturates
    there, since every later window learns with ``rate`` whatever its true count. Why: counts then
    fit two bytes at any usual window length, and the weekly baseline's are most of what a
    day-old sensor holds (at most ``0xFFFFFFFE``, the widest count kept)."""
    n = max(1, int(1.0 / rate))
    while 1.0 / n > rate:
        n += 1
    return min(n, 0xFFFFFFFE)


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

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Counts pickled before they saturated (four bytes, up to ``0xFFFFFFFE``) come back in
        the period's type, saturated: every later window learns with the same weight."""
        restore(self, state)
        shape, counts = self.period, self.counts
        if counts.typecode != shape.zero_counts.typecode:
            cap = shape.cap
            self.counts = array(shape.zero_counts.typecode, (min(n, cap) for n in counts))

    def slot(self, t: int) -> int:
        p = self.period
        return slot_of(t, p.shift_ns, p.period_ns, p.slot_ns)

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
        cap = self.period.cap
        self.counts[i] = n if n < cap else cap
        warm = 1.0 / n
        rate = self.period.rate
        self.means[i] += (warm if warm > rate else rate) * (value - self.means[i])


class Seasonality:
    """A daily and a weekly ``Baseline``; the residual of whichever explains the sensor best.

    Why the weekly baseline starts as a copy of the daily one, at the first window a day (from
    the start of its first slot) after the first: until then each weekly slot the sensor visited
    saw exactly the windows of one daily slot, and both are still plain means of them, so the
    copy equals a weekly baseline learned from the start (this is its definition, for irregular
    windows too); a sensor younger than a day carries no weekly arrays (``weekly`` holds the
    shape it will have, None once it exists or where the slots do not line up).
    """

    __slots__ = ("baselines", "quality_rate", "ratio", "weekly")

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
        daily = Baseline(period(DAY_NS, daily_slots, window_ns, 7.0, 0))
        weekly = period(WEEK_NS, weekly_slots, window_ns, 4.0, _MONDAY_SHIFT_NS)
        self.baselines: tuple[Baseline, ...] = (daily,)
        self.weekly: Period | None = weekly
        if not lined_up(daily.period, weekly):
            self.baselines, self.weekly = (daily, Baseline(weekly)), None

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Snapshots from before ``weekly`` existed have both baselines already."""
        self.weekly = None
        restore(self, state)

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
        if self.weekly is not None:
            daily = self.baselines[0]
            if daily.first >= 0 and t >= weekly_due(daily):
                self.baselines = (daily, weekly_from(daily, self.weekly))
                self.weekly = None
        for b in self.baselines:
            b.learn(t, value, level, self.quality_rate)


def lined_up(daily: Period, weekly: Period) -> bool:
    """Does every daily slot of a day fall in one weekly slot (so a copy can seed the week)?"""
    slot = daily.slot_ns
    return (
        weekly.slot_ns == slot
        and DAY_NS % slot == 0
        and weekly.shift_ns % slot == 0
        and daily.shift_ns % slot == 0
    )


def weekly_due(daily: Baseline) -> int:
    """When the weekly baseline is built: a day after the start of the first window's slot."""
    return day_after_slot(daily.first, daily.period.shift_ns, daily.period.slot_ns, DAY_NS)


def slot_of(t: int, shift_ns: int, period_ns: int, slot_ns: int) -> int:
    """The slot of a period that time ``t`` falls in: ``Baseline.slot``'s arithmetic, which the
    compiled scorer (``dataflow.model.kernel``) runs too."""
    return ((t + shift_ns) % period_ns) // slot_ns


def day_after_slot(first: int, shift_ns: int, slot_ns: int, day_ns: int) -> int:
    """A day after the start of the slot ``first`` falls in: ``weekly_due``'s arithmetic, which
    the compiled scorer (``dataflow.model.kernel``) runs too."""
    return first - (first + shift_ns) % slot_ns + day_ns


def weekly_from(daily: Baseline, shape: Period) -> Baseline:
    """The weekly baseline of a sensor's first day: each daily slot's mean and count in the
    weekly slot of the same time within that day (the count at most the weekly cap: the daily
    one, with more periods of memory, saturates later, so its count is the true one until then)."""
    weekly = Baseline(shape)
    weekly.first = daily.first
    slot = daily.period.slot_ns
    start = weekly_due(daily) - DAY_NS
    for j in range(DAY_NS // slot):
        t = start + j * slot
        i, k = daily.slot(t), weekly.slot(t)
        weekly.means[k] = daily.means[i]
        n = daily.counts[i]
        weekly.counts[k] = n if n < shape.cap else shape.cap
    return weekly
