"""How often a sensor family's readings usually arrive, so its silence is judged by its own pace.

A fixed silence limit lies for a family that reports every few minutes: it pages between two
normal reports. ``Cadence`` learns the usual gap between the batches that carry a family's
readings, and the Prometheus rule ``SensorFamilySilent`` fires only after a silence several
times that long (docs/operations.md, "Prometheus rules").

The estimate is the time-weighted median of the recent gaps: the gap length that at least half
of the recent time was spent in gaps no longer than. Weighting by time makes it the pace of the
family's reporting rounds, not of the polls inside a round: ten sensors reporting within the
same second every 15 minutes give nine gaps of a few milliseconds and one of 15 minutes, and
the median of the gaps by count would say "milliseconds" while the family is silent for 15
minutes at a time. One long outage moves it no more than its share of the recent time.

Gaps under ``SHORT_S`` (the polls of one round, or a continuously reporting family) are pooled
into one entry per ``POOL_S`` of their total length, so a fast family costs one entry a minute
and its many small gaps still weigh what they last. Pure: the caller passes the clock's reading.
"""

from __future__ import annotations

from collections import deque

SHORT_S = 1.0  # a gap shorter than this is part of one burst of readings
POOL_S = 60.0  # short gaps are pooled into one entry of about this much time
KEEP = 64  # entries (long gaps and pools) the median is taken over


class Cadence:
    """One family's arrivals: ``observe(now)`` at each batch with its readings."""

    __slots__ = ("_entries", "_last", "_pooled", "_pooled_n", "interval")

    def __init__(self) -> None:
        self._last: float | None = None
        self._pooled = 0.0  # total length of the short gaps not yet in an entry
        self._pooled_n = 0  # and how many they are
        self._entries: deque[tuple[float, float]] = deque(maxlen=KEEP)  # (gap, weight)
        self.interval = 0.0  # seconds; 0 until a gap is known

    def observe(self, now: float) -> float:
        """Record an arrival at ``now`` (seconds); return the usual interval after it."""
        last, self._last = self._last, now
        if last is None:
            return self.interval
        gap = max(now - last, 0.0)  # a clock stepped back counts as no gap
        if gap < SHORT_S:
            self._pooled += gap
            self._pooled_n += 1
            if self._pooled < POOL_S:
                return self.interval
            self._flush_pool()
        else:
            self._flush_pool()
            self._entries.append((gap, gap))
        self.interval = weighted_median(self._entries)
        return self.interval

    def _flush_pool(self) -> None:
        if self._pooled_n:
            self._entries.append((self._pooled / self._pooled_n, self._pooled))
            self._pooled = 0.0
            self._pooled_n = 0


def weighted_median(entries: deque[tuple[float, float]]) -> float:
    """The smallest value whose entries, with every smaller one, hold half the total weight."""
    ordered = sorted(entries)
    half = sum(weight for _, weight in ordered) / 2
    if half <= 0:
        return 0.0
    held = 0.0
    for value, weight in ordered:
        held += weight
        if held >= half:
            return value
    return ordered[-1][0]  # rounding: the weights' running sum fell just short of half
