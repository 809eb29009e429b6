"""What routing hands a shard (``Rows``, ``Run``, single ``Reading``s, a partition's ``Beat``
before each poll's share) and how often the shard is snapshotted change nothing it writes.

A differential check: one seeded workload (``test_shard_batch``'s: both families on two
partitions, spikes and level shifts opening and resolving alerts, silences going stale and
forgotten, a sensor moving partition, new sensors), encoded as the producer writes it, read in
polls of random sizes (some of distinct sensors: ``Rows``; some with a sensor's several
readings: ``Run``s; some with a bad message: single readings) and routed by ``route`` into three
shards. Each shard's batch goes to two ``ShardState``s: one reads it as routed and is pickled and
restored, as a recovery snapshot would, at random batches; the other reads each ``Rows`` as
single ``Reading``s and is never snapshotted. Every call's results, their classes and order, the
counts, the final flush and each sensor's state must be equal. A column-wise shard is to be held
to the same check.

Runs stay runs on both sides: a run is heard once, at its last reading (a gateway's bundle split
by a poll is one hearing), so its sensor's usual gap and its windows' close times may differ a
little from those of the same readings one by one; ``test_runs`` compares what may not differ
(its windows and late readings).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from functools import cache

import pytest

from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.progress import Beat, Poll, part_name
from dataflow.readings import Reading, Rows, Run
from dataflow.routing import KeyCache, ShardBatch, route
from dataflow.shard import ShardState
from producer.shapes import encode
from tests.factories import topics
from tests.fakes import FakeMessage
from tests.unit.dataflow.test_shard_batch import WALL0, config, workload

SHARDS = 3
SNAP = 0.2
TOPIC = {TEMPERATURE: "temperature_readings", AIR_QUALITY: "air-quality"}


def polls(batch: list[Beat | Reading], wall: float, rng: random.Random) -> list[Poll]:
    """A batch's readings as the source would read them: per topic and partition, in order, in
    polls of 1 to 60 messages, each with the source's word on the partition (caught up, or
    behind); now and then a message no family can read among them."""
    by_part: dict[tuple[str, int], list[FakeMessage]] = {}
    part = 0
    for item in batch:
        if type(item) is Beat:
            part = int(item.part.rsplit("/", 1)[1])
            continue
        assert type(item) is Reading
        topic = TOPIC[item.family]
        msgs = by_part.setdefault((topic, part), [])
        key, value = encode(item)
        if rng.random() < 0.003:
            value = b"{not json"
        msgs.append(FakeMessage(key, value, topic, part, len(msgs), None))
    out = []
    # Half the batches read as a backlog: the source's word is that the partition is behind,
    # so input time is what the readings say (the partition's lead), not the wall clock.
    since = WALL0 if rng.random() < 0.5 else None
    for (topic, part), msgs in by_part.items():
        at = 0
        while at < len(msgs):
            size = rng.choice([1, 3, 8, 25, 60])
            beat = Beat(part_name(topic, part), wall, since)
            out.append(Poll(msgs[at : at + size], beat))
            at += size
    return out


def singles(batch: ShardBatch) -> list[Reading | Run | Beat]:
    """A shard's batch with each ``Rows`` as single readings, in the same order."""
    flat: list[Reading | Run | Beat] = []
    for item in batch:
        if type(item) is Rows:
            flat.extend(item.readings())
        else:
            assert type(item) is not Rows
            flat.append(item)
    return flat


def typed(results: Iterable[object]) -> list[tuple[object, ...]]:
    """Results as their reprs (exact floats; nan equal to nan) with their classes and those of
    a refused reading's (only a ``Reading`` has the ``.source`` a dead letter is made from)."""
    return [(type(r), type(getattr(r, "reading", None)), repr(r)) for r in results]


def sensors(state: ShardState) -> list[tuple[object, ...]]:
    """Each sensor's windows, clocks and alert state: what later batches read."""
    return [
        (
            key,
            repr(s.windows.open),
            s.windows.max_ts,
            s.windows.closed_until,
            s.windows.next_close,
            s.heard,
            s.gap,
            s.cadence,
            s.batch,
            s.late_from,
            s.late_n,
            s.last_end,
            s.alerts.alert_id,
            None if s.part is None else s.part.clock.name,
        )
        for key, s in sorted(state.sensors.items())
    ]


@cache
def compare(seed: int) -> dict[str, int]:
    """Run the check; return what was routed and counted, for the coverage test."""
    rng = random.Random(seed)
    cfg = config()
    routed: list[ShardState] = [ShardState(cfg) for _ in range(SHARDS)]
    single: list[ShardState] = [ShardState(cfg) for _ in range(SHARDS)]
    cache: dict[str, KeyCache] = {}
    seen = {"rows": 0, "runs": 0, "readings": 0, "dead": 0, "snapshots": 0}
    fmts = topics()
    for wall, batch in workload(seed):
        by_shard, dead, _ = route(polls(batch, wall, rng), fmts, SHARDS, cache)
        seen["dead"] += len(dead)
        for shard, items in by_shard.items():
            for item in items:
                kind = type(item)
                if kind is not Beat:
                    seen[{Rows: "rows", Run: "runs", Reading: "readings"}[kind]] += 1
            got = routed[shard].ingest(items, wall)
            want = single[shard].ingest(singles(items), wall)
            assert typed(got) == typed(want)
        for shard in range(SHARDS):
            assert typed(routed[shard].expire(wall + 0.5)) == typed(
                single[shard].expire(wall + 0.5)
            )
            counted = routed[shard].counts.take()
            assert counted == single[shard].counts.take()
            for name, n in counted.items():
                seen[name] = seen.get(name, 0) + n
            if rng.random() < SNAP:  # a recovery snapshot, restored
                data = pickle.dumps(routed[shard], protocol=pickle.HIGHEST_PROTOCOL)
                routed[shard] = pickle.loads(data)
                seen["snapshots"] += 1
    for a, b in zip(routed, single, strict=True):
        assert typed(a.flush()) == typed(b.flush())
        assert sensors(a) == sensors(b)
    return seen


@pytest.mark.parametrize("seed", [1, 2])
def test_the_hand_off_and_snapshots_change_nothing_a_shard_writes(seed: int) -> None:
    compare(seed)


def test_the_check_reaches_every_shape_and_rule() -> None:
    """The workload does reach what it is meant to: every shape of the hand-off, dead letters,
    snapshots, alerts opened and resolved (by clean windows and as stale), sensors forgotten,
    late readings and a sensor that moved."""
    seen = compare(1)
    for name in ("rows", "runs", "readings", "dead", "snapshots", "windows", "anomalies"):
        assert seen[name] > 0, name
    for name in ("alerts_opened", "alerts_resolved", "forgotten", "late", "moved"):
        assert seen[name] > 0, name
