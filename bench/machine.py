"""``python bench/machine.py``: what a machine of N channels costs per window, beside N sensors.

Pure Python, no broker. Per round, ``--windows`` window means of an ``--channels``-channel
machine (channels following one load, noise each) go through two parts, each timed alone:

- **sensors**: N per-sensor scorers (``SensorScorer``, today's per-window work per channel),
  which a machine family's channels run as any sensor;
- **the machine's own part**: each channel's window filed, the machine's window come due,
  scored by the joint model, its alert moved (``MachineWindows``), as a shard does.

The budget (issue 27): a machine costs at most N channels' worth of per-window work plus 50 %,
so ``(sensors + machine) / sensors`` at most 1.5. The state is the pickled size of the
machine's own part (its joint model, alert and pending windows), after the run and fresh.
On a shared machine the rounds vary: the minimum is printed beside the median.

``--route-machines N``: also a fleet of N such machines, a message per machine per window with
every channel in it, routed in polls of 1000 (``route``) and folded by one shard as the flow
does; CPU per message for routing alone and for all of it.
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import orjson

from dataflow.config import Settings
from dataflow.families import parse_families
from dataflow.flow import shard_config
from dataflow.machines import MachineWindows
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import ModelParams, SensorScorer
from dataflow.progress import Beat
from dataflow.readings import Reading, SourceRef, formats_by_topic
from dataflow.routing import route
from dataflow.shard import ShardState

WINDOW_NS = 5_000_000_000


def windows(channels: int, n: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    load = 0.0
    out = []
    for i in range(n):
        load = 0.98 * load + 0.2 * rng.gauss(0, 1)
        cycle = 5 * math.sin(2 * math.pi * i / 17_280)
        out.append([60 + cycle + 3 * load + rng.gauss(0, 1) for _ in range(channels)])
    return out


def shard_round(data: list[list[float]], names: tuple[str, ...]) -> tuple[float, float]:
    """Seconds a shard takes for the windows as 8 sensors of a plain family, then as the 8
    channels of a machine family: the per-window work of the flow, both ways."""
    common = {"topic": "t", "timestamp": "ts", "valid_range": [-1e6, 1e6], "window_seconds": 5}
    plain = {"value": "v", **common}
    machine = {"machine": "m", "channels": {n: n for n in names}, **common}
    took = []
    for spec, ids in ((plain, list(names)), (machine, [f"m1/{n}" for n in names])):
        (fam,) = parse_families({"families": {"f": spec}}, "bench")
        settings = replace(Settings.from_env({"ALLOWED_LATENESS_SECONDS": "0"}), families=(fam,))
        state = ShardState(shard_config(settings))
        t0 = 1_700_000_000 * 10**9
        began = time.perf_counter()
        for w, row in enumerate(data):
            ts = t0 + w * WINDOW_NS
            batch = [Reading("f", i, ts, v) for i, v in zip(ids, row, strict=True)]
            state.ingest(batch, ts / 1e9)
        took.append(time.perf_counter() - began)
    return took[0], took[1]


def route_round(machines: int, channels: int, polls: int, per: int) -> tuple[float, float]:
    """CPU seconds per message to route a fleet's polls of a machine family (a message per
    machine per window, every channel in it), and to route, fold and expire them in one shard
    as the flow does: what the routing of a machine family costs beside the rest."""
    spec = {
        "topic": "t",
        "machine": "m",
        "channels": {f"c{i}": f"c{i}" for i in range(channels)},
        "timestamp": "ts",
        "valid_range": [-1e6, 1e6],
        "window_seconds": 5,
    }
    (fam,) = parse_families({"families": {"f": spec}}, "bench")
    settings = replace(Settings.from_env({"ALLOWED_LATENESS_SECONDS": "0"}), families=(fam,))
    state = ShardState(shard_config(settings))
    rng = random.Random(1)
    t0 = 1_700_000_000 * 10**9
    msgs = []
    for n in range(polls * per):
        w, m = divmod(n, machines)
        body = {"m": f"m{m}", "ts": t0 + w * WINDOW_NS + m * 1000}
        body.update({f"c{i}": 60 + rng.gauss(0, 1) for i in range(channels)})
        msgs.append(SourceRef((None, orjson.dumps(body), "t", 0, n)))
    topics = formats_by_topic((fam,))
    cache: dict[str, Any] = {}
    routing = 0.0
    began = time.process_time()
    for k in range(polls):
        now = (t0 + (k * per // machines) * WINDOW_NS) / 1e9
        a = time.process_time()
        by_shard, _, _ = route(
            [Beat("t/0", now, now), msgs[k * per : (k + 1) * per]], topics, 1, cache
        )
        routing += time.process_time() - a
        for batch in by_shard.values():
            state.ingest(batch, now)
        state.expire(now)
    total = time.process_time() - began
    return routing / len(msgs), total / len(msgs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--windows", type=int, default=20_000, help="windows per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--route-machines",
        type=int,
        default=0,
        help="also time routing a fleet of this many machines (0: not)",
    )
    p.add_argument("--route-polls", type=int, default=200, help="polls of 1000 messages")
    args = p.parse_args(argv)
    if args.route_machines:
        per_round = [
            route_round(args.route_machines, args.channels, args.route_polls, 1000)
            for _ in range(args.rounds)
        ]
        print(
            f"{args.route_machines} machines of {args.channels} channels, "
            f"{args.route_polls} polls of 1000 messages x {args.rounds} rounds, CPU per message: "
            f"route median {statistics.median(r for r, _ in per_round) * 1e6:.2f} us, route + "
            f"shard median {statistics.median(t for _, t in per_round) * 1e6:.2f} us (rounds "
            + ", ".join(f"{r * 1e6:.2f} / {t * 1e6:.2f}" for r, t in per_round)
            + ")"
        )
    data = windows(args.channels, args.windows, seed=1)
    params = ModelParams(limits=(0.0, 120.0))
    names = tuple(f"c{i}" for i in range(args.channels))
    sensors_us, machine_us = [], []
    mw = MachineWindows(names, MachineParams())
    for _ in range(args.rounds):  # the two parts alternate, each timed alone
        scorers = [SensorScorer(params) for _ in names]
        began = time.perf_counter()
        for w, row in enumerate(data):
            start = w * WINDOW_NS
            for scorer, value in zip(scorers, row, strict=True):
                scorer.score_learn(start, value)
        sensors_us.append((time.perf_counter() - began) / len(data) * 1e6)
        mw = MachineWindows(names, MachineParams())
        began = time.perf_counter()
        for w, row in enumerate(data):
            start = w * WINDOW_NS
            for i, value in enumerate(row):
                mw.file(i, start, start + WINDOW_NS, value)
            for due in mw.due(WINDOW_NS):
                mw.score("f/m", due, 12, 3, 48, "warning")
        machine_us.append((time.perf_counter() - began) / len(data) * 1e6)
    ratio = [(s + m) / s for m, s in zip(machine_us, sensors_us, strict=True)]
    shard_ratio = [m / s for s, m in (shard_round(data, names) for _ in range(args.rounds))]
    fresh = MachineWindows(names, MachineParams())
    print(
        f"{args.channels} channels, {args.windows} windows x {args.rounds} rounds, per window: "
        f"{args.channels} sensors' scoring median {statistics.median(sensors_us):.1f} us, the "
        f"machine's own part median {statistics.median(machine_us):.1f} us; (sensors + "
        f"machine) / sensors median {statistics.median(ratio):.2f}, min {min(ratio):.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratio)}; budget 1.5)"
    )
    print(
        f"in a shard, a reading per channel per window (8 sensors of a plain family against a "
        f"machine family of 8 channels): machine / sensors median "
        f"{statistics.median(shard_ratio):.2f}, min {min(shard_ratio):.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in shard_ratio)})"
    )
    print(
        f"machine state pickled: after the run {len(pickle.dumps(mw, protocol=5))} B, fresh "
        f"{len(pickle.dumps(fresh, protocol=5))} B (budget 20000 B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
