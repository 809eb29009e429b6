"""Windows to close by input time: a partition's timers, grouped by when they are due. Pure.

Why grouped (issue 28): the sensors of a fleet read on the same ticks, so most of a partition's
windows fall due at the same input time (in the harness's 100k-sensor workload, a hundred
thousand at each of a handful of times). A heap of ``(due, sensor, next_close)`` broke every one
of those ties by comparing sensor ids, in every sift. Here a heap holds each distinct due once,
and a list per due holds its windows in the order they were queued.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from operator import itemgetter

# A queued close: (the sensor's key, the ``next_close`` it was queued for).
Close = tuple[tuple[str, str], int]


class CloseQueue:
    """Closes queued by due (input time, seconds): ``take`` gives the earliest due's, in the
    order they were queued. An entry goes stale when the sensor's own readings close the window
    first: the reader checks ``next_close`` and skips it."""

    __slots__ = ("by_due", "dues")

    def __init__(self, entries: Iterable[tuple[float, tuple[str, str], int]] = ()) -> None:
        self.dues: list[float] = []  # a heap: each due with a list in ``by_due`` once
        self.by_due: dict[float, list[Close]] = {}
        for due, key, next_close in sorted(entries, key=itemgetter(0)):  # stable: queue order
            self.push(due, key, next_close)

    def push(self, due: float, key: tuple[str, str], next_close: int) -> None:
        """Queue the close of ``key``'s window that closes at ``next_close``, due at ``due``."""
        group = self.by_due.get(due)
        if group is None:
            self.by_due[due] = [(key, next_close)]
            heapq.heappush(self.dues, due)
        else:
            group.append((key, next_close))

    def push_all(
        self,
        dues: list[float],
        slots: list[int],
        nexts: list[int],
        keys: list[tuple[str, str]],
    ) -> None:
        """``push(dues[i], keys[slots[i]], nexts[i])`` for each ``i``, in order: the closes a
        loop of the shard's lane queued (``dataflow.lane``), whose runs share a due."""
        by_due, heap = self.by_due, self.dues
        last = float("nan")
        group: list[Close] = []
        for due, slot, next_close in zip(dues, slots, nexts, strict=True):
            if due != last:
                found = by_due.get(due)
                if found is None:
                    found = by_due[due] = []
                    heapq.heappush(heap, due)
                group, last = found, due
            group.append((keys[slot], next_close))

    def first(self) -> float | None:
        """The earliest due, or None when nothing is queued."""
        return self.dues[0] if self.dues else None

    def take(self, at: float) -> list[Close] | None:
        """Remove and return the earliest due's closes if it is at or before ``at``, else None.
        What is pushed while they are handled is queued anew (a push at the same due makes a
        new group, taken once any earlier due's are)."""
        dues = self.dues
        if not dues or dues[0] > at:
            return None
        return self.by_due.pop(heapq.heappop(dues))

    def clear(self) -> None:
        self.dues.clear()
        self.by_due.clear()

    def __len__(self) -> int:
        return sum(map(len, self.by_due.values()))

    def entries(self) -> list[tuple[float, tuple[str, str], int]]:
        """Every queued close as ``(due, key, next_close)``, by due and, within a due, in the
        order queued: the form a snapshot keeps, so a restored flow takes them in the order it
        would have. Snapshots of format v14 from before this queue held a heap of the same
        tuples, which ``CloseQueue(entries)`` reads too (its ties then in the heap's order, once,
        where the code before took them by sensor id: the same windows, in another order)."""
        return [(due, key, nc) for due in sorted(self.by_due) for key, nc in self.by_due[due]]
