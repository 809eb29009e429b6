"""Before and after, in the same run: the dataflow of several checkouts on the same input.

    .venv/bin/python bench/ab.py --checkout /tmp/before --checkout . --workloads W1,W2

A change on the hot path is judged against the code before it, on the same machine in the same
minutes: each workload is loaded once, then every round runs each checkout's flow
(``python -m bytewax.run dataflow.main:flow`` from that checkout, one worker) on the same
topics, in an order that alternates between rounds so neither side always runs on a warmer
broker. As in the harness, each run is preceded by a start-up run on empty topics, and the
drain is the loaded run's wall time minus it. Reported: every round's msg/s, the medians, each
checkout's ratio to the first (per round and of the medians), the CPU time of the drain per
message (steadier than wall time on a busy machine: it does not count time spent waiting for a
core), and each checkout's W2/W1 ratio (the cost of a 100k-sensor fleet against a 1k one).

Before a workload's rounds each checkout's flow runs once on the empty topics, untimed: the compiled
scorer's cache is kept per checkout path, so a new worktree's first run compiles it, a few
seconds that the start-up subtraction would take from its first drain (a drain of seconds read
as millions of messages a second). A same-round CPU ratio whose baseline measured no CPU (a
load too small to time) is given as nan.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import workloads as wl
from harness import derive


def flow(checkout: Path, topics: wl.Topics, brokers: str) -> wl.Measured:
    env = {**wl.bytewax_env(brokers, topics), "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", "-w", "1"]
    m = wl.run_measured(cmd, env=env, cwd=checkout)
    if m.returncode != 0:
        raise RuntimeError(f"{checkout}: the flow exited {m.returncode}: {m.stderr[-2000:]}")
    return m


def rev(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "dataflow"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    return (out or "?") + ("+dirty" if dirty else "")


def workload(name: str, checkouts: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    work = wl.WORKLOADS[name]
    topics = wl.create_topics(args.brokers, args.partitions, f"ab-{name.lower()}")
    empty = wl.create_topics(args.brokers, args.partitions, f"ab-{name.lower()}-empty")
    try:
        loaded = wl.load(args.brokers, topics, work, args.messages)
        print(
            f"\n## {name}: {work.sensors:,} sensors, loaded {loaded.messages:,} readings in "
            f"{loaded.seconds:.1f} s",
            flush=True,
        )
        for co in checkouts:  # untimed: each checkout's compiled code into its cache
            flow(co, empty, args.brokers)
        rounds: list[dict[str, float]] = []
        for r in range(args.runs):
            order = checkouts if r % 2 == 0 else checkouts[::-1]
            res = {}
            for co in order:
                start = flow(co, empty, args.brokers)
                run = flow(co, topics, args.brokers)
                d = derive(run, start, loaded.messages, loaded.windows, 0)
                res[str(co)] = d["msg_per_s"]
                res[f"{co} cpu"] = d["cpu_drain_s"] / loaded.messages * 1e6
                print(
                    f"  round {r + 1} {rev(co):<14} {d['msg_per_s']:>10,.0f} msg/s  drain "
                    f"{d['drain_s']:.2f} s, start-up {d['startup_s']:.2f} s, CPU "
                    f"{res[f'{co} cpu']:.3f} µs/msg",
                    flush=True,
                )
            rounds.append(res)
    finally:
        wl.delete_topics(args.brokers, topics.all() + empty.all())
    return {"workload": name, "messages": loaded.messages, "rounds": rounds}


def ratio(a: float, b: float) -> float:
    """``a / b``; nan where ``b`` measured nothing."""
    return a / b if b > 0 else math.nan


def median(values: list[float]) -> float:
    """The median of the values that are numbers; nan if none is."""
    known = [x for x in values if not math.isnan(x)]
    return statistics.median(known) if known else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkout",
        type=Path,
        action="append",
        required=True,
        help="a checkout whose dataflow/ to run; the first is the baseline",
    )
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("out/ab.json"))
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in args.checkout]
    if len(set(checkouts)) != len(checkouts):
        parser.error("each --checkout must be a different directory (a worktree per commit)")
    print(f"machine: {wl.machine()}; checkouts: " + ", ".join(f"{c} ({rev(c)})" for c in checkouts))
    results = [workload(name, checkouts, args) for name in args.workloads.split(",")]
    base = str(checkouts[0])
    print("\n## summary (medians; ratio to the first checkout, and each round's)")
    medians: dict[str, dict[str, float]] = {}
    for res in results:
        for co in map(str, checkouts):
            per_round = [rd[co] for rd in res["rounds"]]
            med = statistics.median(per_round)
            medians.setdefault(co, {})[res["workload"]] = med
            ratios = [ratio(rd[co], rd[base]) for rd in res["rounds"]]
            print(
                f"  {res['workload']} {rev(Path(co)):<14} {med:>10,.0f} msg/s "
                f"(rounds {', '.join(f'{x:,.0f}' for x in per_round)}); "
                f"x{ratio(med, statistics.median(rd[base] for rd in res['rounds'])):.3f} "
                f"(rounds {', '.join(f'{x:.3f}' for x in ratios)})"
            )
            cpu = [rd[f"{co} cpu"] for rd in res["rounds"]]
            cpu_ratios = [ratio(rd[f"{co} cpu"], rd[f"{base} cpu"]) for rd in res["rounds"]]
            print(
                f"  {'':<2} {'':<14} CPU {statistics.median(cpu):.3f} µs/msg (rounds "
                f"{', '.join(f'{x:.3f}' for x in cpu)}); x{median(cpu_ratios):.3f} "
                f"of the first's (rounds {', '.join(f'{x:.3f}' for x in cpu_ratios)})"
            )
    if {"W1", "W2"} <= {r["workload"] for r in results}:
        for co, med in medians.items():
            print(f"  W2/W1 {rev(Path(co)):<14} {med['W2'] / med['W1']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": wl.machine(),
                "checkouts": {str(c): rev(c) for c in checkouts},
                "results": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
