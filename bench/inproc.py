"""The flow's pure Python work on a workload, in process: no broker, no Bytewax.

    .venv/bin/python bench/inproc.py                 # W1 and W2, medians of 3
    .venv/bin/python bench/inproc.py --workload W2 --runs 5

What a quick loop needs when changing the hot path: the same messages the harness loads
(``workloads.readings``), held in memory as stand-ins for librdkafka's ``Message``, routed in
poll-sized batches of one topic by ``routing.route`` and folded by one ``ShardState`` per shard,
exactly as ``ShardLogic.on_batch`` does, then flushed. It reports µs per message for routing
(parse and shard) and for the shards (windows, scores, alerts). Bytewax's and librdkafka's own
costs are not in it: the harness (``make bench``) measures those end to end.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import zlib

import workloads as wl

from dataflow.config import Settings
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.flow import shard_config
from dataflow.readings import formats_by_topic
from dataflow.routing import route
from dataflow.runtime import tune_gc
from dataflow.shard import ShardState

# A wall time after every workload reading: none is from the future, none moves input time
# past what its readings say.
LATER = 4_000_000_000.0


class Msg:
    """The ``Message`` methods ``route`` calls, as cheap as librdkafka's C methods can be."""

    __slots__ = ("_key", "_topic", "_value")

    def __init__(self, topic: str, key: bytes, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def run(batches: list[list[Msg]], settings: Settings) -> tuple[float, float, int]:
    """Seconds routing, seconds in shards, windows closed."""
    config = shard_config(settings)
    topics = formats_by_topic(settings.families)
    states = {i: ShardState(config) for i in range(settings.shards)}
    cache: dict[str, dict[bytes, int]] = {}
    t_route = t_shard = 0.0
    closed = 0
    clock = time.perf_counter
    for batch in batches:
        t0 = clock()
        by_shard, dead, _ = route([batch], topics, settings.shards, cache)
        t1 = clock()
        for shard, readings in by_shard.items():
            closed += len(states[shard].ingest(readings, LATER))
        t_route += t1 - t0
        t_shard += clock() - t1
        assert not dead
    t0 = clock()
    for state in states.values():
        closed += len(state.flush())
    t_shard += clock() - t0
    return t_route, t_shard, closed


def polls(
    settings: Settings, work: wl.Workload, messages: int, batch: int = 5_000, partitions: int = 3
) -> list[list[Msg]]:
    """The workload's messages as the source hands them over: polls of one partition each.

    A poll is one partition's: one topic, and the sensors its keys hash to (as the loader's
    producer partitions by key). The partitions are polled in turn. Messages are made in
    partition order, so that a poll's are near each other in memory, as a real poll's are.
    """
    by_family = {f.name: f.topic for f in settings.families}
    rows = [
        (by_family[AIR_QUALITY if aq else TEMPERATURE], key, value)
        for aq, key, value, _, _ in wl.readings(work, messages)
    ]
    parts = [
        [Msg(*row) for row in rows if row[0] == t and zlib.crc32(row[1]) % partitions == p]
        for t in by_family.values()
        for p in range(partitions)
    ]
    each = [[p[i : i + batch] for i in range(0, len(p), batch)] for p in parts]
    return [b for pair in itertools.zip_longest(*each, fillvalue=[]) for b in pair if b]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(wl.WORKLOADS), action="append")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000, help="messages per poll")
    parser.add_argument("--partitions", type=int, default=3, help="per topic, as the harness")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    settings = Settings.from_env({"EMIT_ALL_WINDOWS": "false"})
    tune_gc()  # as the running flow does
    for name in args.workload or sorted(wl.WORKLOADS):
        batches = polls(settings, wl.WORKLOADS[name], args.messages, args.batch, args.partitions)
        messages = sum(map(len, batches))
        rounds = [run(batches, settings) for _ in range(args.runs)]
        r = statistics.median(x[0] for x in rounds) / messages * 1e6
        s = statistics.median(x[1] for x in rounds) / messages * 1e6
        print(
            f"{name}: {messages:,} messages, {rounds[0][2]:,} windows emitted | "
            f"route {r:.2f} µs/msg, shards {s:.2f} µs/msg, total {r + s:.2f} µs/msg "
            f"= {1e6 / (r + s):,.0f} msg/s (median of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
