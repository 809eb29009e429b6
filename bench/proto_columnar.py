"""A prototype of the column-wise shard (issue 28): what a steady fleet's shard work costs when
its per-sensor state is in slot arrays and its per-reading and per-window work is compiled.

    .venv/bin/python bench/proto_columnar.py --workload W2 --messages 1000000 --runs 3
    .venv/bin/python bench/proto_columnar.py --workload W1 --messages 1000000 --check

A measuring tool for a design, NOT the product and not equivalent to it. On the same routed
polls as ``bench/inproc.py`` (its ``polls`` and ``route``), each round runs, alternating: the
product's ``ShardState``; the prototype fed the product's hand-off (a ``Reading`` or ``Run`` per
sensor, turned into arrays by a dict lookup per reading); and the prototype fed columns
(``route_columns``: per poll one stable sort by shard, each shard's slice of ids, times and
values). The prototype keeps a shard's sensors in slot arrays (two open windows each; the
sensor's hearing, gap, cadence, last window end, baseline, clean count), a binary heap per
partition of closes by input time keyed by (due, queue order), and does in Numba the window add,
the closes by a sensor's own clock and by input time, the gap between hearings and the clean
window's bookkeeping; the closed windows are scored by the product's
``ColumnScorer.score_batch``. It only COUNTS the rows a real engine would hand to Python (late
readings, readings behind their sensor's clock, a third open window, a window the model or the
temperature rule would not call clean).
Left out: the partition lead (input time here is the latest event time read, capped by the wall
clock), alerts, rules but the temperature threshold, silence queues, TTL, snapshots, machines.

``--check`` compares the windows it closes (family, sensor, start, count, mean, min, max) with
``ShardState``'s (``EMIT_ALL_WINDOWS=true``), both hand-offs: on the workloads (in order, no row
for Python) they must be the same, so the timings compare the same windowing work. Figures:
``bench/RESULTS.md``, "Seventeenth session".
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from typing import Any

import inproc
import numpy as np
import workloads as wl
from numba import njit
from numpy.typing import NDArray

from dataflow.config import Settings
from dataflow.flow import ShardConfig, shard_config
from dataflow.model.columns import ColumnScorer
from dataflow.model.columns import warm as load_compiled_scorer
from dataflow.progress import Beat
from dataflow.readings import Format, Reading, Rows, Run, formats_by_topic, parse_poll
from dataflow.routing import KeyCache, _learn_key, route
from dataflow.runtime import tune_gc

F8 = NDArray[np.float64]
I8 = NDArray[np.int64]
B1 = NDArray[np.bool_]
NEVER = np.int64(1 << 62)
NF = 12  # float fields per sensor
NI = 6  # int fields per sensor
HEARD, GAP, BATCH, CAD, BASE, CALM, S0, S1, LO0, LO1, HI0, HI1 = range(NF)  # float fields
MAXTS, CLOSED, NEXT, LASTEND, ST0, ST1 = range(NI)  # int fields (ST: open windows' starts)
Window = tuple[str, str, int, int, float, float, float]  # family, sensor, start, count, mean, ...
Segment = tuple[str, str, list[str], I8, F8]  # partition, family, ids, times, values


@njit(cache=True)
def _push(hd: F8, hs: I8, hk: I8, hn: I8, hseq: I8, p: int, due: float, slot: int, nc: int) -> None:
    """A binary heap per partition of (due, seq) -> (slot, next_close)."""
    n = hn[p]
    if n >= hd.shape[1]:  # Numba does not check bounds: a full heap would write past its end
        raise IndexError("a partition's heap of closes is full: raise the shard's capacity")
    seq = hseq[p]
    hseq[p] += 1
    i = n
    hn[p] = n + 1
    while i > 0:
        j = (i - 1) >> 1
        if hd[p, j] < due or (hd[p, j] == due and hs[p, j] < seq):
            break
        hd[p, i] = hd[p, j]
        hs[p, i] = hs[p, j]
        hk[p, i, 0] = hk[p, j, 0]
        hk[p, i, 1] = hk[p, j, 1]
        i = j
    hd[p, i] = due
    hs[p, i] = seq
    hk[p, i, 0] = slot
    hk[p, i, 1] = nc


@njit(cache=True)
def _pop(hd: F8, hs: I8, hk: I8, hn: I8, p: int) -> tuple[int, int]:
    n = hn[p] - 1
    hn[p] = n
    slot, nc = hk[p, 0, 0], hk[p, 0, 1]
    due, seq = hd[p, n], hs[p, n]
    k0, k1 = hk[p, n, 0], hk[p, n, 1]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        right = c + 1
        if right < n and (
            hd[p, right] < hd[p, c] or (hd[p, right] == hd[p, c] and hs[p, right] < hs[p, c])
        ):
            c = right
        if due < hd[p, c] or (due == hd[p, c] and seq < hs[p, c]):
            break
        hd[p, i] = hd[p, c]
        hs[p, i] = hs[p, c]
        hk[p, i, 0] = hk[p, c, 0]
        hk[p, i, 1] = hk[p, c, 1]
        i = c
    if n > 0:
        hd[p, i] = due
        hs[p, i] = seq
        hk[p, i, 0] = k0
        hk[p, i, 1] = k1
    return slot, nc


@njit(cache=True)
def _close_upto(
    s: int,
    horizon: int,
    size: int,
    lateness: int,
    fv: F8,
    iv: I8,
    cnt: F8,
    out_s: I8,
    out_f: F8,
    out_i: I8,
    m: int,
) -> int:
    """Close the sensor's windows starting at or before ``horizon``, oldest first."""
    for _ in range(2):
        k = -1
        if iv[s, ST0] >= 0 and (iv[s, ST1] < 0 or iv[s, ST0] <= iv[s, ST1]):
            k = 0
        elif iv[s, ST1] >= 0:
            k = 1
        if k < 0 or iv[s, ST0 + k] > horizon:
            break
        start = iv[s, ST0 + k]
        out_s[m] = s
        out_i[m] = start
        out_f[m, 0] = cnt[s, k]
        out_f[m, 1] = fv[s, S0 + k] / cnt[s, k]
        out_f[m, 2] = fv[s, LO0 + k]
        out_f[m, 3] = fv[s, HI0 + k]
        m += 1
        iv[s, ST0 + k] = -1
        end = start + size
        if end > iv[s, CLOSED]:
            iv[s, CLOSED] = end
    # next close: the earliest window left
    a, b = iv[s, ST0], iv[s, ST1]
    if a >= 0 and (b < 0 or a <= b):
        iv[s, NEXT] = a + size + lateness
    elif b >= 0:
        iv[s, NEXT] = b + size + lateness
    else:
        iv[s, NEXT] = NEVER
    return m


@njit(cache=True)
def ingest(
    slots: I8, ts: I8, vals: F8, parts: I8, bases: F8, now: float, size: int, lateness: int,
    idle: float, fv: F8, iv: I8, cnt: F8, part_of: I8, hd: F8, hs: I8, hk: I8, hn: I8,
    hseq: I8, pin: F8, out_s: I8, out_f: F8, out_i: I8, m: int, counts: I8,
) -> int:  # fmt: skip
    """Fold readings in order; returns the closed windows' count. counts[0]: rows for Python."""
    now_ns = np.int64(now * 1e9)
    seg = np.int64(0)
    cur = -1
    for i in range(len(slots)):
        s = slots[i]
        t = ts[i]
        v = vals[i]
        p = parts[i]
        if p != cur:
            if cur >= 0 and seg and seg / 1e9 > pin[cur]:
                pin[cur] = seg / 1e9
            cur = p
            seg = np.int64(0)
        if t < iv[s, CLOSED] or t + size + lateness <= iv[s, MAXTS]:
            counts[0] += 1  # late or far behind: Python's
            continue
        before = iv[s, NEXT]
        start = t - t % size
        top = t if t > iv[s, MAXTS] else iv[s, MAXTS]
        horizon = top - lateness - size
        if start <= horizon:
            # Behind its sensor's clock: ShardState adds it and closes its window at once.
            counts[0] += 1  # Python's
            continue
        # The windows the sensor's clock closes, which ShardState closes after the add; this
        # reading's is not among them (start > horizon), so closing them first is the same
        # and frees their slots.
        if top >= iv[s, NEXT]:
            m = _close_upto(s, horizon, size, lateness, fv, iv, cnt, out_s, out_f, out_i, m)
        if iv[s, ST0] == start:
            k = 0
        elif iv[s, ST1] == start:
            k = 1
        elif iv[s, ST0] < 0:
            k = 0
        elif iv[s, ST1] < 0:
            k = 1
        else:
            counts[0] += 1  # a third window open: Python's
            continue
        if iv[s, ST0 + k] != start:
            iv[s, ST0 + k] = start
            cnt[s, k] = 1
            fv[s, S0 + k] = v
            fv[s, LO0 + k] = v
            fv[s, HI0 + k] = v
            ca = start + size + lateness
            if ca < iv[s, NEXT]:
                iv[s, NEXT] = ca
        else:
            cnt[s, k] += 1
            fv[s, S0 + k] += v
            if v < fv[s, LO0 + k]:
                fv[s, LO0 + k] = v
            elif v > fv[s, HI0 + k]:
                fv[s, HI0 + k] = v
        if t > iv[s, MAXTS]:
            iv[s, MAXTS] = t
        last = t if t < now_ns else now_ns
        if last > seg:
            seg = last
        heard = seg / 1e9
        if heard < bases[i]:
            heard = bases[i]
        if fv[s, BATCH] != now:
            gap = heard - fv[s, HEARD] if fv[s, BATCH] >= 0 else 0.0
            if gap < 0.0:
                gap = 0.0
            g = fv[s, GAP]
            if g == 0.0:
                fv[s, GAP] = gap
            else:
                cap = 4.0 * g
                if gap > cap:
                    gap = cap
                if gap > g and gap > 2.0 * fv[s, CAD]:
                    fv[s, GAP] = gap
                else:
                    fv[s, GAP] = g + 0.1 * (gap - g)
            fv[s, BATCH] = now
        fv[s, HEARD] = heard
        part_of[s] = p
        if iv[s, NEXT] != before and iv[s, NEXT] < NEVER:
            due = heard + _wait(fv, iv, cnt, s, idle) + (iv[s, NEXT] - iv[s, MAXTS]) / 1e9
            _push(hd, hs, hk, hn, hseq, p, due, s, iv[s, NEXT])
    if cur >= 0 and seg and seg / 1e9 > pin[cur]:
        pin[cur] = seg / 1e9
    return m


@njit(cache=True)
def _wait(fv: F8, iv: I8, cnt: F8, s: int, idle: float) -> float:
    """``shard._close_wait``: a sensor heard once waits ``idle`` if that hearing brought more
    than a reading (a window closed, or one holding two), else nothing."""
    cad, gap = fv[s, CAD], fv[s, GAP]
    if gap == 0.0:
        if (
            iv[s, CLOSED] != -NEVER
            or (iv[s, ST0] >= 0 and cnt[s, 0] > 1)
            or (iv[s, ST1] >= 0 and cnt[s, 1] > 1)
        ):
            return idle
        return 0.0
    w = gap - cad
    if w <= 0.0 or cad == 0.0:
        return 0.0
    return w if w < idle else idle


@njit(cache=True)
def expire(
    p: int, at: float, size: int, lateness: int, idle: float, fv: F8, iv: I8, cnt: F8,
    part_of: I8, hd: F8, hs: I8, hk: I8, hn: I8, hseq: I8, out_s: I8, out_f: F8, out_i: I8,
    m: int,
) -> int:  # fmt: skip
    """Close the windows of partition ``p`` that its input time ``at`` has reached."""
    while hn[p] > 0 and hd[p, 0] <= at:
        s, nc = _pop(hd, hs, hk, hn, p)
        if part_of[s] != p or iv[s, NEXT] != nc:
            continue
        w = _wait(fv, iv, cnt, s, idle)
        due = fv[s, HEARD] + w + (nc - iv[s, MAXTS]) / 1e9
        if at < due:
            _push(hd, hs, hk, hn, hseq, p, due, s, nc)
            continue
        clock = iv[s, MAXTS] + np.int64(round((at - fv[s, HEARD] - w) * 1e9))
        if clock < nc:
            clock = nc
        m = _close_upto(
            s, clock - lateness - size, size, lateness, fv, iv, cnt, out_s, out_f, out_i, m
        )
        if iv[s, NEXT] < NEVER:
            due = fv[s, HEARD] + w + (iv[s, NEXT] - iv[s, MAXTS]) / 1e9
            _push(hd, hs, hk, hn, hseq, p, due, s, iv[s, NEXT])
    return m


@njit(cache=True)
def quiet(
    out_s: I8, out_f: F8, out_i: I8, n: int, calm: B1, size: int, fv: F8, iv: I8, counts: I8
) -> None:
    """The clean window's bookkeeping per closed window, in order; others counted for Python."""
    for r in range(n):
        s = out_s[r]
        if not calm[r]:
            counts[1] += 1
            continue
        start = out_i[r]
        c = out_f[r, 0]
        last = iv[s, LASTEND]
        if last:
            step = (size / c if c > 1 else start - last + size) / 1e9
            cad = fv[s, CAD]
            if cad == 0.0:
                fv[s, CAD] = step
            else:
                cap = 4.0 * cad
                fv[s, CAD] = cad + 0.1 * ((step if step < cap else cap) - cad)
        iv[s, LASTEND] = start + size
        fv[s, BASE] = out_f[r, 1]
        fv[s, CALM] += 1.0


ROUTE = [0.0]  # CPU s routing
KEEP: list[Window] | None = None  # --check: every closed window
PARTS = [0.0, 0.0, 0.0]  # CPU s: readings to arrays (Python), the fold's kernels, scoring + clean


class ProtoShard:
    """One shard's sensors in slot arrays."""

    def __init__(self, config: ShardConfig, capacity: int, nparts: int) -> None:
        if len(set(config.window_ns.values())) != 1:
            raise ValueError("the prototype takes one window length for every family")
        self.config = config
        self.capacity = capacity
        self.slot_of: dict[tuple[str, str], int] = {}
        self.part_ix: dict[str, int] = {}
        self.fv = np.zeros((capacity, NF))
        self.fv[:, BATCH] = -1.0
        self.iv = np.full((capacity, NI), -1, dtype=np.int64)
        self.iv[:, MAXTS] = -NEVER
        self.iv[:, CLOSED] = -NEVER
        self.iv[:, NEXT] = NEVER
        self.iv[:, LASTEND] = 0
        self.cnt = np.zeros((capacity, 2))
        self.part_of = np.full(capacity, -1, dtype=np.int64)
        cap = 2 * capacity + 16
        self.hd = np.zeros((nparts, cap))
        self.hs = np.zeros((nparts, cap), dtype=np.int64)
        self.hk = np.zeros((nparts, cap, 2), dtype=np.int64)
        self.hn = np.zeros(nparts, dtype=np.int64)
        self.hseq = np.zeros(nparts, dtype=np.int64)
        self.pin = np.zeros(nparts)
        self.fam_ix = np.full(capacity, -1, dtype=np.int64)  # its family's place in ``cols``
        self.cols: dict[str, ColumnScorer] = {}
        self.col_slot = np.full(capacity, -1, dtype=np.int64)
        self.out_s = np.zeros(capacity * 4, dtype=np.int64)
        self.out_f = np.zeros((capacity * 4, 4))
        self.out_i = np.zeros(capacity * 4, dtype=np.int64)
        self.counts = np.zeros(2, dtype=np.int64)
        self.windows = 0
        self.by_family: dict[str, dict[str, int]] = {}

    def _new(self, key: tuple[str, str]) -> int:
        s = len(self.slot_of)
        if s >= self.capacity:
            raise ValueError(f"more than {self.capacity} sensors in a shard: raise its capacity")
        self.slot_of[key] = s
        fam = key[0]
        cols = self.cols.get(fam)
        if cols is None:
            cols = self.cols[fam] = ColumnScorer(self.config.families[fam].model, capacity=64)
        self.col_slot[s] = cols.alloc()
        self.fam_ix[s] = list(self.cols).index(fam)  # the order ``_drain`` goes through them
        return s

    def _room(self, readings: int) -> None:
        """Output rows for a call (the kernels do not check bounds): a window closed in a call
        was open at its start (two a sensor at most) or opened by one of its readings."""
        need = readings + 2 * len(self.slot_of)
        if need > len(self.out_s):
            self.out_s = np.zeros(need, dtype=np.int64)
            self.out_f = np.zeros((need, 4))
            self.out_i = np.zeros(need, dtype=np.int64)

    def ingest(self, batch: Sequence[Reading | Run | Rows | Beat], now: float) -> None:
        """A batch as ``route`` hands it: readings to slot arrays, then the compiled fold."""
        t0 = time.process_time()
        slot_of = self.slot_of
        slots: list[int] = []
        ts: list[int] = []
        vals: list[float] = []
        parts: list[int] = []
        bases: list[float] = []
        p = 0
        base = 0.0
        for item in batch:
            if type(item) is Reading:
                fam, sid, t, v, _ = item
                s = slot_of.get((fam, sid))
                if s is None:
                    s = self._new((fam, sid))
                slots.append(s)
                ts.append(t)
                vals.append(v)
                parts.append(p)
                bases.append(base)
            elif type(item) is Run:
                fam, sid, tt, vv, _ = item
                s = slot_of.get((fam, sid))
                if s is None:
                    s = self._new((fam, sid))
                slots.extend([s] * len(tt))
                ts.extend(tt)
                vals.extend(vv)
                parts.extend([p] * len(tt))
                bases.extend([base] * len(tt))
            elif type(item) is Rows:
                fam, n = item.family, len(item.ts)
                for sid in item.sensor_ids:
                    s = slot_of.get((fam, sid))
                    slots.append(self._new((fam, sid)) if s is None else s)
                ts.extend(item.ts)
                vals.extend(item.values)
                parts.extend([p] * n)
                bases.extend([base] * n)
            else:
                assert type(item) is Beat
                p = self.part_ix.setdefault(item.part, len(self.part_ix))
                base = self.pin[p]
        self._room(len(slots))
        t1 = time.process_time()
        PARTS[0] += t1 - t0
        self._fold(
            np.array(slots, dtype=np.int64), np.array(ts, dtype=np.int64),
            np.array(vals, dtype=np.float64), np.array(parts, dtype=np.int64),
            np.array(bases, dtype=np.float64), now, t1,
        )  # fmt: skip

    def ingest_columns(self, segments: list[Segment], now: float) -> None:
        """``ingest`` of ``route_columns``' hand-off: ids to slots by one lookup each."""
        t0 = time.process_time()
        slots_l: list[I8] = []
        ts_l: list[I8] = []
        vals_l: list[F8] = []
        parts_l: list[I8] = []
        bases_l: list[F8] = []
        for part, fam, sids, ts, vals in segments:
            p = self.part_ix.setdefault(part, len(self.part_ix))
            by_id = self.by_family.get(fam)
            if by_id is None:
                by_id = self.by_family[fam] = {}
            get = by_id.get
            sl = [get(x, -1) for x in sids]
            if -1 in sl:
                for j, x in enumerate(sids):
                    if sl[j] < 0:
                        s = by_id.get(x)
                        if s is None:
                            s = by_id[x] = self._new((fam, x))
                        sl[j] = s
            n = len(sl)
            slots_l.append(np.array(sl, dtype=np.int64))
            ts_l.append(ts)
            vals_l.append(vals)
            parts_l.append(np.full(n, p, dtype=np.int64))
            bases_l.append(np.full(n, self.pin[p]))
        self._room(sum(map(len, slots_l)))
        t1 = time.process_time()
        PARTS[0] += t1 - t0
        self._fold(
            np.concatenate(slots_l), np.concatenate(ts_l), np.concatenate(vals_l),
            np.concatenate(parts_l), np.concatenate(bases_l), now, t1,
        )  # fmt: skip

    def _fold(
        self, slots: I8, ts: I8, vals: F8, parts: I8, bases: F8, now: float, t1: float
    ) -> None:
        """The compiled fold of a call's readings, the closes by input time, then the scoring;
        ``t1``: when the hand-off's conversion ended (the arrays are made after it)."""
        cfg = self.config
        size = next(iter(cfg.window_ns.values()))
        m = ingest(
            slots, ts, vals, parts, bases, now, size, cfg.lateness_ns, cfg.idle_timeout_s,
            self.fv, self.iv, self.cnt, self.part_of, self.hd, self.hs, self.hk, self.hn,
            self.hseq, self.pin, self.out_s, self.out_f, self.out_i, 0, self.counts,
        )  # fmt: skip
        for p in range(len(self.part_ix)):
            m = expire(
                p, self.pin[p], size, cfg.lateness_ns, cfg.idle_timeout_s, self.fv, self.iv,
                self.cnt, self.part_of, self.hd, self.hs, self.hk, self.hn, self.hseq,
                self.out_s, self.out_f, self.out_i, m,
            )  # fmt: skip
        t2 = time.process_time()
        PARTS[1] += t2 - t1
        self._drain(m, size)
        PARTS[2] += time.process_time() - t2

    def _drain(self, m: int, size: int) -> None:
        """Score the closed windows per family, then the clean ones' bookkeeping."""
        if not m:
            return
        if KEEP is not None:
            names = list(self.slot_of)
            for r in range(m):
                fam, sid = names[self.out_s[r]]
                f = self.out_f[r]
                start = int(self.out_i[r])
                KEEP.append((fam, sid, start, int(f[0]), float(f[1]), float(f[2]), float(f[3])))
        self.windows += m
        out_s, out_f, out_i = self.out_s[:m], self.out_f[:m], self.out_i[:m]
        calm = np.ones(m, dtype=bool)
        fams = self.fam_ix[out_s]
        for k, (fam, cols) in enumerate(self.cols.items()):
            rows = np.flatnonzero(fams == k)
            if not len(rows):
                continue
            cnt = out_f[rows, 0]
            lo, hi = out_f[rows, 2], out_f[rows, 3]
            with np.errstate(all="ignore"):
                sc = (hi - lo) / (9.0 * np.sqrt(cnt))
            sc = np.where((cnt >= 2) & (hi >= lo) & (sc < np.inf), sc, 0.0)
            b = cols.score_batch(self.col_slot[out_s[rows]], out_i[rows], out_f[rows, 1], sc)
            c = ~b.ml
            if fam == "temperature":
                c &= out_f[rows, 1] < 90.0
            calm[rows] = c
        quiet(out_s, out_f, out_i, m, calm, size, self.fv, self.iv, self.counts)


def route_columns(
    batches: Sequence[Any], topics: dict[str, list[Format]], shards: int, cache: dict[str, KeyCache]
) -> dict[int, list[Segment]]:
    """Routing that hands each shard columns, not a Reading per message: per poll, the shard of
    every message (the routing cache, as ``route``), one stable sort by shard, and each shard's
    slice of the id list and of the time and value arrays. Polls of the steady state only
    (every message decodes: no dead letters, no per-message path)."""
    out: dict[int, list[Segment]] = {}
    for poll in batches:
        topic = poll[0].topic()
        part = poll.beat.part if getattr(poll, "beat", None) else topic
        kind = type(poll[0])
        values = list(map(kind.value, poll))
        for fmt in topics[topic]:
            c = cache.get(fmt.cache_key)
            if c is None:
                c = cache[fmt.cache_key] = {}
            cols = parse_poll(fmt, values, None)
            assert cols is not None
            ids = cols.ids if cols.ids is not None else list(map(kind.key, poll))
            get = c.get
            maybe = [get(k) for k in ids]
            known = [
                kn if kn is not None else _learn_key(c, k, fmt, shards)
                for k, kn in zip(ids, maybe, strict=True)
            ]
            sids = [kn[0] for kn in known]
            where = np.array([kn[1] for kn in known], dtype=np.int64)
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(shards + 1))
            ts = np.array(cols.ts, dtype=np.int64)[order]
            vals = np.array(cols.values, dtype=np.float64)[order]
            sid_sorted = [sids[i] for i in order.tolist()]
            for sh in range(shards):
                a, b = bounds[sh], bounds[sh + 1]
                if a < b:
                    segment = (part, fmt.name, sid_sorted[a:b], ts[a:b], vals[a:b])
                    out.setdefault(sh, []).append(segment)
    return out


def run_proto(
    batches: Sequence[Any], settings: Settings, per_route: int = 6, columns: bool = False
) -> tuple[float, int, int]:
    """The prototype over ``batches``: shards' CPU seconds, windows closed, rows for Python."""
    topics = formats_by_topic(settings.families)
    config = shard_config(settings)
    states: dict[int, ProtoShard] = {}
    cache: dict[str, KeyCache] = {}
    cpu = time.process_time
    c_shard = 0.0
    for at in range(0, len(batches), per_route):
        r0 = cpu()
        polls = batches[at : at + per_route]
        now = inproc.LATER + at / 1000
        if columns:
            by_cols = route_columns(polls, topics, settings.shards, cache)
            p0 = cpu()
            for shard, segments in by_cols.items():
                _shard(states, shard, config).ingest_columns(segments, now)
        else:
            by_shard, _, _ = route(polls, topics, settings.shards, cache)
            p0 = cpu()
            for shard, readings in by_shard.items():
                _shard(states, shard, config).ingest(readings, now)
        ROUTE[0] += p0 - r0
        c_shard += cpu() - p0
    windows = sum(s.windows for s in states.values())
    python_rows = sum(int(s.counts.sum()) for s in states.values())
    return c_shard, windows, python_rows


def _shard(states: dict[int, ProtoShard], shard: int, config: ShardConfig) -> ProtoShard:
    st = states.get(shard)
    if st is None:
        st = states[shard] = ProtoShard(config, 8192, 8)
    return st


def check(batches: Sequence[Any]) -> int:
    """The windows each way closes, as (family, sensor, start, count, mean, min, max)."""
    global KEEP
    emit = Settings.from_env({"EMIT_ALL_WINDOWS": "true"})
    fleet = inproc.fresh_fleet(emit)
    topics = formats_by_topic(emit.families)
    states, cache = fleet
    ref: list[Window] = []
    for at in range(0, len(batches), 6):
        by_shard, _, _ = route(batches[at : at + 6], topics, emit.shards, cache)
        now = inproc.LATER + at / 1000
        for shard, readings in by_shard.items():
            for res in states[shard].ingest(readings, now) + states[shard].expire(now):
                st = getattr(res, "stats", None)
                if st is not None:
                    family, sensor = res.family, res.sensor_id  # type: ignore[union-attr]
                    ref.append((family, sensor, st.start, st.count, st.mean, st.min, st.max))
    ok = True
    for columns in (False, True):
        KEEP = []
        run_proto(batches, emit, columns=columns)
        same = sorted(KEEP) == sorted(ref)
        ok &= same
        verdict = "the same" if same else "DIFFERENT"
        name = "columns" if columns else "proto"
        print(f"{name}: {len(KEEP):,} windows, ShardState {len(ref):,}: {verdict}")
    KEEP = None
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="W2", choices=sorted(wl.WORKLOADS))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="compare the windows closed, untimed")
    args = ap.parse_args(argv)
    settings = Settings.from_env({"EMIT_ALL_WINDOWS": "false"})
    tune_gc()
    load_compiled_scorer()
    work = wl.WORKLOADS[args.workload]
    batches = inproc.polls(settings, work, args.messages)
    n = sum(map(len, batches))
    run_proto(batches[:12], settings)  # compiled before the timed part
    if args.check:
        return check(batches)
    for r in range(args.runs):
        order = ("proto", "columns", "shard") if r % 2 == 0 else ("shard", "columns", "proto")
        for which in order:
            gc.collect()
            if which in ("proto", "columns"):
                PARTS[:] = [0.0, 0.0, 0.0]
                ROUTE[0] = 0.0
                c, windows, py = run_proto(batches, settings, columns=which == "columns")
                print(f"{which}: route CPU {ROUTE[0] / n * 1e6:.2f} us/msg")
                names = ("to-arrays", "fold", "score+clean")
                print(" ".join(f"{k} {x / n * 1e6:.2f}" for k, x in zip(names, PARTS, strict=True)))
                print(
                    f"round {r} {which}: shards CPU {c / n * 1e6:.2f} us/msg, {windows:,} "
                    f"windows closed, {py:,} rows for Python"
                )
            else:
                fleet = inproc.fresh_fleet(settings)
                rd = inproc.run(batches, settings, fleet=fleet, flush=False)
                w = sum(st.counts.windows for st in fleet[0].values())
                print(f"ShardState: route CPU {rd.route_cpu / n * 1e6:.2f} us/msg")
                print(
                    f"round {r} ShardState: shards CPU {rd.shards_cpu / n * 1e6:.2f} us/msg, "
                    f"{w:,} windows closed"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
