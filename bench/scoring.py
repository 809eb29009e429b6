"""``python bench/scoring.py``: the cost of scoring one window, and one sensor's state size.

Pure Python, no broker: a sensor's scorer (``dataflow.model.scoring.SensorScorer`` with the default
settings; ``--pattern``: with the pattern detector on) is fed ``--windows`` window means of 5 s
windows (noise with a daily cycle and bursts, so the seasonal baselines are in use), ``--rounds``
times; each round reports the time per window, and the median and the spread are printed. The
state size is the pickled size of the scorer after the run (what a Bytewax snapshot stores per
sensor), the size of a fresh one, and the memory of a sensor after one window and after
``--age-windows`` windows 50 s apart (about 1.2 days at the default: old enough to carry both
seasonal baselines), each averaged over ``--sensors`` sensors with ``tracemalloc``."""

from __future__ import annotations

import argparse
import math
import pickle
import random
import statistics
import sys
import time
import tracemalloc

from dataflow.model.scoring import ModelParams, SensorScorer

WINDOW_NS = 5_000_000_000
DAY_WINDOWS = 86_400 // 5


def means(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cycle = 10 * math.sin(2 * math.pi * (i % DAY_WINDOWS) / DAY_WINDOWS)
        burst = 30.0 if rng.random() < 0.002 else 0.0
        out.append(60 + cycle + burst + rng.gauss(0, 1))
    return out


def aged_memory(params: ModelParams, sensors: int, windows: int) -> float:
    """Memory per sensor (``tracemalloc``) of ``sensors`` scorers each fed ``windows`` means,
    50 s apart: what an older fleet's sensors hold, once the lazily built parts exist."""
    data = means(windows, seed=2)
    step = 10 * WINDOW_NS
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [SensorScorer(params) for _ in range(sensors)]
    for s in held:
        for i, m in enumerate(data):
            s.score_learn(i * step, m)
    memory = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    tracemalloc.stop()
    return memory


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--windows",
        type=int,
        default=2 * DAY_WINDOWS,
        help="windows per round (default: two days of 5 s windows)",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds (default: %(default)s)")
    p.add_argument(
        "--pattern", action="store_true", help="with the pattern detector on (ML_PATTERN=true)"
    )
    p.add_argument(
        "--age-windows",
        type=int,
        default=2000,
        help="windows, 50 s apart, fed to each aged sensor (default: %(default)s)",
    )
    p.add_argument(
        "--sensors",
        type=int,
        default=50,
        help="sensors in the aged memory measure (default: %(default)s)",
    )
    args = p.parse_args(argv)
    data = means(args.windows, seed=1)
    params = ModelParams(limits=(0.0, 120.0), pattern=args.pattern)
    per_window = []
    scorer = SensorScorer(params)
    for _ in range(args.rounds):
        scorer = SensorScorer(params)
        score = scorer.score_learn
        began = time.perf_counter()
        for i, m in enumerate(data):
            score(i * WINDOW_NS, m)
        per_window.append((time.perf_counter() - began) / len(data) * 1e6)
    warm = len(pickle.dumps(scorer, protocol=pickle.HIGHEST_PROTOCOL))
    # In a snapshot, what sensors share (the trees' splits, the parameters) is pickled once.
    fleet = [SensorScorer(params) for _ in range(1000)]
    shared = len(pickle.dumps(fleet, protocol=pickle.HIGHEST_PROTOCOL)) / len(fleet)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [SensorScorer(params) for _ in range(1000)]
    for i, s in enumerate(held):  # one window each: the scorers' lazily grown parts exist
        s.score_learn(i * WINDOW_NS, 60.0)
    memory = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    tracemalloc.stop()
    aged = aged_memory(params, args.sensors, args.age_windows)
    print(
        f"{args.windows} windows x {args.rounds} rounds: per window "
        f"median {statistics.median(per_window):.2f} us, "
        f"min {min(per_window):.2f}, max {max(per_window):.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in per_window)})"
    )
    print(
        f"state per sensor: pickled alone after the run {warm} B; in a snapshot of 1000 "
        f"sensors {shared:.0f} B each; in memory {memory:.0f} B each after one window, "
        f"{aged:.0f} B each after {args.age_windows} windows 50 s apart"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
