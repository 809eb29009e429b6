"""How unusual a sensor's window is against the sensor's *own* long past. Pure.

Why not a fixed z-score cut: real sensors are heavy-tailed and bursty. A CPU that spikes to
100 % every afternoon, or a tweet count with routine bursts, puts many windows beyond any cut a
Gaussian would suggest, and a detector that pages on each of them gets muted. What a person wants
to hear about is what the sensor has *not* done before.

``Envelope``: the running peak of a non-negative feature, decaying with a half-life of
``half_life`` windows. A window is novel when the feature exceeds ``margin`` times the peak so
far (``cut``) and an absolute ``floor``: a routine burst matches earlier bursts and stays quiet, a
larger one than any recent pages, and after a quiet stretch the peak decays, so the detector
becomes sensitive again. The peak only starts to learn after ``start`` windows, when the running
level and spread that the features are measured against have settled.

Margin and decay apply to *distances*. Beyond ``Z_KNEE`` a feature is the logarithm of its
distance (``features.soften``); a peak there is remembered as that softened value (up to
``PEAK_MOST``, below), but ``cut`` is ``margin`` times the distance it stands for and ``fade``
decays that distance, both softened back. So the same spike again, while its peak is remembered,
is routine at any size (beyond the knee the cut is the peak plus ``Z_KNEE * ln(margin)``), and
one ``margin`` times larger is news at any size. A margin on the softened value would be a far
larger margin on the distance, and decaying the softened value would forget a big spike much
faster than a small one; a peak capped near the knee (as it once was) made every distance beyond
``margin`` times the cap novel, however often the same spike came.

A spike that recurs keeps its size in memory: each envelope also keeps the ``top``, the
largest value it ever learned, and a window that would be routine against that top (within
``margin`` of it: the same spike again) brings the peak back up to it. Without this a sensor
with a daily spike of varying size (a cron job's CPU) paged whenever one day's spike beat the
previous days' by more than the margin less a day's decay (about 12 % at a half-life of ten
days), although it had done as much every day; its spikes now meet the largest of them, as
routine as they are. A spike that does not recur still fades: lesser windows do not renew it.

A peak remembers at most ``ABSURD_Z`` spreads (``PEAK_MOST``, softened): beyond that a window is
garbage or a change of level (``dataflow.model.scoring``), or a sensor that never varied before
measured against rounding, never a spike size that later windows should be compared with. One
such window learned in full would leave a peak of millions of spreads that hid every later spike
for many half-lives.

``Drift``: Page's two-sided CUSUM of a z-score beyond a slack, for a departure that is moderate
in every window but lasts. Each window's z is clipped (``clip``) so that one spike cannot cross
the limit alone: spikes are the envelopes' job, and a routine spike must not page here.

>>> e = Envelope(half_life=1000.0, margin=1.2, floor=3.0, start=0)
>>> [e.observe(x) for x in [5.0, 5.0, 5.5, 5.8, 8.0, 4.0]]
[True, False, False, False, True, False]
"""

from __future__ import annotations

import math

from dataflow.model.features import ABSURD_Z, Z_KNEE, harden, soften

PEAK_MOST = soften(ABSURD_Z)  # the most a peak remembers (see the module docstring)


def cut(margin: float, peak: float) -> float:
    """What a feature must exceed to beat ``peak``: ``margin`` times the *distance* the peak
    stands for, softened as the feature is (``margin * peak`` up to the knee, ``peak`` plus
    ``Z_KNEE * ln(margin)`` beyond it). The one place this rule lives: the envelopes decide
    with it and the scorer's explanation (``SensorScorer._why``) recomputes it."""
    c = margin * peak
    if c <= Z_KNEE and peak <= Z_KNEE:
        return c
    return soften(margin * harden(peak))


def fade(peak: float, decay: float) -> float:
    """``peak`` one window later: the *distance* it stands for times ``decay``, softened again
    (``peak * decay`` up to the knee; beyond it ``Z_KNEE * ln(decay)`` less each window, so even
    a peak at ``Z_CAP``, an infinite distance, fades)."""
    if peak <= Z_KNEE:
        return peak * decay
    faded = peak + Z_KNEE * math.log(decay)
    return faded if faded >= Z_KNEE else Z_KNEE * math.exp(faded / Z_KNEE - 1.0)


class Envelope:
    """Novelty of one feature against its decaying running peak."""

    __slots__ = ("decay", "floor", "margin", "peak", "seen", "start", "top")

    def __init__(self, half_life: float, margin: float, floor: float, start: int) -> None:
        self.decay = 0.5 ** (1.0 / half_life)
        self.margin = margin
        self.floor = floor
        self.start = start
        self.peak = 0.0
        self.top = 0.0  # the largest value learned, never decayed (see the module docstring)
        self.seen = 0

    def novel(self, x: float) -> bool:
        """Is ``x`` novel against the peak so far? Without learning it."""
        return x > self.floor and x > cut(self.margin, self.peak)

    def observe(self, x: float) -> bool:
        """Is ``x`` novel against the peak so far? Then learn it: a new top, or the top again
        (routine against it: the peak is renewed to it), or the decayed peak."""
        peak = self.peak
        margin = self.margin
        novel = x > self.floor and x > cut(margin, peak)
        if self.seen >= self.start:
            decayed = fade(peak, self.decay)
            if x > PEAK_MOST:
                x = PEAK_MOST
            top = self.top
            if x > top:
                self.top = self.peak = x
            elif cut(margin, x) >= top:
                self.peak = top
            else:
                self.peak = x if x > decayed else decayed
        self.seen += 1
        return novel


class Drift:
    """Two-sided CUSUM of a clipped z-score; each sum kept in ``[0, 2 * limit]``."""

    __slots__ = ("clip", "down", "limit", "slack", "up")

    def __init__(self, slack: float, limit: float, clip: float) -> None:
        self.slack = slack
        self.limit = limit
        self.clip = clip
        self.up = 0.0
        self.down = 0.0

    def observe(self, z: float) -> bool:
        """Add a window's z-score; True while either sum is above the limit (never if 0)."""
        limit = self.limit
        if limit <= 0:
            return False
        c = self.clip
        z = c if z > c else (-c if z < -c else z)
        up = self.up + z - self.slack
        down = self.down - z - self.slack
        cap = 2 * limit
        self.up = 0.0 if up < 0.0 else (cap if up > cap else up)
        self.down = 0.0 if down < 0.0 else (cap if down > cap else down)
        return self.up > limit or self.down > limit
