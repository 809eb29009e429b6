"""The flow's pure Python work on a workload, in process: no broker, no Bytewax.

    .venv/bin/python bench/inproc.py                 # W1 and W2, medians of 3
    .venv/bin/python bench/inproc.py --workload W2 --runs 5
    .venv/bin/python bench/inproc.py --workload W2 --sensors 20000 --warm 300   # a day-old fleet

What a quick loop needs when changing the hot path: the same messages the harness loads
(``workloads.readings``), held in memory as stand-ins for librdkafka's ``Message``, in polls of
one partition, routed by ``routing.route`` several polls at a time (``--per-route``: the flow's
route step is handed every partition's polls of a Bytewax batch at once, so a shard's batch
holds its readings from all of them) and folded by one ``ShardState`` per shard, exactly as
``ShardLogic.on_batch`` does (``ingest``, then ``expire``, at a wall time that moves between
batches; each poll marked with its partition, as the source's beat marks it), then flushed: in
a drain of W2 the flow closes two windows in three by their partition's input time (``expire``),
not by their sensors' next readings. Routing one poll at a time makes each shard's
batches several times smaller than the flow's, and their fixed costs (a vectorised scoring pass
per batch) look larger than they are. It reports µs per message for routing
(parse and shard) and for the shards (windows, scores, alerts). Bytewax's and librdkafka's own
costs are not in it: the harness (``make bench``) measures those end to end. Each figure is
given twice: by the wall clock and by the process's CPU time (the machine may be shared).

``--warm N`` gives every sensor a past before the timed part, as a fleet that has run for a day
has: N windows of one reading each, ``--warm-gap`` seconds apart (300: 300 windows span 25
hours, so models are past their warm-up, 200 windows by default, and have a daily baseline),
ending one gap before the workload's first reading. The warm-up is routed and ingested the same
way but not timed. W2 alone is a fleet's first windows: every model still in its warm-up, every
sensor new. ``--sensors`` changes the fleet's size (a warmed 100k-sensor fleet is tens of
millions of windows to make first).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import pickle
import statistics
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import workloads as wl

import dataflow
from dataflow.config import Settings
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.flow import shard_config
from dataflow.model.columns import warm as load_compiled_scorer
from dataflow.progress import MARK, Beat, Poll, part_name
from dataflow.readings import formats_by_topic
from dataflow.routing import route
from dataflow.runtime import tune_gc
from dataflow.shard import ShardState

# A wall time after every workload reading: none is from the future, none moves input time
# past what its readings say. Each batch is a millisecond later, as the flow's wall clock moves
# between batches (a shard learns a sensor's usual gap once per batch: by the batch's time).
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


@dataclasses.dataclass
class Round:
    route: float  # seconds routing, wall clock
    shards: float  # seconds in the shards (windows, scores, alerts), wall clock
    route_cpu: float  # the same by the process's CPU time
    shards_cpu: float
    closed: int  # results emitted in the timed part


Fleet = tuple[dict[int, ShardState], dict[str, dict[bytes, int]]]  # shards, routing's cache


def fresh_fleet(settings: Settings) -> Fleet:
    """One empty ``ShardState`` per shard, and an empty routing cache."""
    config = shard_config(settings)
    return {i: ShardState(config) for i in range(settings.shards)}, {}


def warm_up(settings: Settings, warm: Iterable[list[Msg]]) -> bytes:
    """The shards (and routing's cache) after ``warm``, routed and ingested, pickled: each timed
    round starts from its own copy."""
    topics = formats_by_topic(settings.families)
    fleet = fresh_fleet(settings)
    states, cache = fleet
    for n, batch in enumerate(warm):
        by_shard, dead, _ = route([batch], topics, settings.shards, cache)
        for shard, readings in by_shard.items():
            states[shard].ingest(readings, LATER + n / 1000)
        assert not dead
    return pickle.dumps(fleet, protocol=pickle.HIGHEST_PROTOCOL)


def run(
    batches: list[list[Msg]],
    settings: Settings,
    warm: bytes | None = None,
    per_route: int = 6,
    fleet: Fleet | None = None,
    flush: bool = True,
) -> Round:
    """Time ``batches`` (routed ``per_route`` at a time) and the flush, through fresh shards, a
    copy of the ``warm`` ones, or ``fleet`` itself (left as the batches leave it: the tests look
    at it), each shard's batch as ``ShardLogic.on_batch`` takes it (``ingest``, then ``expire``)."""
    topics = formats_by_topic(settings.families)
    if fleet is None and warm is None:
        fleet = fresh_fleet(settings)
    elif fleet is None:
        fleet = pickle.loads(warm)
        gc.collect()  # the copy's making is not the timed part's
    states, cache = fleet
    t_route = t_shard = c_route = c_shard = 0.0
    closed = 0
    clock, cpu = time.perf_counter, time.process_time
    for at in range(0, len(batches), per_route):
        t0, p0 = clock(), cpu()
        by_shard, dead, _ = route(batches[at : at + per_route], topics, settings.shards, cache)
        t1, p1 = clock(), cpu()
        now = LATER + at / 1000
        for shard, readings in by_shard.items():
            state = states[shard]
            closed += len(state.ingest(readings, now))
            closed += len(state.expire(now))  # as ``on_batch``: windows closed by input time
        t_route += t1 - t0
        t_shard += clock() - t1
        c_route += p1 - p0
        c_shard += cpu() - p1
        assert not dead
    t0, p0 = clock(), cpu()
    for state in states.values() if flush else ():
        closed += len(state.flush())
    t_shard += clock() - t0
    c_shard += cpu() - p0
    return Round(t_route, t_shard, c_route, c_shard, closed)


def warm_polls(
    settings: Settings, work: wl.Workload, windows: int, gap_s: float, batch: int = 5_000
) -> Iterator[list[Msg]]:
    """Every sensor's ``windows`` past windows, one reading each, ``gap_s`` apart, ending one
    gap before the workload's first reading; made as they are routed (they would not fit in
    memory at once), in polls of one topic."""
    by_family = {f.name: f.topic for f in settings.families}
    topics = (by_family[AIR_QUALITY], by_family[TEMPERATURE])
    gap = int(gap_s * 1e9)
    past = dataclasses.replace(work, per_window=1)
    polls: tuple[list[Msg], list[Msg]] = ([], [])
    for aq, key, value, _, _ in wl.readings(
        past, work.sensors * windows, wl.T0_NS - windows * gap, gap
    ):
        poll = polls[0 if aq else 1]
        poll.append(Msg(topics[0 if aq else 1], key, value))
        if len(poll) == batch:
            yield poll[:]
            poll.clear()
    yield from (p for p in polls if p)


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
        (
            Beat(part_name(t, p), MARK, None),
            [Msg(*row) for row in rows if row[0] == t and zlib.crc32(row[1]) % partitions == p],
        )
        for t in by_family.values()
        for p in range(partitions)
    ]
    each = [
        [Poll(msgs[i : i + batch], mark) for i in range(0, len(msgs), batch)]
        for mark, msgs in parts
    ]
    return [b for pair in itertools.zip_longest(*each, fillvalue=[]) for b in pair if b]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(wl.WORKLOADS), action="append")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000, help="messages per poll")
    parser.add_argument("--partitions", type=int, default=3, help="per topic, as the harness")
    parser.add_argument(
        "--per-route",
        type=int,
        default=6,
        help="polls routed together, as the flow's route step receives them in a drain "
        "(bench/RESULTS.md); 1 routes each poll alone",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sensors", type=int, help="the fleet's size (the workload's by default)")
    parser.add_argument("--warm", type=int, default=0, help="past windows per sensor, untimed")
    parser.add_argument("--warm-gap", type=float, default=300.0, help="seconds between them")
    parser.add_argument(
        "--warm-cache",
        type=Path,
        help="a file to keep the warmed shards in, or read them from if it exists: one per "
        "checkout and settings (nothing checks that it is the right one)",
    )
    args = parser.parse_args(argv)
    if args.per_route < 1:
        parser.error("--per-route must be at least 1")
    settings = Settings.from_env({"EMIT_ALL_WINDOWS": "false"})
    tune_gc()  # as the running flow does
    load_compiled_scorer()  # as the running flow does at its start
    print(f"dataflow from {Path(dataflow.__file__).parent}")
    for name in args.workload or sorted(wl.WORKLOADS):
        work = wl.WORKLOADS[name]
        if args.sensors:
            work = dataclasses.replace(work, sensors=args.sensors)
        batches = polls(settings, work, args.messages, args.batch, args.partitions)
        messages = sum(map(len, batches))
        warm = None
        if args.warm:
            w0 = time.perf_counter()
            cached = args.warm_cache and args.warm_cache.exists()
            if cached:
                warm = args.warm_cache.read_bytes()
            else:
                polls_ = warm_polls(settings, work, args.warm, args.warm_gap, args.batch)
                warm = warm_up(settings, polls_)
                if args.warm_cache:
                    args.warm_cache.write_bytes(warm)
            print(
                f"{name} warm-up: {work.sensors:,} sensors x {args.warm} windows "
                f"{args.warm_gap:g} s apart, untimed: "
                f"{'read from ' + str(args.warm_cache) if cached else 'made'} in "
                f"{time.perf_counter() - w0:.0f} s, {len(warm) / 1e6:.0f} MB pickled"
            )
        rounds = [run(batches, settings, warm, args.per_route) for _ in range(args.runs)]
        r, s, rc, sc = (
            statistics.median(getattr(x, attr) for x in rounds) / messages * 1e6
            for attr in ("route", "shards", "route_cpu", "shards_cpu")
        )
        print(
            f"{name}: {messages:,} messages, {rounds[0].closed:,} windows emitted | "
            f"route {r:.2f} µs/msg, shards {s:.2f} µs/msg, total {r + s:.2f} µs/msg "
            f"= {1e6 / (r + s):,.0f} msg/s (median of {args.runs}) | CPU time: route "
            f"{rc:.2f}, shards {sc:.2f}, total {rc + sc:.2f} µs/msg"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
