"""Column-wise scoring: every per-sensor number of ``SensorScorer`` in numpy arrays by slot.

Why (issue 28): at a fleet's scale every reading closes a window, and scoring closed windows
one at a time in Python, each with its own tree of per-sensor objects, is most of the time and
most of the memory. ``ColumnScorer`` keeps one family's sensors in arrays indexed by a sensor
slot and scores all the windows a batch closes in vectorised passes: the first window of each
slot in the batch, then the second, and so on, so one sensor's windows still go in order.

The decisions are those of ``dataflow.model.scoring.SensorScorer`` bit for bit (the tests
compare them on random streams): the same IEEE operations in the same order, float64 for every
number a decision reads (a float32 would move a comparison), narrow integers for the counts.
``soften`` beyond the knee goes through ``math`` on the few rows that need it, so its logarithm
is Python's. Evidence is built only for ML rows, in a Python loop: they are rare.

A pass costs a few hundred numpy calls whatever its size, so a sensor's long run in one batch
(a backlog read back) would cost far more per window than the per-window scorer. Once a pass
would hold fewer rows than ``SCALAR_PER_PASS`` times the passes left (taking a slot through the
per-window scorer and back costs about half a pass), the remaining rows go through a
``SensorScorer`` built from the slot's state (``to_scorer``), put back after (``_load``), exactly.

Only the default detectors are supported (``hst_novelty`` and ``pattern`` off): with them on the
constructor refuses, and callers keep the per-window scorer. Seasonal baselines live in pools
of rows, one pool per period, handed to a sensor when the reference's ``Seasonality`` would
have them: the daily one at its first learned window, the weekly one a day later (seeded from
the daily one, ``dataflow.model.seasonality``). A forgotten sensor's slot and rows are reset and
reused.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dataflow.model.explain import BURST, DRIFT, LEVEL, STEP, Evidence
from dataflow.model.features import (
    ABSURD_Z,
    REL_EPS,
    SPREAD_KNEE,
    Z_CAP,
    Z_KNEE,
    soften,
    tamed,
)
from dataflow.model.novelty import PEAK_MOST, cut, fade
from dataflow.model.scoring import (
    ABSURD_RUN,
    BURST_WINDOWS,
    HOME_SPREADS,
    STRUCTURAL,
    ModelParams,
    SensorScorer,
    forest,
)
from dataflow.model.seasonality import DAY_NS, Baseline, Period, Seasonality, lined_up

# A pass of fewer rows than this times the passes left goes, with the rest of the batch, through
# the per-window scorer (``ColumnScorer._one_by_one``): 0 never, a huge value always.
SCALAR_PER_PASS = 2.0
# A converted scorer's reference masses: its trees score from the interval scores it was given.
_TOTALS_KEPT: list[int] = [0]

F8 = NDArray[np.float64]
I8 = NDArray[np.int64]
B1 = NDArray[np.bool_]

# Per-sensor columns: name -> (dtype, trailing shape, value of a fresh sensor). The HST leaf
# counts' dtype and width depend on the forest and are added in __init__.
_SENSOR: dict[str, tuple[str, tuple[int, ...], float]] = {
    "seen": ("i8", (), 0),
    "absurd": ("i4", (), 0),
    "scatter": ("f8", (), 0.0),
    # The raw means' Track (its seen is ``seen``: both count the windows learned).
    "level": ("f8", (), 0.0),
    "spread": ("f8", (), 0.0),
    "last": ("f8", (), 0.0),
    # The residual's Track.
    "r_level": ("f8", (), 0.0),
    "r_spread": ("f8", (), 0.0),
    "r_last": ("f8", (), 0.0),
    "r_seen": ("i8", (), 0),
    # StepScale.
    "c_scale": ("f8", (), 0.0),
    "c_seen": ("i8", (), 0),
    # The last BURST_WINDOWS level distances, oldest first, and how many there are.
    "burst": ("f8", (BURST_WINDOWS,), 0.0),
    "burst_n": ("i1", (), 0),
    # The level, step and burst envelopes' peaks (their seen is ``seen`` too).
    "peak": ("f8", (3,), 0.0),
    "up": ("f8", (), 0.0),
    "down": ("f8", (), 0.0),
    "hst_counter": ("i4", (), 0),
    "hst_ready": ("?", (), 0),  # a reference window exists (CompactHST.r_mass non-empty)
    "pool0": ("i4", (), -1),  # the daily baseline's pool row, -1 while none
    "pool1": ("i4", (), -1),  # the weekly one's
    # The envelopes' tops (``Envelope.top``), late: a v11 snapshot's matrices lack them.
    "top": ("f8", (3,), 0.0),
    # The peaks before the current drift episode (``SensorScorer.calm``), nan for None; last:
    # a v12 snapshot's matrices lack them.
    "calm": ("f8", (3,), math.nan),
}


class Batch(NamedTuple):
    """``score_batch``'s outcome, row for row of its input."""

    score: F8
    ml: B1
    ready: B1
    cut: F8  # always nan (None): without ``hst_novelty`` no score has a cut
    why: dict[int, Evidence]  # input row -> Evidence, for the ML rows only
    # ``SensorScorer.home`` right after the row's window was scored and learned: an alert's
    # tracker reads it per window, and a later row of the same slot has moved it on.
    level: F8
    reach: F8


def counts_dtype(shape: Period) -> str:
    """The numpy type of a period's slot counts: that of its ``array`` (``seasonality.period``)."""
    return "u2" if shape.zero_counts.typecode == "H" else "u4"


def counts_array(shape: Period, counts: NDArray[Any]) -> array[int]:
    """A row of slot counts as the per-window baseline keeps them."""
    tc = shape.zero_counts.typecode
    return array(tc, counts.astype(counts_dtype(shape)).tobytes())


class Pool:
    """Rows of one period's baselines (slot means and counts, the two quality sums, and for the
    daily one the first learned time), handed out and taken back whole; grows by doubling."""

    def __init__(self, shape: Period, first: bool, capacity: int) -> None:
        slots = len(shape.zero_means)
        self.spec: dict[str, tuple[str, tuple[int, ...], float]] = {
            "eres": ("f8", (), 0.0),
            "eraw": ("f8", (), 0.0),
            "means": ("f8", (slots,), 0.0),
            "counts": (counts_dtype(shape), (slots,), 0),
        }
        if first:
            self.spec["first"] = ("i8", (), -1)
        self.capacity = 0
        self.a: dict[str, NDArray[Any]] = {}
        self.free: list[int] = []
        self.next = 0
        self.grow(capacity)

    def grow(self, cap: int) -> None:
        for name, (dtype, shape, fill) in self.spec.items():
            new = np.full((cap, *shape), fill, dtype=dtype)
            if self.capacity:
                new[: self.capacity] = self.a[name]
            self.a[name] = new
        self.capacity = cap

    def take(self, n: int) -> I8:
        """``n`` fresh rows: released ones first."""
        out = [self.free.pop() for _ in range(min(n, len(self.free)))]
        need = self.next + n - len(out)
        if need > self.next:
            if need > self.capacity:
                # By a quarter, not double: a weekly row is most of a sensor's state.
                self.grow(max(need, self.capacity + self.capacity // 4 + 1))
            out.extend(range(self.next, need))
            self.next = need
        return np.asarray(out, dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        """Only the rows ever handed out: a snapshot carries no spare capacity."""
        state = dict(self.__dict__)
        state["a"] = {name: arr[: self.next] for name, arr in self.a.items()}
        state["capacity"] = self.next
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.capacity == 0:
            self.capacity, self.a = 0, {}
            self.grow(1)

    def release(self, row: int) -> None:
        for name, (_, _, fill) in self.spec.items():
            self.a[name][row] = fill
        self.free.append(row)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.a.values())


def envelope(
    peak: F8,
    top: F8,
    seen: I8,
    x: F8,
    margin: float,
    floor: float,
    decay: float,
    start: int,
) -> tuple[B1, F8, F8]:
    """``Envelope.observe`` over rows: (novel, the new peak, the new top). Kept in one place so
    that a change of the envelope's rule ports here in one edit."""
    novel = envelope_novel(peak, x, margin, floor)
    decayed = peak * decay
    beyond = np.flatnonzero(peak > Z_KNEE)  # few: ``fade`` with ``math`` there, as the reference
    for j in beyond.tolist():
        decayed[j] = fade(float(peak[j]), decay)
    clipped = np.where(x > PEAK_MOST, PEAK_MOST, x)
    learned = np.where(clipped > decayed, clipped, decayed)
    # The top again (routine against it: ``cut`` of the window reaches it) renews the peak.
    again = _cuts(clipped, margin) >= top
    learned = np.where(clipped > top, clipped, np.where(again, top, learned))
    new_top = np.where(clipped > top, clipped, top)
    on = seen >= start
    return novel, np.where(on, learned, peak), np.where(on, new_top, top)


def _cuts(peak: F8, margin: float) -> F8:
    """``novelty.cut`` over rows: ``margin * peak`` up to the knee, ``math`` on the few beyond.

    Except at a fleet's start: a new sensor's first windows are absurdly far from a level with
    no spread yet, so most rows beyond the knee hold ``PEAK_MOST``, whose cut is computed once.
    """
    c = margin * peak
    beyond = np.flatnonzero((c > Z_KNEE) | (peak > Z_KNEE))
    if len(beyond) > 1:
        most = peak[beyond] == PEAK_MOST
        if most.any():
            c[beyond[most]] = cut(margin, PEAK_MOST)
            beyond = beyond[~most]
    for j in beyond.tolist():
        c[j] = cut(margin, float(peak[j]))
    return c


def envelope_novel(peak: F8, x: F8, margin: float, floor: float) -> B1:
    """``Envelope.novel`` over rows: ``novelty.cut`` is ``margin * peak`` up to the knee, and
    computed with ``math`` on the few rows beyond it."""
    return (x > floor) & (x > _cuts(peak, margin))


def _tamed(dev: F8, scale: F8, knee: float = SPREAD_KNEE) -> F8:
    """``features.tamed`` over rows (non-negative ``dev``): with ``math`` on the few beyond
    ``knee`` spreads."""
    unit = 1.25 * scale
    beyond = np.flatnonzero((unit > 0) & (dev > knee * unit))
    if not len(beyond):
        return dev
    dev = dev.copy()
    for j in beyond.tolist():
        dev[j] = tamed(float(dev[j]), float(scale[j]), knee)
    return dev


def _soften_signed(z: F8, rows: I8) -> None:
    """``soften`` of the rows beyond the knee, in place, with ``math`` (Python's log)."""
    for j in rows.tolist():
        v = float(z[j])
        z[j] = soften(v) if v > 0 else -soften(-v)


def _scale(level: F8, spread: F8, floor: F8 | float) -> F8:
    """``Track.scale(floor)`` over rows: the spread, never below ``floor`` nor ``REL_EPS`` of
    the level (the one place the columns compute it)."""
    s = np.where(floor > spread, floor, spread)
    res = REL_EPS * np.abs(level)
    return np.where(res > s, res, s)


def _track_z(x: F8, level: F8, spread: F8, seen: I8, floor: F8) -> tuple[F8, F8]:
    """``Track.z(x, floor)`` over rows, and ``Track.scale(floor)`` (the evidence's spread)."""
    dev = x - level
    s = _scale(level, spread, floor)
    pos = s > 0
    q = np.divide(dev, 1.25 * s, out=np.zeros_like(dev), where=pos)
    inside = (q >= -Z_KNEE) & (q <= Z_KNEE)
    _soften_signed(q, np.flatnonzero(pos & ~inside))
    still = np.where((seen == 0) | (dev == 0), 0.0, np.where(dev > 0, Z_CAP, -Z_CAP))
    return np.where(pos, q, still), s


def _step_z(step: F8, scale: F8, floor: F8) -> F8:
    """``StepScale.z(step, floor)`` over rows."""
    a = np.abs(step)
    s = np.where(scale > floor, scale, floor)
    pos = s > 0
    q = np.divide(a, 1.25 * s, out=np.zeros_like(a), where=pos)
    beyond = np.flatnonzero(pos & ~(q <= Z_KNEE))
    for j in beyond.tolist():
        q[j] = soften(float(q[j]))
    return np.where(pos, q, np.where(a == 0, 0.0, Z_CAP))


def _learn_track(level: F8, spread: F8, seen: I8, x: F8, level_windows: int) -> tuple[F8, F8]:
    """``Track.learn`` over rows: the new level and spread (last is x, seen one more)."""
    warm = 1.0 / (seen + 1)
    a = 1.0 / level_windows
    b = 0.5 / level_windows
    d = x - level
    d = np.where(d >= 0, _tamed(np.abs(d), spread, Z_KNEE), -_tamed(np.abs(d), spread, Z_KNEE))
    moved = level + np.where(warm > a, warm, a) * d
    spread2 = spread + np.where(warm > b, warm, b) * (_tamed(np.abs(x - moved), spread) - spread)
    first = seen == 0
    return np.where(first, x, moved), np.where(first, spread, spread2)


class ColumnScorer:
    """One family's sensors, column-wise; ``score_batch`` scores many sensors' windows at once."""

    def __init__(self, params: ModelParams, capacity: int = 1024) -> None:
        if params.hst_novelty or params.pattern:
            raise ValueError("ColumnScorer supports hst_novelty=False and pattern=False only")
        self.params = params
        self.scalar_per_pass = SCALAR_PER_PASS
        self.capacity = max(1, capacity)
        self._setup()
        cap = self.capacity
        self.mats: dict[str, NDArray[Any]] = {}
        self.cols: dict[str, NDArray[Any]] = {}
        self._allocate(cap, {})
        self.live = np.zeros(cap, dtype=bool)
        self.free_slots: list[int] = []
        self.next_slot = 0
        rows = 16 if params.seasonality else 1  # grown as sensors need them
        self.pools = [Pool(per, k == 0, rows) for k, per in enumerate(self._periods)]

    # -- derived tables (not pickled: rebuilt from the params) --------------------------------

    def _setup(self) -> None:
        p = self.params
        f = forest(p)
        if not f.points:
            raise ValueError("ColumnScorer needs a one-feature forest")
        self._points = np.asarray(f.points, dtype=np.float64)
        self._leaves = np.asarray(f.interval_leaves, dtype=np.int64)  # interval -> tree leaves
        width = 1 << f.height
        n_int = len(f.probes)
        # Per interval, tree and depth: the leaf range under the node its probe passes.
        lo = np.zeros((n_int, f.n_trees, f.height + 1), dtype=np.int64)
        hi = np.zeros_like(lo)
        for i, probe in enumerate(f.probes):
            for t in range(f.n_trees):
                node = 0
                for d in range(f.height + 1):
                    j = node - ((1 << d) - 1)
                    span = 1 << (f.height - d)
                    lo[i, t, d] = t * width + j * span
                    hi[i, t, d] = t * width + (j + 1) * span
                    if d < f.height:
                        k = t * f.nodes + node
                        node = 2 * node + 1 if probe < f.split_at[k] else 2 * node + 2
        self._lo, self._hi = lo, hi
        self._n_trees, self._height = f.n_trees, f.height
        self._size_limit = 0.1 * f.window_size
        self._max_score = f.max_score
        self._window_size = f.window_size
        n_leaves = f.n_trees << f.height
        count = "u2" if f.window_size < 1 << 16 else "u4"
        self._spec = dict(_SENSOR)
        self._spec["hst_counts"] = (count, (n_leaves,), 0)
        # Per interval of the reference window, the trees' total (an integer below max_score).
        total = "u2" if f.max_score < 1 << 16 else "u4"
        self._spec["hst_total"] = (total, (n_int,), 0)
        self._ready_at = p.window_size + p.warmup
        self._decay = 0.5 ** (1.0 / p.novelty_half_life)
        proto = Seasonality(p.window_ns, p.season_ratio)
        self._periods = [proto.baselines[0].period]
        self._periods.append(proto.weekly or proto.baselines[1].period)
        self._quality_rate = proto.quality_rate
        self._ratio = proto.ratio
        self._weekly_later = lined_up(*self._periods)

    def __getstate__(self) -> dict[str, Any]:
        """The arrays up to the last slot ever handed out (no spare capacity), the free lists
        and the params; the forest's tables are rebuilt from the params."""
        n = max(1, self.next_slot)
        keep = ("params", "free_slots", "next_slot", "pools", "scalar_per_pass")
        state = {k: getattr(self, k) for k in keep}
        state["mats"] = {dtype: m[:n] for dtype, m in self.mats.items()}
        state["live"] = self.live[:n]
        state["capacity"] = n
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        mats = state.pop("mats")
        self.__dict__.update(state)
        self._setup()
        self._allocate(self.capacity, mats)

    def _allocate(self, cap: int, old: dict[str, NDArray[Any]]) -> None:
        """One matrix per dtype, a row per slot, holding ``old``'s rows; per name a view of its
        columns. A sensor's numbers of one type share a few cache lines, so a batch's gathers
        over a large fleet touch a few lines per row rather than one per number."""
        widths: dict[str, int] = {}
        for dtype, shape, _ in self._spec.values():
            widths[dtype] = widths.get(dtype, 0) + math.prod(shape)
        mats = {dtype: np.zeros((cap, w), dtype=dtype) for dtype, w in widths.items()}
        cols: dict[str, NDArray[Any]] = {}
        at = dict.fromkeys(widths, 0)
        for name, (dtype, shape, fill) in self._spec.items():
            o, w = at[dtype], math.prod(shape)
            at[dtype] = o + w
            view = mats[dtype][:, o] if shape == () else mats[dtype][:, o : o + w]
            view[...] = fill
            cols[name] = view
        for dtype, m in old.items():
            mats[dtype][: len(m), : m.shape[1]] = m  # a v11 snapshot's f8 lacks the tops
        self.mats, self.cols = mats, cols

    # -- slots ----------------------------------------------------------------------------------

    def _grow(self, cap: int) -> None:
        self._allocate(cap, self.mats)
        live = np.zeros(cap, dtype=bool)
        live[: len(self.live)] = self.live
        self.live = live
        self.capacity = cap

    @property
    def in_use(self) -> int:
        """Slots held by sensors."""
        return self.next_slot - len(self.free_slots)

    def alloc(self) -> int:
        """A slot for a new sensor: a forgotten one's if any (already reset), else a new one."""
        if self.free_slots:
            slot = self.free_slots.pop()
        else:
            slot = self.next_slot
            self.next_slot += 1
            if slot >= self.capacity:
                self._grow(2 * self.capacity)
        self.live[slot] = True
        return slot

    def free(self, slot: int) -> None:
        """Forget a sensor: its slot (and seasonal pool rows) are reset for the next one."""
        if not self.live[slot]:
            raise ValueError(f"slot {slot} is not in use")
        for k, pool in enumerate(self.pools):
            row = int(self.cols[f"pool{k}"][slot])
            if row >= 0:
                pool.release(row)
        for name, (_, _, fill) in self._spec.items():
            self.cols[name][slot] = fill
        self.live[slot] = False
        self.free_slots.append(slot)

    def retune(self, params: ModelParams) -> bool:
        """``SensorScorer.retune`` for every slot: take new settings where they can apply to
        what was learned (False, and the old ones kept, where a ``STRUCTURAL`` one differs)."""
        if any(getattr(params, name) != getattr(self.params, name) for name in STRUCTURAL):
            return False
        self.params = params
        self._setup()  # the derived tables: the warm-up's end, the peaks' decay
        return True

    def _homes(self, s: I8) -> tuple[F8, F8]:
        """``home`` over rows of slots."""
        c = self.cols
        level, spread, scatter = c["level"][s], c["spread"][s], c["scatter"][s]
        res = REL_EPS * np.abs(level)
        sc = _scale(level, spread, np.where(scatter > res, scatter, res))
        return level, np.where(spread > 0, HOME_SPREADS * 1.25 * sc, 0.0)

    def home(self, slot: int) -> tuple[float, float]:
        """``SensorScorer.home`` of the sensor in ``slot``."""
        c = self.cols
        level, spread = float(c["level"][slot]), float(c["spread"][slot])
        floor = REL_EPS * abs(level)
        scatter = float(c["scatter"][slot])
        if scatter > floor:
            floor = scatter
        s = spread
        if floor > s:
            s = floor
        r = REL_EPS * abs(level)
        s = r if r > s else s
        reach = HOME_SPREADS * 1.25 * s if spread > 0 else 0.0
        return level, reach

    def nbytes(self) -> int:
        """Bytes of every array (sensor columns and the seasonal pools)."""
        return sum(m.nbytes for m in self.mats.values()) + sum(p.nbytes() for p in self.pools)

    # -- scoring --------------------------------------------------------------------------------

    def score_batch(
        self,
        slots: Sequence[int] | I8,
        starts: Sequence[int] | I8,
        means: Sequence[float] | F8,
        scatters: Sequence[float] | F8 | None = None,
    ) -> Batch:
        """Score then learn each row's window, as ``SensorScorer.score_learn`` would one by one
        in input order. Rows of one slot are taken in input order."""
        sl = np.asarray(slots, dtype=np.int64)
        st = np.asarray(starts, dtype=np.int64)
        mn = np.asarray(means, dtype=np.float64)
        sc = np.zeros(len(sl)) if scatters is None else np.asarray(scatters, dtype=np.float64)
        n = len(sl)
        if not (len(st) == len(mn) == len(sc) == n):
            raise ValueError("slots, starts, means and scatters differ in length")
        out = Batch(
            np.zeros(n),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            np.full(n, np.nan),
            {},
            np.zeros(n),
            np.zeros(n),
        )
        if n == 0:
            return out
        if sl.min() < 0 or sl.max() >= self.capacity or not self.live[sl].all():
            raise ValueError("a slot that is not in use")
        # Each row's rank among its slot's rows: pass k takes the rows of rank k.
        order = np.argsort(sl, kind="stable")
        ss = sl[order]
        head = np.ones(n, dtype=bool)
        head[1:] = ss[1:] != ss[:-1]
        starts_at = np.flatnonzero(head)
        group = np.cumsum(head) - 1
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - starts_at[group]
        by_rank = np.lexsort((np.arange(n), rank))
        edges = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
        # Python's floats turn inf - inf into nan without a word; so does a pass (one errstate
        # per batch: entering one costs more than a small pass's arithmetic).
        with np.errstate(all="ignore"):
            for k in range(len(edges) - 1):
                if edges[k + 1] - edges[k] < self.scalar_per_pass * (len(edges) - 1 - k):
                    self._one_by_one(by_rank[edges[k] :], sl, st, mn, sc, out)
                    break
                self._pass(by_rank[edges[k] : edges[k + 1]], sl, st, mn, sc, out)
        return out

    def _hst_totals(self, ref: NDArray[Any]) -> I8:
        """Per row of reference-window leaf counts, ``CompactHST._score``'s integer total for
        every interval's probe (the score is ``1 - total / max_score``): summed exactly, so
        keeping the totals instead of the masses changes no score."""
        cs = np.zeros((len(ref), ref.shape[1] + 1), dtype=np.int64)
        np.cumsum(ref, axis=1, out=cs[:, 1:])
        total = np.zeros((len(ref), self._hi.shape[0]), dtype=np.int64)
        h = self._height
        for t in range(self._n_trees):
            alive = np.ones(total.shape, dtype=bool)
            for d in range(h + 1):
                mass = cs[:, self._hi[:, t, d]] - cs[:, self._lo[:, t, d]]
                total += np.where(alive, mass << d, 0)
                if d < h:
                    alive &= ~(mass < self._size_limit)
        return total

    def _hst_score(self, s: I8, idx: I8) -> F8:
        """``CompactHST.score_one`` over rows (each row's interval ``idx``)."""
        total = self.cols["hst_total"][s, idx].astype(np.float64)
        return np.where(self.cols["hst_ready"][s], 1 - total / self._max_score, 0.0)

    def _hst_learn(self, s: I8, idx: I8) -> None:
        c = self.cols
        counts = c["hst_counts"]
        counts[s[:, None], self._leaves[idx]] += 1
        counter = c["hst_counter"][s] + 1
        pivot = counter == self._window_size
        p = s[pivot]
        if len(p):  # River's pivot: the window just learned becomes the reference
            c["hst_total"][p] = self._hst_totals(counts[p])
            counts[p] = 0
            c["hst_ready"][p] = True
        c["hst_counter"][s] = np.where(pivot, 0, counter)

    def _residual(self, s: I8, t: I8, x: F8) -> tuple[B1, F8]:
        """``Seasonality.residual`` over rows: (has one, the residual)."""
        n = len(s)
        has = np.zeros(n, dtype=bool)
        best = np.zeros(n)
        if not self.params.seasonality:
            return has, best
        c = self.cols
        daily = c["pool0"][s].astype(np.int64)
        first = self.pools[0].a["first"][np.where(daily >= 0, daily, 0)]
        best_err = np.zeros(n)
        for k, (per, pool) in enumerate(zip(self._periods, self.pools, strict=True)):
            row = daily if k == 0 else c[f"pool{k}"][s].astype(np.int64)
            pooled = row >= 0
            row = np.where(pooled, row, 0)
            a = pool.a
            eres, eraw = a["eres"][row], a["eraw"][row]
            skip = (eres >= self._ratio * eraw) | (has & (eres >= best_err))
            i = ((t + per.shift_ns) % per.period_ns) // per.slot_ns
            seen = (first >= 0) & ~(t - first < per.period_ns)
            take = pooled & ~skip & seen & (a["counts"][row, i] != 0)
            best = np.where(take, x - a["means"][row, i], best)
            best_err = np.where(take, eres, best_err)
            has |= take
        return has, best

    def _season_learn(self, s: I8, t: I8, x: F8, level: F8) -> None:
        """``Seasonality.learn`` over rows: a daily row for a sensor's first window, a weekly one
        seeded from it a day on (both at once where the slots do not line up), then learn."""
        c = self.cols
        daily, weekly = self.pools[0], self.pools[1]
        row0 = c["pool0"][s].astype(np.int64)
        new = np.flatnonzero(row0 < 0)
        if len(new):
            row0[new] = daily.take(len(new))
            c["pool0"][s[new]] = row0[new]
            if not self._weekly_later:
                c["pool1"][s[new]] = weekly.take(len(new))
        first = daily.a["first"][row0]
        row1 = c["pool1"][s].astype(np.int64)
        if self._weekly_later:
            d = self._periods[0]
            due = first - (first + d.shift_ns) % d.slot_ns + DAY_NS
            grow = np.flatnonzero((row1 < 0) & (first >= 0) & (t >= due))
            if len(grow):
                row1[grow] = self._weekly_from_daily(row0[grow], due[grow] - DAY_NS)
                c["pool1"][s[grow]] = row1[grow]
        first = np.where(first < 0, t, first)
        daily.a["first"][row0] = first
        qr = self._quality_rate
        for k, (per, pool) in enumerate(zip(self._periods, self.pools, strict=True)):
            if k == 0:
                row, tk, xk, lk, fk = row0, t, x, level, first
            else:
                on = row1 >= 0
                row, tk, xk, lk, fk = row1[on], t[on], x[on], level[on], first[on]
            a = pool.a
            i = ((tk + per.shift_ns) % per.period_ns) // per.slot_ns
            m = a["means"][row, i]
            n = a["counts"][row, i].astype(np.int64)
            q = (n != 0) & (tk - fk >= per.period_ns)
            eres, eraw = a["eres"][row], a["eraw"][row]
            a["eres"][row] = np.where(q, eres + qr * (np.abs(xk - m) - eres), eres)
            a["eraw"][row] = np.where(q, eraw + qr * (np.abs(xk - lk) - eraw), eraw)
            n = n + 1
            a["counts"][row, i] = np.minimum(n, per.cap)
            warm = 1.0 / n
            rate = per.rate
            a["means"][row, i] = m + np.where(warm > rate, warm, rate) * (xk - m)

    def _weekly_from_daily(self, row0: I8, start: I8) -> I8:
        """``seasonality.weekly_from`` over rows: new weekly rows holding each daily slot's mean
        and count in the weekly slot of the same time of the day from ``start``."""
        d, w = self._periods
        row1 = self.pools[1].take(len(row0))
        tt = start[:, None] + np.arange(DAY_NS // d.slot_ns, dtype=np.int64) * d.slot_ns
        i = ((tt + d.shift_ns) % d.period_ns) // d.slot_ns
        k = ((tt + w.shift_ns) % w.period_ns) // w.slot_ns
        src, dst = self.pools[0].a, self.pools[1].a
        dst["means"][row1[:, None], k] = src["means"][row0[:, None], i]
        dst["counts"][row1[:, None], k] = np.minimum(src["counts"][row0[:, None], i], w.cap)
        return row1

    def _pass(self, rows: I8, sl: I8, st: I8, mn: F8, sc: F8, out: Batch) -> None:
        """One vectorised pass over rows of distinct slots."""
        p = self.params
        c = self.cols
        s = sl[rows]
        every, every_s = rows, s  # the rows not learned too: their home is read at the end
        seen = c["seen"][s]
        ready = seen >= self._ready_at
        out.ready[rows] = ready
        x = mn[rows]
        finite = np.isfinite(x)  # the reference's mean - mean == 0: inf or nan is not learned
        if not finite.all():
            rows, s, seen, ready, x = (
                rows[finite],
                s[finite],
                seen[finite],
                ready[finite],
                x[finite],
            )
        t, scat_in = st[rows], sc[rows]
        idx = np.searchsorted(self._points, x, side="right")
        score = self._hst_score(s, idx)
        out.score[rows] = score
        has_r, r = self._residual(s, t, x)
        r_seen = c["r_seen"][s]
        use = has_r & (r_seen >= p.novelty_start)
        value = np.where(use, r, x)
        level, spread = c["level"][s], c["spread"][s]
        t_level = np.where(use, c["r_level"][s], level)
        t_spread = np.where(use, c["r_spread"][s], spread)
        t_last = np.where(use, c["r_last"][s], c["last"][s])
        t_seen = np.where(use, r_seen, seen)
        floor = REL_EPS * np.abs(level)
        scatter = c["scatter"][s]
        floor = np.where(scatter > floor, scatter, floor)
        z, t_scale = _track_z(value, t_level, t_spread, t_seen, floor)
        level_z = np.abs(z)
        has_last = t_seen > 0
        step = np.where(has_last, value - t_last, 0.0)
        c_scale = c["c_scale"][s]
        step_z = _step_z(step, c_scale, floor)
        peaks = c["peak"][s]
        lp, sp, bp = peaks[:, 0], peaks[:, 1], peaks[:, 2]
        raw_scale = _scale(level, spread, 0.0)
        absurd = (spread > 0) & (np.abs(x - level) > ABSURD_Z * 1.25 * raw_scale)
        run = np.where(absurd, c["absurd"][s] + 1, 0)
        c["absurd"][s] = run
        # Absurd windows not yet a run are judged against the peaks and learned by nothing.
        held = absurd & (run < ABSURD_RUN)
        m, f = p.novelty_margin, p.novelty_floor
        up, down = c["up"][s], c["down"][s]
        burst_n = c["burst_n"][s].astype(np.int64)
        if held.any():
            h = np.flatnonzero(held)
            novel = envelope_novel(lp[h], level_z[h], m, f) | envelope_novel(sp[h], step_z[h], m, f)
            for j in h[ready[h] & novel].tolist():
                out.ml[rows[j]] = True
                out.why[int(rows[j])] = self._why(
                    use[j], value[j], x[j], t_level[j], t_scale[j], floor[j], level_z[j],
                    step[j], step_z[j], None, lp[j], sp[j], bp[j], score[j], False,
                    c_scale[j], int(burst_n[j]), up[j], down[j],
                )  # fmt: skip
        lrn = ~held
        # The burst window: append level_z, then its mean, summed oldest first.
        burst = c["burst"][s]
        full = burst_n == BURST_WINDOWS
        burst[full, :-1] = burst[full, 1:]
        burst[np.arange(len(s)), np.where(full, BURST_WINDOWS - 1, burst_n)] = level_z
        burst_n = np.where(full, burst_n, burst_n + 1)
        total = burst[:, 0].copy()
        for j in range(1, BURST_WINDOWS):
            total = np.where(j < burst_n, total + burst[:, j], total)
        rate = total / burst_n
        ls = s[lrn]
        c["burst"][ls] = burst[lrn]
        c["burst_n"][ls] = burst_n[lrn]
        decay, start = self._decay, p.novelty_start
        tops = c["top"][s]
        novel, new_lp, new_lt = envelope(lp, tops[:, 0], seen, level_z, m, f, decay, start)
        n2, new_sp, new_st = envelope(sp, tops[:, 1], seen, step_z, m, f, decay, start)
        n3, new_bp, new_bt = envelope(bp, tops[:, 2], seen, rate, m, f, decay, start)
        novel = novel | n2 | n3
        learned = np.empty_like(peaks)  # not into peaks: lp, sp, bp are its columns
        learned[:, 0], learned[:, 1], learned[:, 2] = new_lp, new_sp, new_bp
        c["peak"][ls] = learned[lrn]
        tops[:, 0], tops[:, 1], tops[:, 2] = new_lt, new_st, new_bt  # a copy: nothing reads it
        c["top"][ls] = tops[lrn]
        limit = p.drift_limit
        drift = np.zeros(len(s), dtype=bool)
        if limit > 0:
            moves = lrn & (t_spread > 0)
            cl = p.drift_clip
            zc = np.where(z > cl, cl, np.where(z < -cl, -cl, z))
            u = up + zc - p.drift_slack
            d = down - zc - p.drift_slack
            cap = 2 * limit
            u = np.where(u < 0.0, 0.0, np.where(u > cap, cap, u))
            d = np.where(d < 0.0, 0.0, np.where(d > cap, cap, d))
            up, down = np.where(moves, u, up), np.where(moves, d, down)
            drift = moves & ((up > limit) | (down > limit))
            c["up"][s], c["down"][s] = up, down
        ml = lrn & ready & (novel | drift)
        # The peaks before a drift episode, kept while its sums are not 0; a change of level
        # accepted where the sums are capped and every burst window beyond the floor.
        before = c["calm"][s]
        quiet = (up == 0.0) & (down == 0.0)
        before[quiet] = math.nan
        begins = ~quiet & np.isnan(before[:, 0])
        before[begins, 0], before[begins, 1], before[begins, 2] = lp[begins], sp[begins], bp[begins]
        c["calm"][s[lrn]] = before[lrn]
        anchor = (
            drift
            & ~use
            & (burst_n == BURST_WINDOWS)
            & (burst.min(axis=1) > f)
            & (np.where(up > down, up, down) >= 2 * limit)
        )
        for j in np.flatnonzero(ml).tolist():
            out.ml[rows[j]] = True
            out.why[int(rows[j])] = self._why(
                use[j], value[j], x[j], t_level[j], t_scale[j], floor[j], level_z[j], step[j],
                step_z[j], rate[j], lp[j], sp[j], bp[j], score[j], bool(drift[j]), c_scale[j],
                int(burst_n[j]), up[j], down[j],
            )  # fmt: skip
        s_all = s
        if held.any():
            k = np.flatnonzero(lrn)
            s, seen, x, t, level, spread, ml, idx = (
                s[k], seen[k], x[k], t[k], level[k], spread[k], ml[k], idx[k]
            )  # fmt: skip
            scat_in, scatter, r, step = scat_in[k], scatter[k], r[k], step[k]
            has_r, has_last = has_r[k], has_last[k]
        self._learn(s, seen, x, t, level, spread, scat_in, scatter, has_r, r, has_last, step)
        if anchor.any():
            a = np.flatnonzero(anchor)
            self._anchor(s_all[a], burst[a].min(axis=1), floor[a], up[a] > down[a], before[a])
        calm = ~ml
        self._hst_learn(s[calm], idx[calm])  # like River's filters: not what they called anomalous
        out.level[every], out.reach[every] = self._homes(every_s)

    def _anchor(self, s: I8, moved: F8, floor: F8, rising: B1, calm: F8) -> None:
        """``SensorScorer._anchor`` over rows of slots, after they learned their windows."""
        c = self.cols
        level = c["level"][s]
        sign = np.where(rising, 1.0, -1.0)
        c["level"][s] = level + sign * moved * 1.25 * _scale(level, c["spread"][s], floor)
        c["up"][s], c["down"][s] = 0.0, 0.0
        c["burst"][s], c["burst_n"][s] = 0.0, 0
        had = ~np.isnan(calm[:, 0])
        c["peak"][s[had]] = calm[had]
        c["calm"][s] = math.nan

    def _learn(
        self,
        s: I8,
        seen: I8,
        x: F8,
        t: I8,
        level: F8,
        spread: F8,
        scat_in: F8,
        scatter: F8,
        has_r: B1,
        r: F8,
        has_last: B1,
        step: F8,
    ) -> None:
        """Learn the rows' windows, as the reference does after scoring: the raw track, the
        scatter, the residual, the step scale, the baselines (all but the trees)."""
        p = self.params
        c = self.cols
        lw = p.level_windows
        new_level, new_spread = _learn_track(level, spread, seen, x, lw)
        c["level"][s], c["spread"][s], c["last"][s] = new_level, new_spread, x
        # As the reference: a scatter that is not a finite non-negative number counts as 0.
        scat_in = np.where((scat_in >= 0.0) & (scat_in < np.inf), scat_in, 0.0)
        moved = (scat_in > 0.0) | (scatter > 0.0)
        w = np.where(seen + 1 < lw, seen + 1, lw)
        c["scatter"][s] = np.where(moved, scatter + (scat_in - scatter) / w, scatter)
        if has_r.any():
            rs, rv = s[has_r], r[has_r]
            rl, rsp = _learn_track(c["r_level"][rs], c["r_spread"][rs], c["r_seen"][rs], rv, lw)
            c["r_level"][rs], c["r_spread"][rs], c["r_last"][rs] = rl, rsp, rv
            c["r_seen"][rs] += 1
        if has_last.any():
            cs, cstep = s[has_last], step[has_last]
            cn = c["c_seen"][cs] + 1
            warm = 1.0 / cn
            a = 1.0 / lw
            cur = c["c_scale"][cs]
            c["c_scale"][cs] = cur + np.where(warm > a, warm, a) * (
                _tamed(np.abs(cstep), cur) - cur
            )
            c["c_seen"][cs] = cn
        if p.seasonality:
            self._season_learn(s, t, x, new_level)
        c["seen"][s] = seen + 1

    def _why(
        self,
        seasonal: bool,
        value: float,
        mean: float,
        level: float,
        scale: float,
        floor: float,
        level_z: float,
        step: float,
        step_z: float,
        rate: float | None,
        level_peak: float,
        step_peak: float,
        burst_peak: float,
        score: float,
        drift: bool,
        change: float,
        burst_windows: int,
        up: float,
        down: float,
    ) -> Evidence:
        """``SensorScorer._why`` from one row's pre-learn numbers (``scale``: the track's spread
        floored; ``change``: the step scale; ``up``/``down``: the drift sums as it sees them)."""
        p = self.params
        m, f = p.novelty_margin, p.novelty_floor
        level_cut = max(f, cut(m, float(level_peak)))
        step_cut = max(f, cut(m, float(step_peak)))
        burst_cut = max(f, cut(m, float(burst_peak)))
        fired = (
            (LEVEL if level_z > level_cut else 0)
            | (STEP if step_z > step_cut else 0)
            | (BURST if rate is not None and rate > burst_cut else 0)
            | (DRIFT if drift else 0)
        )
        mean, value, floor = float(mean), float(value), float(floor)
        change = float(change)
        up, down = float(up), float(down)
        return Evidence(
            fired,
            mean,
            mean - value + float(level),
            bool(seasonal),
            1.25 * float(scale),
            level_cut,
            float(step),
            1.25 * (change if change > floor else floor),
            step_cut,
            0.0 if rate is None else float(rate),
            burst_windows,
            burst_cut,
            float(score),
            0.0,
            up if up >= down else -down,
            p.drift_limit,
            0.0,
            0.0,
        )

    # -- migration ------------------------------------------------------------------------------

    @classmethod
    def from_scorers(cls, scorers: Sequence[SensorScorer]) -> ColumnScorer:
        """Column-wise state of existing per-sensor scorers (an old snapshot), scorer i in slot
        i. They must share one ``ModelParams``."""
        if not scorers:
            raise ValueError("no scorers")
        params = scorers[0].params
        out = cls(params, capacity=len(scorers))
        for sc in scorers:
            if sc.params != params:
                raise ValueError("scorers of different ModelParams")
            out._load(out.alloc(), sc)
        return out

    def _load(self, slot: int, sc: SensorScorer) -> None:
        """Put a per-sensor scorer's state in ``slot`` (its seasonal rows reused or taken)."""
        envs = sc.envelopes
        if any(e.seen != sc.seen for e in envs) or sc.raw.seen != sc.seen:
            raise ValueError("a scorer whose envelopes or level missed windows")
        c = self.cols
        c["seen"][slot], c["absurd"][slot], c["scatter"][slot] = sc.seen, sc.absurd, sc.scatter
        raw, res = sc.raw, sc.residual
        c["level"][slot], c["spread"][slot] = raw.level, raw.spread
        c["last"][slot] = 0.0 if raw.last is None else raw.last
        c["r_level"][slot], c["r_spread"][slot] = res.level, res.spread
        c["r_last"][slot] = 0.0 if res.last is None else res.last
        c["r_seen"][slot] = res.seen
        c["c_scale"][slot], c["c_seen"][slot] = sc.change.scale, sc.change.seen
        c["burst"][slot] = 0.0
        c["burst"][slot, : len(sc.burst)] = sc.burst
        c["burst_n"][slot] = len(sc.burst)
        c["peak"][slot] = [e.peak for e in envs]
        c["top"][slot] = [e.top for e in envs]
        c["calm"][slot] = (math.nan,) * 3 if sc.calm is None else sc.calm
        c["up"][slot], c["down"][slot] = sc.drift.up, sc.drift.down
        model = sc.model
        c["hst_counts"][slot] = model.counts
        c["hst_counter"][slot] = model.counter
        forest_masses = model.forest.n_trees * model.forest.nodes
        if model.r_mass and (model.r_mass is _TOTALS_KEPT or len(model.r_mass) != forest_masses):
            # A converted scorer (``to_scorer``), maybe pickled since (the marker then a copy):
            # its interval scores are ``1 - total / max_score``, from which the integer totals
            # come back exactly.
            kept = np.asarray(model.scores, dtype=np.float64)
            c["hst_total"][slot] = np.rint((1 - kept) * self._max_score).astype(np.int64)
        elif model.r_mass:
            f = model.forest
            width = 1 << f.height
            ref = [
                model.r_mass[t * f.nodes + width - 1 + j]
                for t in range(f.n_trees)
                for j in range(width)
            ]
            c["hst_total"][slot] = self._hst_totals(np.asarray([ref], dtype=np.int64))[0]
        c["hst_ready"][slot] = bool(model.r_mass)
        season = sc.season
        if season is None:
            return
        for k, b in enumerate(season.baselines):
            row = int(c[f"pool{k}"][slot])
            if row < 0:
                row = int(self.pools[k].take(1)[0])
                c[f"pool{k}"][slot] = row
            a = self.pools[k].a
            a["eres"][row], a["eraw"][row] = b.eres, b.eraw
            a["means"][row] = b.means
            a["counts"][row] = np.minimum(np.asarray(b.counts, dtype=np.int64), b.period.cap)
            if k == 0:
                a["first"][row] = b.first

    def to_scorer(self, slot: int) -> SensorScorer:
        """The per-window scorer of the sensor in ``slot``, in the same state: it scores on as
        this slot would (``_load`` puts it back). Its trees keep the interval scores only."""
        p = self.params
        c = self.cols
        sc = SensorScorer(p)
        seen = int(c["seen"][slot])
        sc.seen, sc.absurd, sc.scatter = seen, int(c["absurd"][slot]), float(c["scatter"][slot])
        raw, res = sc.raw, sc.residual
        raw.level, raw.spread, raw.seen = float(c["level"][slot]), float(c["spread"][slot]), seen
        raw.last = float(c["last"][slot]) if seen else None
        r_seen = int(c["r_seen"][slot])
        res.level, res.spread, res.seen = (
            float(c["r_level"][slot]),
            float(c["r_spread"][slot]),
            r_seen,
        )
        res.last = float(c["r_last"][slot]) if r_seen else None
        sc.change.scale, sc.change.seen = float(c["c_scale"][slot]), int(c["c_seen"][slot])
        sc.burst = [float(x) for x in c["burst"][slot, : int(c["burst_n"][slot])]]
        tops = c["top"][slot].tolist()
        for e, peak, top in zip(sc.envelopes, c["peak"][slot].tolist(), tops, strict=True):
            e.peak, e.top, e.seen = peak, top, seen
        sc.drift.up, sc.drift.down = float(c["up"][slot]), float(c["down"][slot])
        calm = c["calm"][slot].tolist()
        sc.calm = None if math.isnan(calm[0]) else (calm[0], calm[1], calm[2])
        model = sc.model
        model.counts = [int(x) for x in c["hst_counts"][slot]]
        model.counter = int(c["hst_counter"][slot])
        if c["hst_ready"][slot]:
            model.r_mass = _TOTALS_KEPT
            model.scores = (1 - c["hst_total"][slot].astype(np.float64) / self._max_score).tolist()
        season = sc.season
        if season is not None and c["pool0"][slot] >= 0:
            baselines = []
            for k, b in enumerate(season.baselines):
                row = int(c[f"pool{k}"][slot])
                if row < 0:
                    baselines.append(b)
                    continue
                a = self.pools[k].a
                b.eres, b.eraw = float(a["eres"][row]), float(a["eraw"][row])
                b.means = array("d", a["means"][row].tobytes())
                b.counts = counts_array(b.period, a["counts"][row])
                b.first = int(self.pools[0].a["first"][int(c["pool0"][slot])])
                baselines.append(b)
            row1 = int(c["pool1"][slot])
            if row1 >= 0 and len(baselines) == 1:
                assert season.weekly is not None
                weekly = Baseline(season.weekly)
                a = self.pools[1].a
                weekly.eres, weekly.eraw = float(a["eres"][row1]), float(a["eraw"][row1])
                weekly.means = array("d", a["means"][row1].tobytes())
                weekly.counts = counts_array(weekly.period, a["counts"][row1])
                weekly.first = baselines[0].first
                baselines.append(weekly)
                season.weekly = None
            season.baselines = tuple(baselines)
        return sc

    def _one_by_one(self, rows: I8, sl: I8, st: I8, mn: F8, sc: F8, out: Batch) -> None:
        """The rows' windows through the per-window scorer, slot by slot in input order: for a
        sensor's long run in one batch (a backlog), where a pass would hold a handful of rows
        and cost more per window than the reference."""
        rows = rows[np.lexsort((rows, sl[rows]))]
        slots = sl[rows]
        heads = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
        for g, start in enumerate(heads.tolist()):
            end = int(heads[g + 1]) if g + 1 < len(heads) else len(rows)
            slot = int(slots[start])
            scorer = self.to_scorer(slot)
            for r in rows[start:end].tolist():
                score, ml, ready, _, why = scorer.score_learn(
                    int(st[r]), float(mn[r]), float(sc[r])
                )
                out.score[r], out.ml[r], out.ready[r] = score, ml, ready
                out.level[r], out.reach[r] = scorer.home()
                if why is not None:
                    out.why[r] = why
            self._load(slot, scorer)
