"""``python bench/columns.py``: column-wise scoring of a batch of closed windows vs one by one.

No broker: the scorers alone. A fleet of ``--sensors`` sensors (default settings, 5 s
windows, noise with a daily cycle and bursts) is warmed with the per-window reference
(``SensorScorer``): ``--templates`` distinct sensors learn ``--warm`` windows each (the last few
a day later, so each has its weekly baseline and is ready), and the fleet is copies of them. The
column-wise scorer starts from the same state (``ColumnScorer.from_scorers``). Then, in each of
``--rounds`` rounds (after one not counted) and for each batch size, the same batch of windows
(sensors drawn at random with replacement, each row that sensor's next window) is scored by the
reference loop and by one ``score_batch``; the per-window times' medians (CPU time of this
process: the machine may be shared) and the median of the rounds' ratios are printed, with the
decisions compared. State: the column arrays' bytes per slot, and per sensor of the warmed
fleet (its seasonal rows included); the reference's pickled bytes per sensor, for scale.
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import statistics
import sys
import time

import numpy as np

from dataflow.model.columns import ColumnScorer
from dataflow.model.scoring import ModelParams, SensorScorer

WINDOW_NS = 5_000_000_000
DAY_NS = 86_400 * 10**9


def mean_at(rng: random.Random, t: int, base: float) -> float:
    cycle = 10 * math.sin(2 * math.pi * (t % DAY_NS) / DAY_NS)
    burst = 30.0 if rng.random() < 0.002 else 0.0
    return base + cycle + burst + rng.gauss(0, 1)


def warmed(params: ModelParams, templates: int, warm: int, seed: int) -> list[SensorScorer]:
    """``templates`` sensors, each ``warm`` windows in; the last 20 a day after the rest."""
    rng = random.Random(seed)
    out = []
    for k in range(templates):
        s = SensorScorer(params)
        base = 40.0 + 40.0 * rng.random()
        t = k * WINDOW_NS
        for i in range(warm):
            if i == warm - 20:
                t += DAY_NS
            s.score_learn(t, mean_at(rng, t, base), rng.uniform(0.0, 0.5))
            t += WINDOW_NS
        out.append(s)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sensors", type=int, default=100_000, help="fleet size (default: %(default)s)")
    p.add_argument(
        "--batches",
        default="1000,10000",
        help="windows per batch, comma-separated (default: %(default)s)",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds (default: %(default)s)")
    p.add_argument(
        "--templates",
        type=int,
        default=500,
        help="distinct warmed sensors the fleet is copied from (default: %(default)s)",
    )
    p.add_argument(
        "--warm",
        type=int,
        default=260,
        help="windows each template learns first (default: %(default)s; ready at 200)",
    )
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.batches.split(",")]
    params = ModelParams(limits=(0.0, 120.0))
    began = time.perf_counter()
    templates = warmed(params, args.templates, args.warm, args.seed)
    blobs = [pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL) for s in templates]
    refs = [pickle.loads(blobs[i % len(blobs)]) for i in range(args.sensors)]
    cols = ColumnScorer.from_scorers(refs)
    # Each sensor's next window start; its base level for the stream.
    last = [int(s.season.baselines[0].first) if s.season else 0 for s in templates]
    step = args.warm + DAY_NS // WINDOW_NS
    nxt = [last[i % len(last)] + step * WINDOW_NS for i in range(args.sensors)]
    base = [float(s.raw.level) for s in templates]
    setup = time.perf_counter() - began
    print(
        f"fleet: {args.sensors} sensors from {args.templates} templates x {args.warm} windows, "
        f"built in {setup:.1f} s; ready: {int((cols.cols['seen'] >= 200).sum())}, "
        f"weekly rows: {int((cols.cols['pool1'] >= 0).sum())}"
    )
    rng = random.Random(args.seed + 1)
    times: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n in sizes}
    mismatches = alerts = 0
    for round_ in range(args.rounds + 1):  # round 0 is not counted: first touches, a GC pass
        for n in sizes:
            slots = [rng.randrange(args.sensors) for _ in range(n)]
            starts, means, scatters = [], [], []
            for s in slots:
                t = nxt[s]
                nxt[s] = t + WINDOW_NS
                starts.append(t)
                means.append(mean_at(rng, t, base[s % len(base)]))
                scatters.append(rng.uniform(0.0, 0.5))
            a = time.process_time()
            ref = [
                refs[s].score_learn(t, m, sc)
                for s, t, m, sc in zip(slots, starts, means, scatters, strict=True)
            ]
            b = time.process_time()
            got = cols.score_batch(
                np.asarray(slots), np.asarray(starts), np.asarray(means), np.asarray(scatters)
            )
            c = time.process_time()
            if not round_:
                continue
            times[n][0].append((b - a) / n * 1e6)
            times[n][1].append((c - b) / n * 1e6)
            ml = np.asarray([r.ml_anomaly for r in ref])
            sc_ = np.asarray([r.score for r in ref])
            mismatches += int((ml != got.ml).sum() + (sc_ != got.score).sum())
            alerts += int(ml.sum())
    for n in sizes:
        ref_t, col_t = times[n]
        r, c = statistics.median(ref_t), statistics.median(col_t)
        ratio = statistics.median(x / y for x, y in zip(ref_t, col_t, strict=True))
        print(
            f"batch {n:>6} windows: CPU per window reference {r:.2f} us, columns {c:.2f} us "
            f"(rounds' ratio x{ratio:.1f}); rounds ref {', '.join(f'{x:.2f}' for x in ref_t)}; "
            f"cols {', '.join(f'{x:.2f}' for x in col_t)}"
        )
    print(f"decisions compared: {mismatches} differ ({alerts} ML windows in all)")
    per_slot = sum(m.nbytes for m in cols.mats.values()) / cols.capacity
    pools = [pool.nbytes() / pool.capacity for pool in cols.pools]
    fleet = cols.nbytes() / args.sensors
    pickled = len(pickle.dumps(refs[:1000], protocol=pickle.HIGHEST_PROTOCOL)) / 1000
    col_pickled = len(pickle.dumps(cols, protocol=pickle.HIGHEST_PROTOCOL)) / args.sensors
    print(
        f"state: columns {per_slot:.0f} B per slot; seasonal rows {pools[0]:.0f} B daily, "
        f"{pools[1]:.0f} B weekly; the warmed fleet's arrays {fleet:.0f} B per sensor "
        f"(capacity {cols.capacity}); pickled: columns {col_pickled:.0f} B per sensor, "
        f"reference {pickled:.0f} B per sensor (1000 in one snapshot)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
