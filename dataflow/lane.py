"""The shard's fast lane: steady sensors' windows and silence clocks in slot arrays, folded by
compiled loops. Pure: numpy and Numba, no Kafka or Bytewax.

Why (issue 28): at a fleet's scale every reading closes a window, and the shard's per-reading
and per-window Python (``ShardState``: some twenty small steps each, none above a few per cent
of the time) is most of a drain. A sensor in the lane keeps its open windows, its clock, its
hearing, its usual gap and cadence and its clean-window bookkeeping in one row of two arrays
(``ints`` and ``floats``), and three loops do, for a whole poll, a whole group of closes
or a whole drain, what ``ShardState.ingest``, ``expire`` and ``_drain`` do for it one step at a
time: fold its readings, close its windows by its own clock or by input time, queue the closes,
and keep the bookkeeping of a window the model called clean.

Only the usual case is folded here. A sensor is in the lane while nothing about it is unusual
(``ShardState._laneable``: its model a slot of a ColumnScorer, no alert open, no jump or late
run, not a machine's channel, its family's rules, at most ``WINDOWS`` windows open). Each loop
stops,
before changing anything, at the first reading, close or window it would have to do otherwise
(a reading late, from the future or after a silence, one window too many, a jump, a silence that
may make an alert stale, a window the model did not call clean), and the shard hands that
sensor back to the object path (``evict``: its row written back into its ``_Sensor``) and does
that step itself. Both paths take the same steps in the same order, with the same IEEE
arithmetic, so the results are the same bit for bit (``tests/unit/dataflow/test_lane.py``
holds the shard to that with the lane on and off). A sensor comes back into the lane after a
window of it was handled as quiet (``adopt``). A snapshot, a reconfiguration, a sweep's forget
and the end of input hand sensors back first, so nothing outside this module reads the arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from dataflow.model.kernel import _jit

# A sensor's usual time between hearings and between readings (``ShardState``): kept here, as the
# compiled loops freeze them in, and a change of this file recompiles them.
GAP_WEIGHT: Final = 0.1  # weight of the newest gap in a sensor's running usual gap
GAP_CLIP: Final = 4.0  # a gap longer than this many usual gaps counts as this many (a silence)
# A gap between hearings of at least this many readings (a bundle, not one reading's jitter)
# that is longer than the usual gap is taken at once, not by GAP_WEIGHT: a window's close waits
# for the next bundle by the usual gap, and a running mean lagged a gateway whose bundles grew
# (2 s to 8 s: a dozen bundles) or varied (3 s and 10 s in turn: the mean, 6.5 s), so windows
# closed before the next bundle and its readings were late.
BUNDLE_READINGS: Final = 2.0
JUMP_GAPS: Final = 2  # a stretch unwritten longer than this many of a sensor's usual gaps is a jump
SILENCE_GAPS: Final = 3.0  # a sensor is silent after this many of its readings' usual interval

# ``ints``, a sensor's integers: its clock and windows (``SensorWindows``), the ends of its last
# scored and closed windows, its clean windows' count (``AlertTracker.calm``), its partition
# and family (indexes into ``Lane.parts`` and ``Lane.families``), whether it is in the lane, and
# per open window (``WINDOWS`` at most) its start, count and the order it opened in.
MAX_TS, CLOSED_UNTIL, NEXT_CLOSE, LAST_END, CLOSED_END, CALM, PART, FAM, LIVE, OPENED = range(10)
CSLOT, SCORER = 10, 11  # its slot in its ColumnScorer, and which (``Lane.scorers``)
# Windows a sensor in the lane may have open at once: one, and those its lateness and close
# wait keep open behind it (in a backlog, input time runs a round of the fleet behind).
WINDOWS: Final = 4
W0 = 12  # window k: start at W0 + 3k, count at W0 + 3k + 1, order at W0 + 3k + 2
NI = W0 + 3 * WINDOWS
# ``floats``, its floats: hearing, usual gap, cadence, batch (``_Sensor``), clean baseline
# (``AlertTracker.baseline``), and per open window its sum, min and max.
HEARD, GAP, CADENCE, BATCH, BASELINE = range(5)
WF = 5  # window k: sum at WF + 3k, min at WF + 3k + 1, max at WF + 3k + 2
NF = WF + 3 * WINDOWS
EMPTY: Final = int(np.iinfo(np.int64).max)  # no window in a place; ``next_close`` of none open
NOT_LANED: Final = -1

# A block: the windows the loops closed and the silence touches queued behind them, in order.
# ``bi``: kind, slot, start, end, count; ``bf``: mean, min, max, the sensor's hearing then.
B_KIND, B_SLOT, B_START, B_END, B_COUNT = range(5)
B_MEAN, B_MIN, B_MAX, B_HEARD = range(4)
WINDOW, TOUCH = 0, 1
# Where a loop leaves the partition's lead (``progress.Lead``) and the segment's latest time.
L_SLOT, L_FIRST, L_SECOND, L_MARK, L_SEG = range(5)

_TWO53: Final = 1 << 53  # below it, an int64 and its float64 are the same number

I8 = NDArray[np.int64]
F8 = NDArray[np.float64]


@_jit
def _finite_mean(total: float, lo: float, hi: float) -> float:
    """``windows._finite_mean``."""
    if total == np.inf:
        return hi
    if total == -np.inf:
        return lo
    return lo / 2 + hi / 2


@_jit
def _close_wait(ints: I8, floats: F8, s: int, idle: float) -> float:
    """``shard._close_wait`` of a sensor in the lane (it has closed a window: ``closed_any``)."""
    cadence, gap = floats[s, CADENCE], floats[s, GAP]
    if gap == 0.0:
        return idle
    wait = gap - cadence
    if wait <= 0.0 or cadence == 0.0:
        return 0.0
    return wait if wait < idle else idle


@_jit
def _jumps(ints: I8, floats: F8, s: int, horizon: int, size: int, extra: int) -> bool:
    """Whether closing the windows that start at or before ``horizon`` (the open ones, and
    ``extra``, one about to open, unless EMPTY) would note a jump (``shard._note_closes``):
    the object path keeps a sensor's ``Jumps``. Also where the comparison with the cadence, a
    float, is not exact as an int64's (a stretch past 2**53 ns)."""
    end = ints[s, CLOSED_END]
    limit = JUMP_GAPS * 1e9 * floats[s, CADENCE]
    after = -1  # windows in start order: the least start past the last one looked at
    while True:
        start = EMPTY
        for k in range(WINDOWS):
            open_at = ints[s, W0 + 3 * k]
            if after < open_at < start:
                start = open_at
        if after < extra < start:
            start = extra
        if start == EMPTY or start > horizon:
            return False
        skipped = start - end
        if end != 0 and skipped > size and (skipped >= _TWO53 or skipped > limit):
            return True
        end = start + size
        after = start


@_jit
def _close(
    ints: I8, floats: F8, s: int, clock: int, size: int, lateness: int, bi: I8, bf: F8, nb: int
) -> tuple[int, int]:
    """``SensorWindows.close_at(clock)`` and ``ShardState._score``'s bookkeeping at close (no
    jump: ``_jumps`` said so), each window closed written to the block. Returns the block's
    length and how many closed."""
    horizon = clock - lateness - size
    next_close = ints[s, NEXT_CLOSE]
    if next_close == EMPTY or next_close - size - lateness > horizon:
        return nb, 0
    closed = 0
    last_end = 0
    heard = floats[s, HEARD]
    while True:  # the earliest open window, while it is due
        k = -1
        start = EMPTY
        for w in range(WINDOWS):
            open_at = ints[s, W0 + 3 * w]
            if open_at < start:
                start, k = open_at, w
        if k < 0 or start > horizon:
            break
        at = W0 + 3 * k
        count = ints[s, at + 1]
        total, lo, hi = floats[s, WF + 3 * k], floats[s, WF + 3 * k + 1], floats[s, WF + 3 * k + 2]
        mean = total / count
        if mean - mean != 0.0:  # inf or nan: the sum overflowed
            mean = _finite_mean(total, lo, hi)
        last_end = start + size
        bi[nb, B_KIND], bi[nb, B_SLOT], bi[nb, B_START] = WINDOW, s, start
        bi[nb, B_END], bi[nb, B_COUNT] = last_end, count
        bf[nb, B_MEAN], bf[nb, B_MIN], bf[nb, B_MAX], bf[nb, B_HEARD] = mean, lo, hi, heard
        nb += 1
        closed += 1
        ints[s, at] = EMPTY
    if closed:
        if last_end > ints[s, CLOSED_UNTIL]:
            ints[s, CLOSED_UNTIL] = last_end
        ints[s, CLOSED_END] = last_end
        low = EMPTY if k < 0 else start  # the earliest still open (EMPTY: none)
        ints[s, NEXT_CLOSE] = EMPTY if low == EMPTY else low + size + lateness
    return nb, closed


@_jit
def fold(
    slots: I8,
    ts: I8,
    values: F8,
    lo: int,
    hi: int,
    ints: I8,
    floats: F8,
    size: int,
    lateness: int,
    silence: int,
    horizon: int,
    now_ns: int,
    span: int,
    part: int,
    now: float,
    base: float,
    idle: float,
    lead: I8,
    mate: bool,
    queued: bool,
    bi: I8,
    bf: F8,
    pd: F8,
    pi: I8,
) -> tuple[int, bool, int, int, int]:
    """``ShardState.ingest``'s step for each row of a ``Rows`` from ``lo``, in order, until one
    it cannot take (a sensor not in the lane, a reading from the future, on another partition,
    after a silence of the stale time, late or behind its clock, a window past ``WINDOWS``, a
    jump): the
    window fold, the closes by the sensor's own clock, the partition's lead, the hearing, the
    usual gap, a silence touch where windows are queued, and the close queued by input time
    (into ``pd``/``pi``: due, slot, next close). Returns where it stopped, the lead's mate
    flag, the block's and the pushes' lengths, and the windows closed."""
    lslot, first, second, mark, seg = lead[0], lead[1], lead[2], lead[3], lead[4]
    nb = npush = windows = 0
    i = lo
    while i < hi:
        s = slots[i]
        if s < 0 or ints[s, LIVE] == 0 or nb + WINDOWS >= len(bi):  # (a block full: stop)
            break
        t = ts[i]
        v = values[i]
        if t > horizon or ints[s, PART] != part:
            break
        max_ts = ints[s, MAX_TS]
        if t - max_ts >= silence or t + size + lateness <= max_ts or t < ints[s, CLOSED_UNTIL]:
            break
        start = t - t % size
        w = free = -1
        for k in range(WINDOWS):
            open_at = ints[s, W0 + 3 * k]
            if open_at == start:
                w = k
            elif open_at == EMPTY and free < 0:
                free = k
        if w < 0 and free < 0:
            break  # a third window open
        before = ints[s, NEXT_CLOSE]
        after = before
        if w < 0:
            close_at = start + size + lateness
            if close_at < after:
                after = close_at
        clock = t if t > max_ts else max_ts
        if clock >= after and _jumps(
            ints, floats, s, clock - lateness - size, size, start if w < 0 else EMPTY
        ):
            break
        # ``SensorWindows.add``
        if w >= 0:
            at, fat = W0 + 3 * w, WF + 3 * w
            ints[s, at + 1] += 1
            floats[s, fat] += v
            if v < floats[s, fat + 1]:
                floats[s, fat + 1] = v
            elif v > floats[s, fat + 2]:
                floats[s, fat + 2] = v
        else:
            at, fat = W0 + 3 * free, WF + 3 * free
            ints[s, at], ints[s, at + 1], ints[s, at + 2] = start, 1, ints[s, OPENED]
            ints[s, OPENED] += 1
            floats[s, fat], floats[s, fat + 1], floats[s, fat + 2] = v, v, v
            ints[s, NEXT_CLOSE] = after
        ints[s, MAX_TS] = clock
        if clock >= after:
            nb, closed = _close(ints, floats, s, clock, size, lateness, bi, bf, nb)
            windows += closed
        # The lead (``progress.Lead``), as ``ingest`` runs it inline.
        last = t if t < now_ns else now_ns
        if s == lslot:
            step = last - first
            if step > 0:
                if step > span:
                    mark += step
                first = last
            elif step < -span:
                mark += step
                first = last
        elif last > first:
            if seg >= first >= 0:
                mate = True
            if first > second:
                second = first
            mark = last
            first = last
            lslot = s
        elif last >= second:
            second = last
            mate = True
        if last > seg:
            seg = last
        heard = seg / 1e9
        if heard < base:
            heard = base
        if floats[s, BATCH] != now:
            gap = heard - floats[s, HEARD] if floats[s, BATCH] >= 0 else 0.0
            if gap < 0.0:
                gap = 0.0
            usual = floats[s, GAP]
            if usual == 0.0:
                floats[s, GAP] = gap
            else:
                cap = GAP_CLIP * usual
                if gap > cap:
                    gap = cap
                if gap > usual and gap > BUNDLE_READINGS * floats[s, CADENCE]:
                    floats[s, GAP] = gap
                else:
                    floats[s, GAP] = usual + GAP_WEIGHT * (gap - usual)
            floats[s, BATCH] = now
            if queued or nb > 0:  # ``_touch``: behind the windows queued
                bi[nb, B_KIND], bi[nb, B_SLOT] = TOUCH, s
                bf[nb, B_HEARD] = heard
                nb += 1
        floats[s, HEARD] = heard
        next_close = ints[s, NEXT_CLOSE]
        if next_close != before and next_close != EMPTY:
            pd[npush] = (
                heard + _close_wait(ints, floats, s, idle) + (next_close - ints[s, MAX_TS]) / 1e9
            )
            pi[npush, 0], pi[npush, 1] = s, next_close
            npush += 1
        i += 1
    lead[0], lead[1], lead[2], lead[3], lead[4] = lslot, first, second, mark, seg
    return i, mate, nb, npush, windows


@_jit
def expire(
    slots: I8,
    closes: I8,
    lo: int,
    hi: int,
    ints: I8,
    floats: F8,
    sizes: I8,
    lateness: int,
    part: int,
    at: float,
    stale: float,
    idle: float,
    bi: I8,
    bf: F8,
    pd: F8,
    pi: I8,
) -> tuple[int, int, int, int]:
    """``ShardState.expire``'s step for each queued close from ``lo`` (``slots``, the sensors';
    ``closes``, the next close each was queued for), in order, until one it cannot take (a
    sensor not in the lane, a silence that may have made its alert stale first, a jump): the
    close by input time, queued again if heard since or if a window is left open. Returns
    where it stopped, the block's and the pushes' lengths, and the windows closed."""
    nb = npush = windows = 0
    i = lo
    while i < hi:
        s = slots[i]
        if s < 0 or ints[s, LIVE] == 0 or nb + WINDOWS > len(bi):  # (a block full: stop)
            break
        next_close = closes[i]
        if ints[s, PART] != part or ints[s, NEXT_CLOSE] != next_close:
            i += 1  # moved, or its own readings closed that window first
            continue
        size = sizes[ints[s, FAM]]
        wait = _close_wait(ints, floats, s, idle)
        heard = floats[s, HEARD]
        due = heard + wait + (next_close - ints[s, MAX_TS]) / 1e9
        if at < due:
            pd[npush] = due
            pi[npush, 0], pi[npush, 1] = s, next_close
            npush += 1
            i += 1
            continue
        if stale > 0 and heard + stale < due:
            break
        clock = ints[s, MAX_TS] + np.int64(np.rint((at - heard - wait) * 1e9))
        if clock < next_close:
            clock = next_close
        if _jumps(ints, floats, s, clock - lateness - size, size, EMPTY):
            break
        nb, closed = _close(ints, floats, s, clock, size, lateness, bi, bf, nb)
        windows += closed
        later = ints[s, NEXT_CLOSE]
        if later != EMPTY:  # ``_arm``
            pd[npush] = heard + wait + (later - ints[s, MAX_TS]) / 1e9
            pi[npush, 0], pi[npush, 1] = s, later
            npush += 1
        i += 1
    return i, nb, npush, windows


@_jit
def quiet(
    bi: I8,
    bf: F8,
    calm: NDArray[np.bool_],
    lo: int,
    hi: int,
    ints: I8,
    floats: F8,
) -> int:
    """``ShardState._quiet``'s bookkeeping (``_follow_cadence``, ``AlertTracker.quiet``) for each
    row of a block from ``lo``, in order, until one of a sensor no longer in the lane or a
    window not calm (both the object path's). A touch of a sensor in the lane has no alert to
    touch. Returns where it stopped."""
    r = lo
    while r < hi:
        s = bi[r, B_SLOT]
        if ints[s, LIVE] == 0:
            break
        if bi[r, B_KIND] == TOUCH:
            r += 1
            continue
        if not calm[r]:
            break
        start, end, count = bi[r, B_START], bi[r, B_END], bi[r, B_COUNT]
        last = ints[s, LAST_END]
        if last != 0 and (count > 1 or start >= last):
            size = end - start
            step = (size / count if count > 1 else float(start - last + size)) / 1e9
            cadence = floats[s, CADENCE]
            if cadence == 0.0:
                floats[s, CADENCE] = step
            else:
                cap = GAP_CLIP * cadence
                floats[s, CADENCE] = cadence + GAP_WEIGHT * (
                    (step if step < cap else cap) - cadence
                )
        ints[s, LAST_END] = end
        floats[s, BASELINE] = bf[r, B_MEAN]
        ints[s, CALM] += 1
        r += 1
    return r


class Block:
    """Windows closed by one loop (and the touches behind them), with the output list and the
    place in it that the shard's queue gives them (``ShardState._score``), and once scored,
    per row: whether it is calm (``shard._calm``), which of ``batches`` scored it (-1: none,
    its sensor's own scorer does) and its row there."""

    __slots__ = ("batches", "bf", "bi", "calm", "j", "n", "out", "pos", "which")

    def __init__(self, bi: I8, bf: F8, n: int, out: list[Any], pos: int) -> None:
        self.bi, self.bf, self.n, self.out, self.pos = bi, bf, n, out, pos
        self.calm: NDArray[np.bool_] = np.zeros(n, dtype=bool)
        self.which: I8 = np.full(n, -1, dtype=np.int64)
        self.j: I8 = np.zeros(n, dtype=np.int64)
        self.batches: list[Any] = []


class Stretch:
    """Rows of one ``Rows`` from ``lo`` for the lane to fold in ``ShardState.ingest``, which
    sets ``stop``, the first row it left to the object path (``hi``: none). One per ``Rows``,
    moved on from stretch to stretch: the blocks of its stretches share its arrays (``used``
    rows of them taken), and its closes go to the partition's queue before the next."""

    __slots__ = (
        "bf",
        "bi",
        "family",
        "hi",
        "lo",
        "pd",
        "pi",
        "slots",
        "stop",
        "ts",
        "used",
        "values",
    )

    def __init__(self, family: str, slots: I8, ts: Sequence[int], values: Sequence[float]) -> None:
        n = len(slots)
        self.family, self.slots = family, slots
        self.ts = np.array(ts, dtype=np.int64)
        self.values = np.array(values, dtype=np.float64)
        self.lo, self.hi, self.stop, self.used = 0, n, n, 0
        # A row closes every window it makes due (all but its own), and touches.
        self.bi, self.bf = block_arrays(WINDOWS * n)
        self.pd, self.pi = np.empty(n), np.empty((n, 2), dtype=np.int64)


class Lane:
    """The sensors in the lane: their rows in ``ints`` and ``floats``, by slot; each slot's key and
    ``_Sensor`` (whose own fields are stale while it is here), and the indexes the loops use."""

    def __init__(self) -> None:
        self.ints: I8 = np.zeros((0, NI), dtype=np.int64)
        self.floats: F8 = np.zeros((0, NF))
        self.keys: list[tuple[str, str]] = []
        self.sensors: list[Any] = []
        self.scorers: list[Any] = []  # the ColumnScorers of sensors in the lane
        self.scorer_index: dict[int, int] = {}  # id(scorer) -> its index (``scorers`` holds it)
        self.free: list[int] = []
        self.index: dict[tuple[str, str], int] = {}
        self.ids: dict[str, dict[str, int]] = {}  # family -> sensor id -> slot
        self.families: list[str] = []
        self.family_index: dict[str, int] = {}
        self.rules: dict[str, Any] = {}  # family -> the RuleSet its sensors in the lane share
        self.parts: list[Any] = []
        self.part_index: dict[int, int] = {}  # id(part) -> its index (``parts`` holds it)
        self.lead = np.zeros(5, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def part_of(self, part: Any) -> int:
        at = self.part_index.get(id(part))
        if at is None:
            at = self.part_index[id(part)] = len(self.parts)
            self.parts.append(part)
        return at

    def family_of(self, family: str) -> int:
        at = self.family_index.get(family)
        if at is None:
            at = self.family_index[family] = len(self.families)
            self.families.append(family)
        return at

    def _slot(self) -> int:
        if self.free:
            return self.free.pop()
        s = len(self.keys)
        if s == len(self.ints):
            grow = max(64, s // 2)
            self.ints = np.concatenate([self.ints, np.zeros((grow, NI), dtype=np.int64)])
            self.floats = np.concatenate([self.floats, np.zeros((grow, NF))])
        self.keys.append(("", ""))
        self.sensors.append(None)
        return s

    def scorer_of(self, cols: Any) -> int:
        at = self.scorer_index.get(id(cols))
        if at is None:
            at = self.scorer_index[id(cols)] = len(self.scorers)
            self.scorers.append(cols)
        return at

    def adopt(self, sensors: list[tuple[tuple[str, str], Any]], never: int) -> None:
        """Take sensors in (``ShardState._laneable`` said each may come): their rows from their
        fields, written at once. ``never``: the windows' "no window" (``windows._NEVER``)."""
        slots = [self._slot() for _ in sensors]
        ints: list[list[int]] = []
        floats: list[list[float]] = []
        for (key, sensor), s in zip(sensors, slots, strict=True):
            win, alerts = sensor.windows, sensor.alerts
            row = [EMPTY] * NI
            row[MAX_TS], row[CLOSED_UNTIL] = win.max_ts, win.closed_until
            row[NEXT_CLOSE] = EMPTY if win.next_close == never else win.next_close
            row[LAST_END], row[CLOSED_END], row[CALM] = (
                sensor.last_end,
                sensor.closed_end,
                alerts.calm,
            )
            row[PART], row[FAM] = self.part_of(sensor.part), self.family_of(key[0])
            row[LIVE], row[OPENED] = 1, len(win.open)
            row[CSLOT], row[SCORER] = sensor.slot, self.scorer_of(sensor.cols)
            f = [0.0] * NF
            f[HEARD], f[GAP], f[CADENCE] = sensor.heard, sensor.gap, sensor.cadence
            f[BATCH], f[BASELINE] = sensor.batch, alerts.baseline
            for k, (start, (count, total, lo, hi)) in enumerate(win.open.items()):
                row[W0 + 3 * k], row[W0 + 3 * k + 1], row[W0 + 3 * k + 2] = start, count, k
                f[WF + 3 * k], f[WF + 3 * k + 1], f[WF + 3 * k + 2] = total, lo, hi
            ints.append(row)
            floats.append(f)
            self.keys[s], self.sensors[s] = key, sensor
            self.index[key] = s
            self.ids.setdefault(key[0], {})[key[1]] = s
            sensor.lane = s
        if slots:
            self.ints[slots] = ints
            self.floats[slots] = floats

    def evict(self, sensor: Any, never: int) -> None:
        """Hand a sensor back to the object path: its fields from its row. Its slot is free for
        the next ``adopt``, which comes only once the shard's queue is drained, so a queued
        block's rows still name it."""
        s = sensor.lane
        _write_back(sensor, self.ints[s].tolist(), self.floats[s].tolist(), never)
        self._free(s)

    def _free(self, s: int) -> None:
        self.ints[s, LIVE] = 0
        key = self.keys[s]
        del self.index[key]
        del self.ids[key[0]][key[1]]
        self.free.append(s)
        self.sensors[s].lane = NOT_LANED

    def sync_all(self, never: int) -> None:
        """Every sensor's fields from its row, each staying in the lane (a snapshot's copy)."""
        slots = list(self.index.values())
        rows, fs = self.ints[slots].tolist(), self.floats[slots].tolist()
        for s, row, f in zip(slots, rows, fs, strict=True):
            _write_back(self.sensors[s], row, f, never)

    def evict_all(self, never: int) -> None:
        """Hand every sensor back (``evict``)."""
        self.sync_all(never)
        for s in list(self.index.values()):
            self._free(s)

    def slots_of(self, family: str, ids: Sequence[str]) -> I8 | None:
        """Each id's slot (``NOT_LANED``: not in the lane); None when none of the family is."""
        known = self.ids.get(family)
        if not known:
            return None
        return np.array(list(map(known.get, ids, repeat(NOT_LANED))), dtype=np.int64)

    def slots_of_keys(self, keys: Sequence[tuple[str, str]]) -> I8:
        return np.array(list(map(self.index.get, keys, repeat(NOT_LANED))), dtype=np.int64)

    def silent(self, at: list[float], limit: float) -> set[int]:
        """The slots of sensors silent for ``limit`` or longer by their cadence
        (``shard._limit_of``), by their partitions' input times ``at`` (``parts``' order)."""
        n = len(self.keys)
        if not len(self.index) or not n:
            return set()
        row, f = self.ints[:n], self.floats[:n]
        silence = np.array(at, dtype=np.float64)[row[:, PART]] - f[:, HEARD]
        floor = np.maximum(limit, SILENCE_GAPS * f[:, CADENCE])
        return set(np.flatnonzero((row[:, LIVE] == 1) & (silence >= floor)).tolist())


def _write_back(sensor: Any, row: list[int], f: list[float], never: int) -> None:
    """A sensor's fields from its row (as lists)."""
    win, alerts = sensor.windows, sensor.alerts
    opened = sorted(
        (row[W0 + 3 * k + 2], row[W0 + 3 * k], k)
        for k in range(WINDOWS)
        if row[W0 + 3 * k] != EMPTY
    )
    win.open = {
        start: [row[W0 + 3 * k + 1], f[WF + 3 * k], f[WF + 3 * k + 1], f[WF + 3 * k + 2]]
        for _, start, k in opened
    }
    win.max_ts, win.closed_until = row[MAX_TS], row[CLOSED_UNTIL]
    win.next_close = never if row[NEXT_CLOSE] == EMPTY else row[NEXT_CLOSE]
    sensor.last_end, sensor.closed_end = row[LAST_END], row[CLOSED_END]
    alerts.calm, alerts.baseline = row[CALM], f[BASELINE]
    sensor.heard, sensor.gap, sensor.cadence = f[HEARD], f[GAP], f[CADENCE]
    sensor.batch = f[BATCH]


def block_arrays(rows: int) -> tuple[I8, F8]:
    return np.empty((rows, 5), dtype=np.int64), np.empty((rows, 4))


def warm() -> None:
    """Compile (or load from the cache) the loops, as ``columns.warm`` does the scorer's."""
    lane = Lane()
    n = 1
    bi, bf = block_arrays(3)
    pd, pi = np.empty(1), np.empty((1, 2), dtype=np.int64)
    z = np.zeros(n, dtype=np.int64)
    fold(z - 1, z, np.zeros(n), 0, n, lane.ints, lane.floats, 1, 0, EMPTY, 0, 0, 0, 0,
         0.0, 0.0, 0.0, lane.lead, False, False, bi, bf, pd, pi)  # fmt: skip
    expire(z - 1, z, 0, n, lane.ints, lane.floats, z, 0, 0, 0.0, 0.0, 0.0, bi, bf, pd, pi)
    quiet(bi, bf, np.zeros(1, dtype=bool), 0, 0, lane.ints, lane.floats)
