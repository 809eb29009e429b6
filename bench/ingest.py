"""``ShardState.ingest`` alone: CPU µs per message on pre-routed polls, no scoring.

    PYTHONPATH=CHECKOUT .venv/bin/python bench/ingest.py --workload W2

For a change to the per-reading path of ``ingest`` (the sensor lookup, a window's ``add``),
which end-to-end runs cannot resolve: the workload's messages are routed once, outside the
timing, as ``bench/inproc.py`` routes them, and the windows are made long enough
(``--window-seconds``) that none closes, so no model runs. CPU time (``process_time``), as
steadier than wall time on a shared machine. To compare two checkouts, alternate them in one
shell loop with ``PYTHONPATH`` set to each (``bench/RESULTS.md`` has the loop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import workloads as wl
from inproc import polls

from dataflow.config import Settings
from dataflow.flow import shard_config
from dataflow.readings import formats_by_topic
from dataflow.routing import route
from dataflow.runtime import tune_gc
from dataflow.shard import ShardState

# A wall time after every workload reading: none is from the future, none moves input time
# past what its readings say.
LATER = 4_000_000_000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(wl.WORKLOADS), default="W2")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--window-seconds", type=float, default=3600.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    settings = Settings.from_env(
        {"EMIT_ALL_WINDOWS": "false", "WINDOW_SECONDS": str(args.window_seconds)}
    )
    tune_gc()
    topics = formats_by_topic(settings.families)
    batches = [
        route([poll], topics, settings.shards, {})[0]
        for poll in polls(settings, wl.WORKLOADS[args.workload], args.messages)
    ]
    config = shard_config(settings)
    seconds = []
    for _ in range(args.runs):
        states = [ShardState(config) for _ in range(settings.shards)]
        t0 = time.process_time()
        for by_shard in batches:
            for shard, readings in by_shard.items():
                states[shard].ingest(readings, LATER)
        seconds.append(time.process_time() - t0)
    print(
        f"{args.workload}: ingest {statistics.median(seconds) / args.messages * 1e6:.4f} "
        f"µs/msg CPU (median of {args.runs}; {args.messages:,} messages, "
        f"{args.window_seconds:g} s windows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
