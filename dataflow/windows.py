"""Per-sensor tumbling event-time windows.

Pure window maths, no Kafka or Bytewax. Each sensor keeps its own event clock (the largest
timestamp it has sent), as Bytewax's ``EventClock`` does per key: a window ``[start, end)`` closes
when that sensor's clock reaches ``end + lateness``. A shard-wide clock would make every reading of
a lagging partition late. Windows are aligned to the Unix epoch, so all sensors share boundaries.

Every reading that is accepted lands in exactly one window, and a window's mean is the mean of all
of them: the "5 s average over one reading" bug of the tutorial this project replaces cannot
happen, because nothing is emitted until the window closes.

A window's running sum is a plain float sum, exact as float addition goes. It cannot overflow for
the readings the flow accepts: each family's valid range lies within ``readings.MAX_MAGNITUDE``.
Should a caller add larger values anyway, a closed window's mean is still finite, held within its
min and max (``_finite_mean``), though then not exact.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import reduce
from operator import add
from typing import Any, Final, NamedTuple

from dataflow.pickled import State, restore, state_of

_NEVER: Final = 1 << 126
# What a snapshot keeps of a sensor's windows (``dataflow.pickled``), in ``__slots__``' order.
_STATE = ("closed_until", "max_ts", "next_close", "open")
_JUMPS = ("gaps", "restart_at", "skip_from", "skip_to")
GAPS = 4  # stretches jumped over that a sensor keeps (``Jumps``)


class WindowStats(NamedTuple):
    """Summary of one closed window; times are ns since the epoch, ``end`` exclusive."""

    start: int
    end: int
    # Shadows ``tuple.count`` (mypy: incompatible with the base class); the name is the wire's
    # and the tests', and a window's stats are never searched with ``count(x)``.
    count: int  # type: ignore[assignment]
    mean: float
    min: float
    max: float


class SensorWindows:
    """Open windows of one sensor, with that sensor's event clock.

    ``open`` maps window start -> ``[count, sum, min, max]``. At most
    ``1 + ceil(lateness / size)`` windows are open at once, so closing looks at a handful of
    entries, never at other sensors.
    """

    __slots__ = _STATE

    def __init__(self) -> None:
        # [count, sum, min, max]: Any, not float, as the count is an int (a compiled build would
        # make an int in a ``list[float]`` a float, and the window's count with it).
        self.open: dict[int, list[Any]] = {}
        self.max_ts = -_NEVER
        self.closed_until = -_NEVER  # end of the last closed window: earlier readings are late
        self.next_close = _NEVER  # sensor clock at which the earliest open window closes

    def __getstate__(self) -> State:
        return state_of(self, _STATE)

    def __setstate__(self, state: State) -> None:
        restore(self, state)

    def add(self, ts: int, value: float, size: int, lateness: int) -> bool:
        """Add a reading; return False (and change nothing) when its window has closed."""
        if ts < self.closed_until:
            return False
        start = ts - ts % size
        acc = self.open.get(start)
        if acc is None:
            self.open[start] = [1, value, value, value]
            close_at = start + size + lateness
            if close_at < self.next_close:
                self.next_close = close_at
        else:
            acc[0] += 1
            acc[1] += value
            if value < acc[2]:
                acc[2] = value
            elif value > acc[3]:
                acc[3] = value
        if ts > self.max_ts:
            self.max_ts = ts
        return True

    def add_sorted(
        self, ts: tuple[int, ...], values: tuple[float, ...], size: int, lateness: int
    ) -> None:
        """Add a run of readings whose times never decrease and start at or after
        ``closed_until``; nothing closes here. Whether none of them would have been late one by
        one (a window of the run already due by the sensor's clock closes at its first reading)
        is the caller's to know: ``ShardState`` folds a run whole only then.

        The same windows as ``add`` one by one, to the last bit: sums run in reading order from
        the window's running sum, and ``min``/``max`` keep the first of equal values as ``add``
        does. Each window's slice is folded by C loops instead of a Python step per reading.
        """
        first, last = ts[0], ts[-1]
        start = first - first % size
        end = start + size
        if last < end:
            self._fold(start, values, size, lateness)
        else:
            lo, n = 0, len(ts)
            while lo < n:
                hi = bisect_left(ts, end, lo)  # > lo: ts[lo] is in [start, end)
                self._fold(start, values[lo:hi], size, lateness)
                if hi < n:
                    t = ts[hi]
                    start = t - t % size
                    end = start + size
                lo = hi
        if last > self.max_ts:
            self.max_ts = last

    def _fold(self, start: int, values: tuple[float, ...], size: int, lateness: int) -> None:
        acc = self.open.get(start)
        if acc is None:
            # -0.0 is the identity of float addition: the first reading's sum is itself.
            self.open[start] = [len(values), _sum(values, -0.0), min(values), max(values)]
            close_at = start + size + lateness
            if close_at < self.next_close:
                self.next_close = close_at
        else:
            acc[0] += len(values)
            acc[1] = _sum(values, acc[1])
            lo, hi = min(values), max(values)
            if lo < acc[2]:
                acc[2] = lo
            if hi > acc[3]:
                acc[3] = hi

    def closed_any(self) -> bool:
        """Whether a window of this sensor has been closed (or its clock restarted)."""
        return self.closed_until != -_NEVER

    def due(self) -> bool:
        """Whether the sensor's clock has passed the close time of its earliest window."""
        return self.max_ts >= self.next_close

    def close_due(self, size: int, lateness: int) -> list[WindowStats]:
        """Close, oldest first, every window whose ``end + lateness`` the clock has reached."""
        return self.close_at(self.max_ts, size, lateness)

    def close_at(self, clock: int, size: int, lateness: int) -> list[WindowStats]:
        """Close, oldest first, every window that a sensor clock at ``clock`` would close.

        For a clock that ran on without readings (a live sensor, by the wall clock): the
        sensor's own ``max_ts`` is left alone.
        """
        horizon = clock - lateness - size  # windows starting at or before this are due
        first = self.next_close - size - lateness  # the earliest open window
        if first > horizon:
            return []
        if first + size > horizon:
            # The usual case, without building lists: windows are aligned, so any other open
            # window starts at least ``size`` later and is not due. At a fleet's scale every
            # reading closes a window, by its sensor's next readings or by input time.
            count, total, lo, hi = self.open.pop(first)
            end = first + size
            if end > self.closed_until:
                self.closed_until = end
            self._next_close(end, size, lateness)
            mean = total / count
            if mean - mean != 0.0:  # inf or nan: the sum overflowed
                mean = _finite_mean(total, lo, hi)
            return [_new(WindowStats, (first, end, count, mean, lo, hi))]
        return self._close([s for s in self.open if s <= horizon], size, lateness)

    def close_all(self, size: int, lateness: int) -> list[WindowStats]:
        """Close every open window (idle timeout, end of input)."""
        return self._close(list(self.open), size, lateness)

    def _close(self, starts: list[int], size: int, lateness: int) -> list[WindowStats]:
        out = []
        opened = self.open
        if len(starts) > 1:
            starts.sort()
        for start in starts:
            count, total, lo, hi = opened.pop(start)
            mean = total / count
            if mean - mean != 0.0:
                mean = _finite_mean(total, lo, hi)
            out.append(_new(WindowStats, (start, start + size, count, mean, lo, hi)))
        if starts:
            end = starts[-1] + size
            if end > self.closed_until:
                self.closed_until = end
            self._next_close(end, size, lateness)
        return out

    def relate(self, size: int, lateness: int) -> None:
        """Re-derive the next close time under another lateness (a restore whose settings
        changed): the close time of the earliest open window is kept, not searched for."""
        self.next_close = min(self.open) + size + lateness if self.open else _NEVER

    def reopen_after(self, ts: int) -> None:
        """Readings after ``ts`` are not late, whatever was closed (a window length changed: the
        old windows were closed as they were, and the new ones take what follows)."""
        if ts + 1 < self.closed_until:
            self.closed_until = ts + 1

    def _next_close(self, after: int, size: int, lateness: int) -> None:
        """Set the next close time once the windows before ``after`` are closed."""
        opened = self.open
        if after in opened:  # the next window is usually open: no scan for the earliest
            self.next_close = after + size + lateness
        else:
            self.next_close = min(opened) + size + lateness if opened else _NEVER


def _finite_mean(total: float, lo: float, hi: float) -> float:
    """The mean of finite readings whose sum overflowed: the bound it ran past, else halfway."""
    if total == float("inf"):
        return hi
    if total == float("-inf"):
        return lo
    return lo / 2 + hi / 2  # both signs overflowed; halves, so this sum cannot


# A NamedTuple without its Python-level __new__: a window is made per close.
_new: Final = tuple.__new__


def _sum_in_order(values: tuple[float, ...], start: float) -> float:
    return reduce(add, values, start)


# CPython 3.11's ``sum`` adds floats one by one, as ``add`` does; 3.12's compensates for rounding,
# which would make a window's sum depend on how its readings were batched.
_sum = sum if sum((1e16, 1.0, -1e16)) == 0.0 else _sum_in_order


class Jumps:
    """Where a sensor's windows were jumped over, and what a restart of its clock must not
    write again: kept apart from ``SensorWindows`` (which every reading touches, and which one
    more field would make a cache line longer) and made only for a sensor whose windows left a
    long stretch unwritten.

    ``gaps``: the last ``GAPS`` stretches ``(from, to)`` between two written windows where none
    was, each longer than the sensor's usual spacing (its clock jumped over them, or it fell
    silent): only there may a clock that comes back restart (``restart_skip``); several, as a
    clock may jump twice before it comes back. ``[skip_from, skip_to)``: after a restart, the
    windows written under the old clock, whose readings are late for the new one (none:
    ``skip_from`` past any time). ``restart_at``: where the last restart began; windows before
    it scored after it are the old clock's and record nothing.
    """

    __slots__ = _JUMPS

    def __init__(self) -> None:
        self.gaps: list[tuple[int, int]] = []
        self.skip_from, self.skip_to = _NEVER, -_NEVER
        self.restart_at = -_NEVER

    def __getstate__(self) -> State:
        return state_of(self, _JUMPS)

    def __setstate__(self, state: State) -> None:
        """Only the names it has now (a build of the same day kept a single stretch)."""
        self.__init__()  # type: ignore[misc]
        restore(self, (None, {k: v for k, v in state[1].items() if k in _JUMPS}))

    def gap(self, last: int, start: int) -> None:
        """A window starting at ``start`` was written after one ending at ``last``, a long
        stretch before it: that stretch, less the windows a restart's skip holds, was not. A
        window of the old clock scored after a restart says nothing."""
        if start < self.restart_at or self.skip_from <= start < self.skip_to:
            return
        gaps = self.gaps
        for low, high in ((last, min(start, self.skip_from)), (max(last, self.skip_to), start)):
            if low < high and (low, high) not in gaps:
                gaps.append((low, high))
        if len(gaps) > 1 and gaps[-2] > gaps[-1]:
            gaps.sort()  # by place, so the last ends latest (``wrote``'s first test)
        del gaps[:-GAPS]

    def wrote(self, start: int, end: int) -> None:
        """A window ``[start, end)`` was closed: it is no longer in any stretch (a reading far
        behind its clock, in a stretch jumped over, writes its window at once)."""
        gaps = self.gaps
        if not gaps or start >= gaps[-1][1]:  # after every stretch: the usual case
            return
        if any(low < end and start < high for low, high in gaps):
            cut = [(low, min(high, start)) for low, high in gaps] + [
                (max(low, end), high) for low, high in gaps
            ]
            gaps[:] = sorted(g for g in cut if g[0] < g[1])[-GAPS:]

    def skips(self, ts: int) -> bool:
        """Whether ``ts`` falls in a window the old clock wrote (late for the new one)."""
        return self.skip_from <= ts < self.skip_to


def restart_skip(win: SensorWindows, jumps: Jumps | None, ts: int, size: int) -> int | None:
    """Whether a sensor's clock may restart at ``ts`` (``rebase``): only into a window never
    written, which the windows written under the old clock follow. The start of the first of
    those (closed, or open and to be closed first), which the new clock must not write again;
    None where ``ts``'s window was written or is open: ``ts`` is only late (a delayed reading,
    not a clock set back), and no window is written twice."""
    start = ts - ts % size
    end = start + size
    opened = win.open
    if start in opened:
        return None
    if jumps is not None:
        for low, high in reversed(jumps.gaps):
            if low <= start and end <= high:
                return high  # open windows are later still
        if jumps.skips(start):
            return None
    if start < win.closed_until:
        return None
    later = [s for s in opened if s > start]
    if jumps is not None and jumps.skip_from > start and jumps.skip_to > jumps.skip_from:
        later.append(jumps.skip_from)
    return min(later) if later else None


def rebase(win: SensorWindows, jumps: Jumps | None, ts: int, size: int, skip: int) -> Jumps:
    """Start again at ``ts``'s window, every window closed first: the sensor's clock had stepped
    forward and has come back, so what is behind its old clock is not late, up to ``skip``
    (``restart_skip``), where the windows written under the old clock begin. Returns the
    sensor's ``Jumps`` after it: the stretches before ``ts``'s window stay unwritten; the rest
    the new clock writes."""
    assert not win.open, "close the open windows first"
    start = ts - ts % size
    after = Jumps()
    after.skip_from, after.skip_to, after.restart_at = skip, win.closed_until, start
    if jumps is not None:
        after.gaps = [(low, min(high, start)) for low, high in jumps.gaps if low < start]
        if jumps.skip_to > start:  # an earlier restart's, still ahead
            after.skip_from = min(skip, jumps.skip_from)
            after.skip_to = max(win.closed_until, jumps.skip_to)
    win.closed_until = start
    win.max_ts = -_NEVER
    win.next_close = _NEVER
    return after
