"""Column-wise scoring: every per-sensor number of ``SensorScorer`` in numpy arrays by slot.

Why (issue 28): at a fleet's scale every reading closes a window, and scoring closed windows
one at a time in Python, each with its own tree of per-sensor objects, is most of the time and
most of the memory. ``ColumnScorer`` keeps one family's sensors in arrays indexed by a sensor
slot (a few matrices, one per number type, a row per slot) and scores all the windows a batch
closes in one compiled loop over them (``dataflow.model.kernel``), in input order, so one
sensor's windows go in order.

The decisions are those of ``dataflow.model.scoring.SensorScorer`` bit for bit (the tests
compare them on random streams): the same IEEE operations in the same order, float64 for every
number a decision reads (a float32 would move a comparison), narrow integers for the counts.
Evidence is built only for ML rows, in Python: they are rare.

Only the default detectors are supported (``hst_novelty`` and ``pattern`` off): with them on the
constructor refuses, and callers keep the per-window scorer. Seasonal baselines live in pools
of rows, one pool per period, handed to a sensor when the reference's ``Seasonality`` would
have them: the daily one at its first learned window, the weekly one a day later (seeded from
the daily one, ``dataflow.model.seasonality``). A forgotten sensor's slot and rows are reset and
reused. ``to_scorer`` and ``_load`` move a slot's state into a per-window scorer and back,
exactly (a shard scores a handful of windows that way, and old snapshots come in that way).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dataflow.model import kernel
from dataflow.model.explain import BURST, DRIFT, LEVEL, STEP, Evidence
from dataflow.model.features import (
    REL_EPS,
)
from dataflow.model.novelty import cut
from dataflow.model.scoring import (
    BURST_WINDOWS,
    HOME_SPREADS,
    STRUCTURAL,
    ModelParams,
    SensorScorer,
    forest,
)
from dataflow.model.seasonality import DAY_NS, Baseline, Period, Seasonality, lined_up

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


_NO_ROWS = np.zeros(0, dtype=np.int64)  # an empty free list
# The sensor columns the compiled loop reads, in the order of its ``col`` argument.
_KERNEL_COLUMNS = (
    "seen", "absurd", "scatter", "level", "spread", "last", "r_level", "r_spread", "r_last",
    "r_seen", "c_scale", "c_seen", "burst", "burst_n", "peak", "up", "down", "hst_counter",
    "pool0", "pool1", "top", "calm",
)  # fmt: skip


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


class ColumnScorer:
    """One family's sensors, column-wise; ``score_batch`` scores many sensors' windows at once."""

    def __init__(self, params: ModelParams, capacity: int = 1024) -> None:
        if params.hst_novelty or params.pattern:
            raise ValueError("ColumnScorer supports hst_novelty=False and pattern=False only")
        self.params = params
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
        day, week = self._periods
        self._fp = np.array(
            [
                p.novelty_margin, p.novelty_floor, self._decay, p.drift_limit, p.drift_clip,
                p.drift_slack, self._ratio, self._quality_rate, self._size_limit,
                float(self._max_score), day.rate, week.rate,
            ],
            dtype=np.float64,
        )  # fmt: skip
        self._ip = np.array(
            [
                self._ready_at, p.novelty_start, p.level_windows, p.seasonality,
                self._weekly_later, f.window_size, f.n_trees, f.height, DAY_NS,
                day.period_ns, day.slot_ns, day.shift_ns, day.cap, week.period_ns, week.slot_ns,
                week.shift_ns, week.cap,
            ],
            dtype=np.int64,
        )  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        """The arrays up to the last slot ever handed out (no spare capacity), the free lists
        and the params; the forest's tables are rebuilt from the params."""
        n = max(1, self.next_slot)
        keep = ("params", "free_slots", "next_slot", "pools")
        state = {k: getattr(self, k) for k in keep}
        state["mats"] = {dtype: m[:n] for dtype, m in self.mats.items()}
        state["live"] = self.live[:n]
        state["capacity"] = n
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        mats = state.pop("mats")
        state.pop("scalar_per_pass", None)  # snapshots v14 and before: the numpy passes' knob
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
        places: dict[str, int] = {}
        for name, (dtype, shape, fill) in self._spec.items():
            o, w = at[dtype], math.prod(shape)
            at[dtype] = o + w
            places[name] = o
            view = mats[dtype][:, o] if shape == () else mats[dtype][:, o : o + w]
            view[...] = fill
            cols[name] = view
        for dtype, m in old.items():
            mats[dtype][: len(m), : m.shape[1]] = m  # a v11 snapshot's f8 lacks the tops
        self.mats, self.cols = mats, cols
        self._places = np.array([places[name] for name in _KERNEL_COLUMNS], dtype=np.int64)
        self._bind()

    def _bind(self) -> None:
        """The compiled loop's arguments that change only with the arrays or the settings."""
        m, c = self.mats, self.cols
        self._static = (
            m["f8"], m["i8"], m["i4"], m["i1"], c["hst_ready"], c["hst_counts"], c["hst_total"],
            self._places, self._fp, self._ip, self._points, self._leaves, self._lo, self._hi,
        )  # fmt: skip

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
        self._bind()
        return True

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
        in input order, by one compiled loop (``dataflow.model.kernel``)."""
        sl = np.ascontiguousarray(slots, dtype=np.int64)
        st = np.ascontiguousarray(starts, dtype=np.int64)
        mn = np.ascontiguousarray(means, dtype=np.float64)
        n = len(sl)
        sc = np.zeros(n) if scatters is None else np.ascontiguousarray(scatters, dtype=np.float64)
        if not (len(st) == len(mn) == len(sc) == n):
            raise ValueError("slots, starts, means and scatters differ in length")
        out_f = np.zeros((3, n))  # score, level, reach
        out_b = np.zeros((2, n), dtype=bool)  # ready, ml
        why = np.empty((n, kernel.WHY_FIELDS))
        p0, p1 = self.pools
        free0 = np.array(p0.free, dtype=np.int64) if p0.free else _NO_ROWS
        free1 = np.array(p1.free, dtype=np.int64) if p1.free else _NO_ROWS
        meta = np.array([p0.next, len(free0), p1.next, len(free1), 0], dtype=np.int64)
        begin = n_ml = 0
        while begin < n:
            a0, a1 = p0.a, p1.a
            n_ml = kernel.score_rows(
                sl, st, mn, sc, self.live, *self._static,
                a0["means"], a0["counts"], a0["eres"], a0["eraw"], a0["first"],
                a1["means"], a1["counts"], a1["eres"], a1["eraw"],
                free0, free1, meta, out_f, out_b, why, begin, n_ml,
            )  # fmt: skip
            begin = int(meta[kernel.M_STOP])
            if begin < 0:
                raise ValueError("a slot that is not in use")
            for k, pool in enumerate(self.pools):  # a full pool grows by a quarter, as take()
                if begin < n and meta[2 * k + 1] == 0 and meta[2 * k] >= pool.capacity:
                    pool.grow(pool.capacity + pool.capacity // 4 + 1)
        if len(free0):
            p0.free = free0[: meta[kernel.M_FREE0]].tolist()
        if len(free1):
            p1.free = free1[: meta[kernel.M_FREE1]].tolist()
        p0.next, p1.next = int(meta[kernel.M_NEXT0]), int(meta[kernel.M_NEXT1])
        evidence: dict[int, Evidence] = {}
        for j, row in enumerate(np.flatnonzero(out_b[1]).tolist() if n_ml else ()):
            w = why[j].tolist()
            evidence[row] = self._why(
                w[kernel.W_USE] != 0.0, w[kernel.W_VALUE], w[kernel.W_MEAN], w[kernel.W_LEVEL],
                w[kernel.W_SCALE], w[kernel.W_FLOOR], w[kernel.W_LEVEL_Z], w[kernel.W_STEP],
                w[kernel.W_STEP_Z], None if w[kernel.W_HELD] else w[kernel.W_RATE],
                w[kernel.W_LP], w[kernel.W_SP], w[kernel.W_BP], w[kernel.W_SCORE],
                w[kernel.W_DRIFT] != 0.0, w[kernel.W_CHANGE], int(w[kernel.W_BURST_N]),
                w[kernel.W_UP], w[kernel.W_DOWN],
            )  # fmt: skip
        return Batch(out_f[0], out_b[1], out_b[0], np.full(n, np.nan), evidence, out_f[1], out_f[2])

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


def warm() -> None:
    """Compile (or load from the cache) the loop for the default settings' column types: a
    step of ``make venv`` and of the image's build, and of the flow's start (``dataflow.main``):
    loaded at the first closed windows instead, it took a few tenths of a second out of the
    first batch (seconds where nothing was compiled yet), delaying its alerts."""
    cols = ColumnScorer(ModelParams(limits=(0.0, 1.0)), capacity=1)
    cols.score_batch([cols.alloc()], [0], [0.5])
