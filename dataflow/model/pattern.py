"""A change of *pattern*: how far the sensor's latest few windows are from any recent stretch. Pure.

The envelopes judge one window at a time by its size, so a sensor that keeps every window within
its usual range but changes its *shape* (a cycle that stops, a regular stair that starts to
flicker) tells them nothing new. This detector looks at the last ``K`` windows' signed level
z-scores together (a *subsequence*; each z-score clipped to ``CLIP`` spreads, since sizes are
the envelopes' job) and measures the root-mean-square distance, in spreads, to its nearest
neighbour among the subsequences that ended ``K`` to ``K + LAGS - 1`` windows earlier: the
sensor's recent past, not overlapping the latest subsequence, as KNN CAD compares a subsequence
with its recent ones. A shape the sensor showed within the last ``LAGS`` windows is near one of
them; a new one is far from all. The scorer puts the distance through the same ``Envelope``
novelty test as the features (beyond ``margin`` times its decaying peak and a floor), so a
sensor whose shapes are always irregular learns that large distances are routine for it.

It is off by default (``ML_PATTERN``): on NAB's development files it found no window the
envelopes missed and added false alarms (``bench/RESULTS.md``).

Cost: each window updates all ``LAGS`` distances at once from the one pair of values that entered
and the one that left each pair of subsequences (``D_j(t) = D_j(t-1) + (x_t - x_{t-j})^2 -
(x_{t-K} - x_{t-K-j})^2``): a handful of numpy operations on ``LAGS`` numbers, whatever ``K``
is. Every ``REFRESH`` windows the sums are recomputed from the history, so rounding cannot build
up. State: two fixed-size float32 arrays (the last ``LAGS + 2 K`` z-scores, the ``LAGS`` sums),
allocated only for a sensor whose family has the detector on.

>>> import math
>>> m = Memory()
>>> [round(m.observe(math.sin(2 * math.pi * i / 12)), 3) for i in range(400)][-1]  # seen
0.0
>>> round(m.observe(3.0), 2)  # off the cycle: the last of 6 is 2.13 spreads from its 0.87
0.87
"""

from __future__ import annotations

import numpy as np

K = 6  # windows in a subsequence
LAGS = 96  # earlier subsequences compared with the latest (lags K .. K + LAGS - 1)
CLIP = 3.0  # spreads: a z-score beyond this enters a subsequence as this
REFRESH = 4096  # windows between exact recomputations of the distance sums


class Memory:
    """One sensor's recent z-scores, and the squared distances of its latest subsequence to each
    earlier one. Fixed size: ``LAGS + 2 K`` z-scores and ``LAGS`` sums."""

    __slots__ = ("dist", "hist", "seen")

    def __init__(self) -> None:
        self.hist = np.zeros(LAGS + 2 * K, dtype=np.float32)  # oldest first, the latest last
        self.dist = np.zeros(LAGS, dtype=np.float32)  # dist[i]: at lag K + LAGS - 1 - i
        self.seen = 0

    def observe(self, z: float) -> float:
        """Take the next window's signed level z-score; return the latest subsequence's RMS
        distance, in spreads, to its nearest earlier one (0 until the history is full)."""
        z = CLIP if z > CLIP else (-CLIP if z < -CLIP else z)
        h = self.hist
        n = LAGS + 2 * K
        leaving = h[n - K]  # x_{t-K} once z is in
        h[:-1] = h[1:]
        h[-1] = z
        # Lags j = K + LAGS - 1 .. K: in comes (x_t - x_{t-j})^2, out goes (x_{t-K} - x_{t-K-j})^2.
        d = self.dist
        d += np.square(z - h[K : n - K]) - np.square(leaving - h[: n - 2 * K])
        self.seen = seen = self.seen + 1
        if seen % REFRESH == 0:
            self._refresh()
            d = self.dist
        if seen < n:
            return 0.0
        best = float(d.min())
        return (best / K) ** 0.5 if best > 0.0 else 0.0

    def _refresh(self) -> None:
        """The distance sums computed afresh from the history (the same numbers, unrounded)."""
        h = self.hist
        n = LAGS + 2 * K
        # windows[i]: the subsequence at lag j = K + LAGS - 1 - i (x_{t-j-K+1} .. x_{t-j}).
        windows = np.lib.stride_tricks.sliding_window_view(h[1 : n - K], K)
        self.dist = np.square(windows - h[n - K :]).sum(axis=1, dtype=np.float32)
