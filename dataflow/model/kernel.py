"""The column-wise scorer's loop, compiled: every row of a batch scored and learned in one call.

Why (issue 28): at a fleet's scale every reading closes a window, and ``ColumnScorer``'s numpy
passes cost a few hundred numpy calls each and a gather and scatter of every column per pass.
One compiled loop over the rows, in input order, reads and writes each row's slot in place: no
passes, a fixed cost per call of about two windows of the per-window scorer (Numba's dispatch of
its arguments), and one sensor's windows go in order by construction.

The decisions are ``SensorScorer.score_learn``'s bit for bit: the same IEEE operations in the same
order, compiled without fast-math (no reassociation, no fused multiply-add), the rules that
soften, tame, cut and fade a feature compiled from their one definition in ``features`` and
``novelty`` (``register_jitable``), so the logarithm is the C library's, as Python's is. The
column-vs-reference tests hold it to that.

Numba compiles on first use (seconds) and caches the machine code outside the checkout
(``$XDG_CACHE_HOME`` or ``~/.cache``, ``sensor-anomaly/numba``, else the temporary directory),
in a directory named by a hash of the sources it compiles from: Numba checks only the compiled
function's own file for changes, and a change to ``soften`` (or to a constant it freezes in,
such as ``BURST_WINDOWS``) must not run an old build. ``NUMBA_CACHE_DIR``, where set, is used as
it is (the image compiles into one at build). The directory is Numba's setting for this process
only: a flow it starts computes its own.
Other versions' directories that no start has used for a month are removed.
``make venv`` compiles ahead (``columns.warm``), so no test or first flow waits for it.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

CACHE_UNUSED_S = 30 * 86_400.0  # another version's compiled code unused this long is removed


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


# This module and every module it takes functions or constants from: compiled code holds them,
# so an edit of any one must not start from code compiled before it.
SOURCES = ("kernel.py", "features.py", "novelty.py", "scoring.py", "seasonality.py")


def _cache_dir() -> str:
    """Where compiled code is kept: ``NUMBA_CACHE_DIR`` where set, else a directory per version
    of the sources it was compiled from; "" (compile at every start) where none is writable:
    Numba would otherwise fall back to ``__pycache__`` beside the source, or fail on import."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return given if _writable(Path(given)) else ""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((here / name).read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for root in (base, Path(tempfile.gettempdir())):
        path = root / "sensor-anomaly" / "numba" / digest.hexdigest()[:16]
        if _writable(path):
            _prune(path)
            return str(path)
    return ""


def _prune(path: Path) -> None:
    """Mark ``path`` used, and remove the other versions' directories beside it that no start
    has used for ``CACHE_UNUSED_S``: each edit of the sources leaves one behind (about a MB),
    and one still in use (another checkout's, a version being rolled back to) is touched at
    each of its starts, so is never that old."""
    now = time.time()
    try:
        os.utime(path, (now, now))
        for other in path.parent.iterdir():
            if other != path and other.is_dir() and now - other.stat().st_mtime > CACHE_UNUSED_S:
                shutil.rmtree(other, ignore_errors=True)
    except OSError:
        pass  # a cache left untidy, not a reason to fail a start


import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba.extending import register_jitable  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from dataflow.model.features import (  # noqa: E402
    ABSURD_Z,
    REL_EPS,
    SPREAD_KNEE,
    Z_CAP,
    Z_KNEE,
    harden,
    soften,
    tamed,
)
from dataflow.model.novelty import PEAK_MOST, cut, fade  # noqa: E402
from dataflow.model.scoring import ABSURD_RUN, BURST_WINDOWS, HOME_SPREADS  # noqa: E402
from dataflow.model.seasonality import day_after_slot, slot_of  # noqa: E402

for _rule in (soften, harden, tamed, cut, fade, day_after_slot, slot_of):
    register_jitable(_rule)

# Read by Numba as each function below is decorated (an image sets NUMBA_CACHE_DIR).
_CACHE = _cache_dir()
if _CACHE:
    numba.config.CACHE_DIR = _CACHE  # type: ignore[attr-defined]

Arr = NDArray[Any]
_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    """Compiled on first call, without fast-math; inf and nan as numpy has them (no raise)."""
    return cast("_F", numba.njit(cache=bool(_CACHE), error_model="numpy", nogil=True)(fn))


# ``fp``: the float parameters, by index.
F_MARGIN, F_FLOOR, F_DECAY, F_LIMIT, F_CLIP, F_SLACK, F_RATIO, F_QUALITY = range(8)
F_SIZE_LIMIT, F_MAX_SCORE, F_RATE0, F_RATE1 = range(8, 12)
# ``ip``: the integer parameters.
I_READY_AT, I_START, I_LEVEL_WINDOWS, I_SEASONALITY, I_WEEKLY_LATER = range(5)
I_WINDOW_SIZE, I_TREES, I_HEIGHT, I_DAY = range(5, 9)
I_PERIOD0, I_SLOT0, I_SHIFT0, I_CAP0, I_PERIOD1, I_SLOT1, I_SHIFT1, I_CAP1 = range(9, 17)
# ``meta``: per pool, its next unused row and how many rows its free stack holds; where the call
# stopped.
M_NEXT0, M_FREE0, M_NEXT1, M_FREE1, M_STOP = range(5)
# ``why``: per ML row, the numbers ``ColumnScorer._why`` explains it by (rate nan: absurd).
(
    W_USE,
    W_VALUE,
    W_MEAN,
    W_LEVEL,
    W_SCALE,
    W_FLOOR,
    W_LEVEL_Z,
    W_STEP,
    W_STEP_Z,
    W_RATE,
    W_LP,
    W_SP,
    W_BP,
    W_SCORE,
    W_DRIFT,
    W_CHANGE,
    W_BURST_N,
    W_UP,
    W_DOWN,
    W_HELD,
) = range(20)
WHY_FIELDS = 20


@_jit
def _scale(level: float, spread: float, floor: float) -> float:
    s = floor if floor > spread else spread
    r = REL_EPS * abs(level)
    return r if r > s else s


@_jit
def _z(x: float, level: float, spread: float, seen: int, floor: float) -> float:
    """``Track.z``."""
    dev = x - level
    s = _scale(level, spread, floor)
    if s > 0:
        z = dev / (1.25 * s)
        if -Z_KNEE <= z <= Z_KNEE:
            return z
        return soften(z) if z > 0 else -soften(-z)
    if seen == 0 or dev == 0:
        return 0.0
    return Z_CAP if dev > 0 else -Z_CAP


@_jit
def _learn(f8: Arr, i8: Arr, c: Arr, slot: int, x: float, lw: int) -> None:
    """``Track.learn`` of the track whose level, spread and last are f8 columns ``c[0..2]`` and
    whose count (before this window; the caller counts it) is i8 column ``c[3]``."""
    n = i8[slot, c[3]]
    if n == 0:
        f8[slot, c[0]] = x
    else:
        level, spread = f8[slot, c[0]], f8[slot, c[1]]
        warm = 1.0 / (n + 1)
        a = 1.0 / lw
        d = x - level
        d = tamed(d, spread, Z_KNEE) if d >= 0 else -tamed(-d, spread, Z_KNEE)
        level += (warm if warm > a else a) * d
        b = 0.5 / lw
        dev = tamed(abs(x - level), spread, SPREAD_KNEE)
        f8[slot, c[0]] = level
        f8[slot, c[1]] = spread + (warm if warm > b else b) * (dev - spread)
    f8[slot, c[2]] = x


@_jit
def _observe(peak: float, top: float, x: float, margin: float, decay: float) -> tuple[float, float]:
    """``Envelope.observe``'s learning (its novelty is tested by the caller): (peak, top)."""
    decayed = fade(peak, decay)
    if x > PEAK_MOST:
        x = PEAK_MOST
    if x > top:
        return x, x
    if cut(margin, x) >= top:
        return top, top
    return (x if x > decayed else decayed), top


@_jit
def _take(free: Arr, meta: Arr, k: int) -> int:
    """A row of pool ``k``: a released one first, as ``Pool.take``; the caller made room."""
    nf = meta[2 * k + 1]
    if nf > 0:
        meta[2 * k + 1] = nf - 1
        return int(free[nf - 1])
    row = int(meta[2 * k])
    meta[2 * k] = row + 1
    return row


@_jit
def _hst_totals(
    counts: Arr,
    slot: int,
    lo: Arr,
    hi: Arr,
    n_trees: int,
    height: int,
    size_limit: float,
    total: Arr,
) -> None:
    """``ColumnScorer._hst_totals`` of one slot's leaf counts, into ``total`` (per interval)."""
    n_leaves = counts.shape[1]
    cs = np.zeros(n_leaves + 1, dtype=np.int64)
    for j in range(n_leaves):
        cs[j + 1] = cs[j] + counts[slot, j]
    for i in range(lo.shape[0]):
        acc = 0
        for t in range(n_trees):
            for d in range(height + 1):
                mass = cs[hi[i, t, d]] - cs[lo[i, t, d]]
                acc += mass << d
                if d < height and mass < size_limit:
                    break
        total[slot, i] = acc


@_jit
def _weekly_due(first: int, ip: Arr) -> int:
    """``seasonality.weekly_due`` of the columns' daily period."""
    return int(day_after_slot(first, ip[I_SHIFT0], ip[I_SLOT0], ip[I_DAY]))


@_jit
def _record(
    w: Arr, use: bool, value: float, mean: float, level: float, scale: float, floor: float,
    level_z: float, step: float, step_z: float, rate: float, lp: float, sp: float, bp: float,
    score: float, drift: bool, change: float, burst_n: int, up: float, down: float, held: bool,
) -> None:  # fmt: skip
    """An ML row's numbers for ``ColumnScorer._why``, into its row ``w`` of ``why``."""
    w[W_USE], w[W_VALUE], w[W_MEAN], w[W_LEVEL], w[W_SCALE] = use, value, mean, level, scale
    w[W_FLOOR], w[W_LEVEL_Z], w[W_STEP], w[W_STEP_Z], w[W_RATE] = floor, level_z, step, step_z, rate
    w[W_LP], w[W_SP], w[W_BP], w[W_SCORE], w[W_DRIFT] = lp, sp, bp, score, drift
    w[W_CHANGE], w[W_BURST_N], w[W_UP], w[W_DOWN], w[W_HELD] = change, burst_n, up, down, held


@_jit
def _hst_learn(
    s: int, idx: int, counts: Arr, totals: Arr, ready_col: Arr, i4: Arr, c_counter: int,
    leaves: Arr, lo: Arr, hi: Arr, ip: Arr, fp: Arr,
) -> None:  # fmt: skip
    """``CompactHST.learn_one`` of one slot: its leaves counted, and at the window's end
    River's pivot (the window just learned becomes the reference)."""
    for j in range(leaves.shape[1]):
        counts[s, leaves[idx, j]] += 1
    counter = i4[s, c_counter] + 1
    if counter == ip[I_WINDOW_SIZE]:
        _hst_totals(counts, s, lo, hi, ip[I_TREES], ip[I_HEIGHT], fp[F_SIZE_LIMIT], totals)
        counts[s, :] = 0
        ready_col[s] = True
        counter = 0
    i4[s, c_counter] = counter


@_jit
def _season_learn(
    s: int, t: int, x: float, level: float, i4: Arr, c_pool0: int, c_pool1: int, fp: Arr,
    ip: Arr, p0_means: Arr, p0_counts: Arr, p0_eres: Arr, p0_eraw: Arr, p0_first: Arr,
    p1_means: Arr, p1_counts: Arr, p1_eres: Arr, p1_eraw: Arr, free0: Arr, free1: Arr,
    meta: Arr,
) -> None:  # fmt: skip
    """``Seasonality.learn`` of one slot: a daily row at its first learned window, a weekly one
    seeded from it a day on (both at once where the slots do not line up), then learn both."""
    day, slot0, shift0, per0 = ip[I_DAY], ip[I_SLOT0], ip[I_SHIFT0], ip[I_PERIOD0]
    slot1, shift1, per1 = ip[I_SLOT1], ip[I_SHIFT1], ip[I_PERIOD1]
    cap0, cap1 = ip[I_CAP0], ip[I_CAP1]
    row0 = i4[s, c_pool0]
    if row0 < 0:
        row0 = _take(free0, meta, 0)
        i4[s, c_pool0] = row0
        if ip[I_WEEKLY_LATER] == 0:
            i4[s, c_pool1] = _take(free1, meta, 1)
    first = p0_first[row0]
    row1 = i4[s, c_pool1]
    if ip[I_WEEKLY_LATER] != 0 and row1 < 0 and first >= 0:
        due = _weekly_due(first, ip)
        if t >= due:
            row1 = _take(free1, meta, 1)
            i4[s, c_pool1] = row1
            begin = due - day
            for j in range(day // slot0):
                tt = begin + j * slot0
                i = slot_of(tt, shift0, per0, slot0)
                k = slot_of(tt, shift1, per1, slot1)
                p1_means[row1, k] = p0_means[row0, i]
                n = p0_counts[row0, i]
                p1_counts[row1, k] = n if n < cap1 else cap1
    if first < 0:
        first = t
    p0_first[row0] = first
    qr = fp[F_QUALITY]
    _baseline_learn(p0_means, p0_counts, p0_eres, p0_eraw, row0, t, first, x, level, qr,
                    per0, slot0, shift0, cap0, fp[F_RATE0])  # fmt: skip
    if row1 >= 0:
        _baseline_learn(p1_means, p1_counts, p1_eres, p1_eraw, row1, t, first, x, level, qr,
                        per1, slot1, shift1, cap1, fp[F_RATE1])  # fmt: skip


@_jit
def _baseline_learn(
    means: Arr, counts: Arr, eres: Arr, eraw: Arr, row: int, t: int, first: int, x: float,
    level: float, qr: float, per: int, slot: int, shift: int, cap: int, rate: float,
) -> None:  # fmt: skip
    """``Baseline.learn`` of one pool row (``first`` already set)."""
    i = slot_of(t, shift, per, slot)
    m = means[row, i]
    n = np.int64(counts[row, i])
    if n != 0 and t - first >= per:
        eres[row] += qr * (abs(x - m) - eres[row])
        eraw[row] += qr * (abs(x - level) - eraw[row])
    n += 1
    counts[row, i] = n if n < cap else cap
    warm = 1.0 / n
    means[row, i] = m + (warm if warm > rate else rate) * (x - m)


@_jit
def score_rows(
    sl: Arr, st: Arr, mn: Arr, sc: Arr, live: Arr, f8: Arr, i8: Arr, i4: Arr, i1: Arr,
    ready_col: Arr,
    counts: Arr, totals: Arr, col: Arr, fp: Arr, ip: Arr, points: Arr, leaves: Arr, lo: Arr,
    hi: Arr, p0_means: Arr, p0_counts: Arr, p0_eres: Arr, p0_eraw: Arr, p0_first: Arr,
    p1_means: Arr, p1_counts: Arr, p1_eres: Arr, p1_eraw: Arr, free0: Arr, free1: Arr,
    meta: Arr, out_f: Arr, out_b: Arr, why: Arr,
    begin: int,
    n_ml: int,
) -> int:  # fmt: skip
    """Score then learn each row's window from row ``begin`` in input order, as
    ``SensorScorer.score_learn``.

    ``col`` holds the sensor columns' places in their matrices (``ColumnScorer._places``);
    ``out_f`` holds per row its score, level and reach (``SensorScorer.home`` after it), ``out_b``
    its ready and ml. ML rows' evidence goes to
    ``why``, in row order, after the ``n_ml`` already there; returns how many there are then.
    Stops before a row that may need a seasonal pool's row when that pool is full, with
    ``meta[M_STOP]`` at that row (the number of rows when done): the caller grows the pool and
    calls again from there. Stops at once with ``meta[M_STOP]`` -1 if a row's slot is not
    ``live``.
    """
    for r in range(begin, len(sl)):
        if not (0 <= sl[r] < len(live) and live[sl[r]]):
            meta[M_STOP] = -1
            return n_ml
    margin, nfloor, decay = fp[F_MARGIN], fp[F_FLOOR], fp[F_DECAY]
    limit, clip, slack = fp[F_LIMIT], fp[F_CLIP], fp[F_SLACK]
    ready_at, start, lw = ip[I_READY_AT], ip[I_START], ip[I_LEVEL_WINDOWS]
    seasonal = ip[I_SEASONALITY] != 0
    c_seen, c_absurd, c_scatter = col[0], col[1], col[2]
    c_level, c_spread, c_last = col[3], col[4], col[5]
    c_rlevel, c_rspread, c_rlast, c_rseen = col[6], col[7], col[8], col[9]
    c_cscale, c_cseen = col[10], col[11]
    c_burst, c_burst_n, c_peak, c_up, c_down = col[12], col[13], col[14], col[15], col[16]
    c_counter, c_pool0, c_pool1, c_top, c_calm = col[17], col[18], col[19], col[20], col[21]
    raw_track = np.array([c_level, c_spread, c_last, c_seen])
    res_track = np.array([c_rlevel, c_rspread, c_rlast, c_rseen])
    weekly_later = ip[I_WEEKLY_LATER] != 0
    meta[M_STOP] = len(sl)
    for r in range(begin, len(sl)):
        s = sl[r]
        t = st[r]
        x = mn[r]
        if seasonal and x - x == 0.0:
            # Room for the rows this window may take (``_season_learn``), or stop here.
            row0 = i4[s, c_pool0]
            new0 = row0 < 0
            new1 = not weekly_later and new0
            if weekly_later and row0 >= 0 and i4[s, c_pool1] < 0:
                first = p0_first[row0]
                new1 = first >= 0 and t >= _weekly_due(first, ip)
            if (new0 and meta[M_FREE0] == 0 and meta[M_NEXT0] >= len(p0_eres)) or (
                new1 and meta[M_FREE1] == 0 and meta[M_NEXT1] >= len(p1_eres)
            ):
                meta[M_STOP] = r
                return n_ml
        seen = i8[s, c_seen]
        ready = seen >= ready_at
        out_b[0, r] = ready
        if x - x == 0.0:  # inf or nan: no evidence of anything, and nothing to learn
            # -- score: the trees, the seasonal residual, the features ----------------------
            idx = np.searchsorted(points, x, side="right")
            score = 1 - totals[s, idx] / fp[F_MAX_SCORE] if ready_col[s] else 0.0
            out_f[0, r] = score
            has_r = False
            res = 0.0
            if seasonal:
                row0 = i4[s, c_pool0]
                row1 = i4[s, c_pool1]
                first = p0_first[row0] if row0 >= 0 else -1
                best_err = 0.0
                for k in range(2):
                    row = row0 if k == 0 else row1
                    if row < 0:
                        continue
                    if k == 0:
                        eres, eraw = p0_eres[row], p0_eraw[row]
                        per, slot, shift = ip[I_PERIOD0], ip[I_SLOT0], ip[I_SHIFT0]
                    else:
                        eres, eraw = p1_eres[row], p1_eraw[row]
                        per, slot, shift = ip[I_PERIOD1], ip[I_SLOT1], ip[I_SHIFT1]
                    if eres >= fp[F_RATIO] * eraw or (has_r and eres >= best_err):
                        continue
                    if first < 0 or t - first < per:
                        continue
                    i = slot_of(t, shift, per, slot)
                    if k == 0:
                        if p0_counts[row, i] == 0:
                            continue
                        res = x - p0_means[row, i]
                    else:
                        if p1_counts[row, i] == 0:
                            continue
                        res = x - p1_means[row, i]
                    best_err = eres
                    has_r = True
            r_seen = i8[s, c_rseen]
            use = has_r and r_seen >= start
            level, spread = f8[s, c_level], f8[s, c_spread]
            if use:
                value = res
                t_level, t_spread, t_last, t_seen = (
                    f8[s, c_rlevel],
                    f8[s, c_rspread],
                    f8[s, c_rlast],
                    r_seen,
                )
            else:
                value = x
                t_level, t_spread, t_last, t_seen = level, spread, f8[s, c_last], seen
            floor = REL_EPS * abs(level)
            scatter = f8[s, c_scatter]
            if scatter > floor:
                floor = scatter
            z = _z(value, t_level, t_spread, t_seen, floor)
            t_scale = _scale(t_level, t_spread, floor)
            level_z = abs(z)
            has_last = t_seen > 0
            step = value - t_last if has_last else 0.0
            c_scale = f8[s, c_cscale]
            a = abs(step)
            ss = c_scale if c_scale > floor else floor
            if ss > 0:
                step_z = a / (1.25 * ss)
                if not step_z <= Z_KNEE:
                    step_z = soften(step_z)
            else:
                step_z = 0.0 if a == 0 else Z_CAP
            lp, sp, bp = f8[s, c_peak], f8[s, c_peak + 1], f8[s, c_peak + 2]
            up, down = f8[s, c_up], f8[s, c_down]
            burst_n = i1[s, c_burst_n]
            absurd = spread > 0 and abs(x - level) > ABSURD_Z * 1.25 * _scale(level, spread, 0.0)
            run = i4[s, c_absurd] + 1 if absurd else 0
            i4[s, c_absurd] = run
            if absurd and run < ABSURD_RUN:
                # Judged against the peaks, and not learned by anything.
                novel = (level_z > nfloor and level_z > cut(margin, lp)) or (
                    step_z > nfloor and step_z > cut(margin, sp)
                )
                if ready and novel:
                    out_b[1, r] = True
                    _record(why[n_ml], use, value, x, t_level, t_scale, floor, level_z, step,
                            step_z, 0.0, lp, sp, bp, score, False, c_scale, burst_n, up, down,
                            True)  # fmt: skip
                    n_ml += 1
            else:
                # -- the burst window, the envelopes, the drift sums --------------------------
                if burst_n == BURST_WINDOWS:
                    for j in range(BURST_WINDOWS - 1):
                        f8[s, c_burst + j] = f8[s, c_burst + j + 1]
                    f8[s, c_burst + BURST_WINDOWS - 1] = level_z
                else:
                    f8[s, c_burst + burst_n] = level_z
                    burst_n += 1
                    i1[s, c_burst_n] = burst_n
                total = f8[s, c_burst]
                for j in range(1, burst_n):
                    total += f8[s, c_burst + j]
                rate = total / burst_n
                novel = False
                feats = (level_z, step_z, rate)
                for e in range(3):
                    v = feats[e]
                    peak = f8[s, c_peak + e]
                    if v > nfloor and v > cut(margin, peak):
                        novel = True
                    if seen >= start:
                        f8[s, c_peak + e], f8[s, c_top + e] = _observe(
                            peak, f8[s, c_top + e], v, margin, decay
                        )
                drift = False
                if limit > 0 and t_spread > 0:
                    zc = clip if z > clip else (-clip if z < -clip else z)
                    u = up + zc - slack
                    d = down - zc - slack
                    cap = 2 * limit
                    up = 0.0 if u < 0.0 else (cap if u > cap else u)
                    down = 0.0 if d < 0.0 else (cap if d > cap else d)
                    f8[s, c_up], f8[s, c_down] = up, down
                    drift = up > limit or down > limit
                ml = ready and (novel or drift)
                if ml:
                    out_b[1, r] = True
                    _record(why[n_ml], use, value, x, t_level, t_scale, floor, level_z, step,
                            step_z, rate, lp, sp, bp, score, drift, c_scale, burst_n, up, down,
                            False)  # fmt: skip
                    n_ml += 1
                # -- learn: the raw track, the scatter, the residual, the steps, the seasons --
                _learn(f8, i8, raw_track, s, x, lw)
                scat = sc[r]
                if not 0.0 <= scat < math.inf:
                    scat = 0.0
                if scat > 0.0 or scatter > 0.0:
                    n = seen + 1 if seen + 1 < lw else lw
                    f8[s, c_scatter] = scatter + (scat - scatter) / n
                if has_r:
                    _learn(f8, i8, res_track, s, res, lw)
                    i8[s, c_rseen] = r_seen + 1
                if has_last:
                    cn = i8[s, c_cseen] + 1
                    warm = 1.0 / cn
                    aw = 1.0 / lw
                    f8[s, c_cscale] = c_scale + (warm if warm > aw else aw) * (
                        tamed(abs(step), c_scale, SPREAD_KNEE) - c_scale
                    )
                    i8[s, c_cseen] = cn
                if seasonal:
                    _season_learn(
                        s, t, x, f8[s, c_level], i4, c_pool0, c_pool1, fp, ip,
                        p0_means, p0_counts, p0_eres, p0_eraw, p0_first,
                        p1_means, p1_counts, p1_eres, p1_eraw, free0, free1, meta,
                    )  # fmt: skip
                if not ml:  # like River's filters: not what they called anomalous
                    _hst_learn(
                        s, idx, counts, totals, ready_col, i4, c_counter, leaves, lo, hi, ip, fp
                    )
                i8[s, c_seen] = seen + 1
                # The peaks before a drift episode, kept while its sums are not 0.
                if up == 0.0 and down == 0.0:
                    for e in range(3):
                        f8[s, c_calm + e] = math.nan
                elif math.isnan(f8[s, c_calm]):
                    f8[s, c_calm], f8[s, c_calm + 1], f8[s, c_calm + 2] = lp, sp, bp
                if (
                    drift
                    and not use
                    and burst_n == BURST_WINDOWS
                    and (up if up > down else down) >= 2 * limit
                ):
                    least = f8[s, c_burst]
                    for j in range(1, BURST_WINDOWS):
                        b = f8[s, c_burst + j]
                        if b < least:
                            least = b
                    if least > nfloor:
                        # A change of level accepted: the level moves by the least burst
                        # distance towards the drift, the sums restart, the calm peaks return.
                        sign = 1.0 if up > down else -1.0
                        lv = f8[s, c_level]
                        f8[s, c_level] = lv + sign * least * 1.25 * _scale(
                            lv, f8[s, c_spread], floor
                        )
                        f8[s, c_up], f8[s, c_down] = 0.0, 0.0
                        for j in range(BURST_WINDOWS):
                            f8[s, c_burst + j] = 0.0
                        i1[s, c_burst_n] = 0
                        if not math.isnan(f8[s, c_calm]):
                            for e in range(3):
                                f8[s, c_peak + e] = f8[s, c_calm + e]
                        for e in range(3):
                            f8[s, c_calm + e] = math.nan
        # -- home: where the sensor is now, as ``SensorScorer.home`` ----------------------------
        level, spread = f8[s, c_level], f8[s, c_spread]
        res_floor = REL_EPS * abs(level)
        scatter = f8[s, c_scatter]
        hf = scatter if scatter > res_floor else res_floor
        out_f[1, r] = level
        out_f[2, r] = HOME_SPREADS * 1.25 * _scale(level, spread, hf) if spread > 0 else 0.0
    return n_ml
