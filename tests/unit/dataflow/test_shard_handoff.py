"""What routing hands a shard (``Rows``, ``Run``, single ``Reading``s, a partition's ``Beat``
before each poll's share) and how often the shard is snapshotted change nothing it writes.

A differential check: a seeded workload (``test_shard_batch``'s: both families on two
partitions, spikes and level shifts opening and resolving alerts, silences going stale and
forgotten, a sensor moving partition, new sensors; or a large fleet's shape, ``fleet``: one
reading a window, windows closed by input time; or ``machines``: pumps whose channels come in
one message and are scored together by the machine's model), encoded as the producer writes
it, read in polls of random sizes (some of distinct sensors: ``Rows``; some with a sensor's several
readings: ``Run``s; some with a bad message: single readings) and routed by ``route`` into three
shards. Each shard's batch goes to two ``ShardState``s: one reads it as routed (half the time
after a pickle round trip, as a batch sent to a worker in another process) and is pickled and
restored, as a recovery snapshot would, at random batches; the other reads each ``Rows`` as
single ``Reading``s and is never snapshotted. Every call's results, their classes and order, the
counts, the final flush and each sensor's state must be equal; read live, or as a backlog an
hour late (input time then the partitions' leads alone). A column-wise shard is to be held to
the same check.

Runs stay runs on both sides: a run is heard once, at its last reading (a gateway's bundle split
by a poll is one hearing), so its sensor's usual gap and its windows' close times may differ a
little from those of the same readings one by one; ``test_runs`` compares what may not differ
(its windows and late readings).
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Iterable
from dataclasses import replace
from functools import cache

import pytest

from dataflow.families import AIR_QUALITY, TEMPERATURE, parse_families
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import ModelParams
from dataflow.progress import Beat, Poll, part_name
from dataflow.readings import Format, Reading, Rows, Run, formats_by_topic
from dataflow.routing import KeyCache, ShardBatch, route
from dataflow.shard import FamilySetup, LateReading, ShardConfig, ShardState, WindowResult
from producer.shapes import build_message, encode
from tests.factories import PUMPS, T0, S, shard_config, topics
from tests.fakes import FakeMessage
from tests.unit.dataflow.test_shard_batch import WALL0, config, workload

SHARDS = 3
SNAP = 0.2
TOPIC = {TEMPERATURE: "temperature_readings", AIR_QUALITY: "air-quality", "pump": "pumps"}
# A machine family: one message per pump carries both channels, read as ``<pump>/current`` and
# ``<pump>/flow``; the pump's windows are scored together once every channel's has closed.
(PUMP,) = parse_families(PUMPS, "pumps.yaml")  # the pumps of the factories: current and flow


def polls(
    batch: list[Beat | Reading], wall: float, rng: random.Random, behind: bool = False
) -> list[Poll]:
    """A batch's readings as the source would read them: per topic and partition, in order, in
    polls of 1 to 60 messages, each with the source's word on the partition (caught up, or
    behind; ``behind``: always behind, a backlog read long after it was written); now and then
    a message no family can read among them."""
    by_part: dict[tuple[str, int], list[FakeMessage]] = {}
    part = 0
    channels: list[Reading] = []  # a pump's readings, one per channel, make one message
    for item in batch:
        if type(item) is Beat:
            part = int(item.part.rsplit("/", 1)[1])
            continue
        assert type(item) is Reading
        topic = TOPIC[item.family]
        msgs = by_part.setdefault((topic, part), [])
        if item.family == PUMP.name:
            channels.append(item)
            if len(channels) < len(PUMP.channels):
                continue
            pump = item.sensor_id.rpartition("/")[0]
            values = tuple(r.value for r in channels)
            msg = build_message((PUMP,), pump, item.ts, (values,))
            key, value, channels = msg.key, msg.value, []
        else:
            key, value = encode(item)
        if rng.random() < 0.003:
            value = b"{not json"
        msgs.append(FakeMessage(key, value, topic, part, len(msgs), None))
    out = []
    # Half the batches read as a backlog: the source's word is that the partition is behind,
    # so input time is what the readings say (the partition's lead), not the wall clock.
    since = WALL0 if rng.random() < 0.5 and not behind else None
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
            flat.append(item)
    return flat


def typed(results: Iterable[object]) -> list[tuple[object, ...]]:
    """Results as their reprs (exact floats; nan equal to nan) with their classes; a refused
    reading as its class, its reason and what its dead letter is made of (only a ``Reading``
    has the ``.source`` to make one from; a batch that crossed processes carries its sources
    as ``SourceRef``s, not the messages)."""
    out: list[tuple[object, ...]] = []
    for r in results:
        if type(r) is LateReading:
            src = r.reading.source
            where = (src.key(), src.value(), src.topic(), src.partition(), src.offset())
            out.append((LateReading, type(r.reading), r.reason, tuple(r.reading[:4]), where))
        else:
            out.append((type(r), None, repr(r)))
    return out


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


def fleet(seed: int) -> list[tuple[float, list[Beat | Reading]]]:
    """(wall time, batch) pairs of a large fleet's shape: 600 sensors on two partitions, each
    reading once every 5 s (one reading a window), read a second at a time, so most windows
    close by their partition's input time; spikes open alerts, silences make them stale and
    forget sensors, and now and then a reading comes a batch late, or too late."""
    rng = random.Random(seed)
    sensors = [
        (
            TEMPERATURE if i % 4 else AIR_QUALITY,
            f"f{i}",
            i % 2,
            rng.uniform(0.0, 5.0),  # its phase
            rng.uniform(20.0, 70.0),  # its level
        )
        for i in range(600)
    ]
    quiet: dict[str, float] = {}
    held: dict[int, list[list[Reading]]] = {}  # by the step they arrive at, per partition
    out = []
    for step in range(150):
        t0 = float(step)
        by_part = held.pop(step, [[], []])
        for family, sid, part, phase, level in sensors:
            if quiet.get(sid, -1.0) > t0:
                continue
            if rng.random() < 0.001:
                quiet[sid] = t0 + rng.choice([30.0, 90.0, 500.0])
            k = math.ceil((t0 - phase) / 5.0)
            t = phase + 5.0 * k
            if t0 <= t < t0 + 1.0:
                value = level + rng.gauss(0.0, 1.0) + (40.0 if rng.random() < 0.02 else 0.0)
                ahead = 400.0 if rng.random() < 0.0005 else 0.0  # a clock far ahead: refused
                if sid in ("f7", "f8"):  # clocks a minute ahead: never a partition's input time
                    ahead += 60.0
                reading = Reading(family, sid, T0 + int((t + ahead) * S), value)
                if rng.random() < 0.02:  # comes a second late, or eight (too late)
                    later = held.setdefault(step + rng.choice([1, 8]), [[], []])
                    later[part].append(reading)
                else:
                    by_part[part].append(reading)
        wall = WALL0 + t0 + 1.0
        batch: list[Beat | Reading] = []
        for part, readings in enumerate(by_part):
            rng.shuffle(readings)
            batch += [Beat(f"p/{part}", wall, WALL0), *readings]
        out.append((wall, batch))
    return out


def machines(seed: int) -> list[tuple[float, list[Beat | Reading]]]:
    """(wall time, batch) pairs of a machine family's shape: 30 pumps on two partitions, each
    sending its current and flow in one message every 1 or 2 s, read two seconds at a time,
    beside temperature sensors on the same partitions; some pumps' flow falls against their
    current (machine alerts), a message now and then has no flow (the pump's window waits for
    that channel's), some fall silent for a while (stale, forgotten, back), and now and then a
    message comes a batch late."""
    rng = random.Random(seed)
    pumps = [(f"m{i}", i % 2, rng.choice([1.0, 2.0]), rng.uniform(0.0, 1.0)) for i in range(30)]
    broken = {name: rng.uniform(120.0, 240.0) for name, *_ in pumps if rng.random() < 0.3}
    temps = [(f"t{i}", i % 2, rng.uniform(20.0, 70.0)) for i in range(20)]
    quiet: dict[str, float] = {}
    held: dict[int, list[list[Reading]]] = {}
    out = []
    for step in range(150):
        t0 = 2.0 * step
        by_part = held.pop(step, [[], []])
        for name, part, every, phase in pumps:
            if quiet.get(name, -1.0) > t0:
                continue
            if rng.random() < 0.003:
                quiet[name] = t0 + rng.choice([30.0, 90.0])
            t = phase + every * math.ceil((t0 - phase) / every)
            while t < t0 + 2.0:
                load = rng.gauss(0.0, 1.0)
                drop = 6.0 if t > broken.get(name, math.inf) else 0.0
                ts = T0 + int(t * S)
                flow = math.nan if rng.random() < 0.1 else 50 + 5 * load - drop  # not sent
                pair = [
                    Reading(PUMP.name, f"{name}/current", ts, 20 + 2 * load + rng.gauss(0, 0.2)),
                    Reading(PUMP.name, f"{name}/flow", ts, flow),
                ]
                if rng.random() < 0.01:
                    held.setdefault(step + 1, [[], []])[part].extend(pair)
                else:
                    by_part[part].extend(pair)
                t += every
        for sid, part, level in temps:
            for k in range(2):
                spike = 45.0 if rng.random() < 0.01 else 0.0
                ts = T0 + int((t0 + k + 0.5) * S)
                by_part[part].append(Reading(TEMPERATURE, sid, ts, level + spike))
        wall = WALL0 + t0 + 2.0
        batch: list[Beat | Reading] = []
        for part, readings in enumerate(by_part):
            batch += [Beat(f"p/{part}", wall, WALL0), *readings]
        out.append((wall, batch))
    return out


SHAPES = {"mixed": workload, "fleet": fleet, "machines": machines}


def with_pumps(cfg: ShardConfig) -> ShardConfig:
    """``cfg`` with the pump family beside its own, its machine model ready after 20 windows."""
    setup = FamilySetup(
        PUMP,
        ModelParams(limits=(-1000.0, 1000.0), window_ns=5 * S, window_size=20, warmup=20),
        MachineParams(memory=100, warmup=20),
    )
    return replace(cfg, families={**cfg.families, PUMP.name: setup})


def formats() -> dict[str, list[Format]]:
    return {**topics(), **formats_by_topic((PUMP,))}


def machine_results(results: Iterable[object], seen: dict[str, int]) -> None:
    """Count the machines' windows among ``results``, and the machine alerts they opened."""
    for r in results:
        if type(r) is WindowResult and r.drivers is not None:
            seen["machine_windows"] += 1
            seen["machine_alerts"] += r.alert is not None and r.alert.event == "open"


@cache
def compare(
    seed: int, shape: str = "mixed", defaults: bool = False, backlog: float = 0.0
) -> dict[str, int]:
    """Run the check on one of the workloads (``SHAPES``); return what was routed and counted,
    for the coverage tests. ``defaults``: the shard's default settings (lateness, idle, stale,
    TTL) instead of ``test_shard_batch``'s shorter ones, which make alerts stale and sensors
    forgotten within the workload. ``backlog``: read that many seconds after it was written,
    the source saying each partition is behind, so input time is the partitions' leads' alone
    (``progress.Lead``), and what a snapshot keeps of them counts."""
    rng = random.Random(seed)
    cfg = with_pumps(shard_config(emit_all=True) if defaults else config())
    routed: list[ShardState] = [ShardState(cfg) for _ in range(SHARDS)]
    single: list[ShardState] = [ShardState(cfg) for _ in range(SHARDS)]
    cache: dict[str, KeyCache] = {}
    seen = {"rows": 0, "runs": 0, "readings": 0, "dead": 0, "snapshots": 0, "closed_idle": 0}
    seen["machine_windows"] = seen["machine_alerts"] = 0
    fmts = formats()
    for written, batch in SHAPES[shape](seed):
        wall = written + backlog
        by_shard, dead, _ = route(polls(batch, wall, rng, backlog > 0), fmts, SHARDS, cache)
        seen["dead"] += len(dead)
        for shard, items in by_shard.items():
            for item in items:
                kind = type(item)
                if kind is not Beat:
                    seen[{Rows: "rows", Run: "runs", Reading: "readings"}[kind]] += 1
            sent = items
            if rng.random() < 0.5:  # sent to a worker in another process
                sent = pickle.loads(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
            got = routed[shard].ingest(sent, wall)
            want = single[shard].ingest(singles(items), wall)
            assert typed(got) == typed(want)
            machine_results(got, seen)
        for shard in range(SHARDS):
            expired = routed[shard].expire(wall + 0.5)
            assert typed(expired) == typed(single[shard].expire(wall + 0.5))
            seen["closed_idle"] += sum(type(r) is WindowResult for r in expired)
            machine_results(expired, seen)
            counted = routed[shard].counts.take()
            assert counted == single[shard].counts.take()
            for name, n in counted.items():
                seen[name] = seen.get(name, 0) + n
            if rng.random() < SNAP:  # a recovery snapshot, restored
                data = pickle.dumps(routed[shard], protocol=pickle.HIGHEST_PROTOCOL)
                routed[shard] = pickle.loads(data)
                seen["snapshots"] += 1
    for a, b in zip(routed, single, strict=True):
        flushed = a.flush()
        assert typed(flushed) == typed(b.flush())
        machine_results(flushed, seen)
        assert sensors(a) == sensors(b)
        assert sorted(a.machines) == sorted(b.machines)
    return seen


@pytest.mark.parametrize("seed", [1, 2])
def test_the_hand_off_and_snapshots_change_nothing_a_shard_writes(seed: int) -> None:
    compare(seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_fleet_s_shape_changes_nothing_either(seed: int) -> None:
    """The fleet's shape reaches what it is meant to: polls of distinct sensors (``Rows``) far
    more than anything else, most windows closed by input time, alerts, late readings and ones
    from the future, forgotten sensors."""
    seen = compare(seed, "fleet")
    assert seen["rows"] > seen["readings"] + seen["runs"]  # of the items routed
    assert seen["closed_idle"] > seen["windows"] / 2
    for name in ("alerts_opened", "alerts_resolved", "late", "future", "forgotten", "snapshots"):
        assert seen[name] > 0, name


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_at_the_default_settings(shape: str) -> None:
    seen = compare(3, shape, defaults=True)
    assert seen["rows"] and seen["windows"] and seen["late"] and seen["alerts_opened"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_machine_family_changes_nothing_either(seed: int) -> None:
    """Pumps' channels, routed by pump, windows scored by the machine's model once every
    channel's closed: machine windows and alerts, late and stale channels."""
    seen = compare(seed, "machines")
    assert seen["machine_windows"] > 0 and seen["machine_alerts"] > 0
    for name in ("rows", "runs", "late", "snapshots", "forgotten"):
        assert seen[name] > 0, name


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_read_as_a_backlog_an_hour_late(shape: str) -> None:
    """Input time by the partitions' leads alone (the wall clock an hour past every reading):
    the fleet's two sensors a minute ahead never move it, and a snapshot keeps each lead (a
    lead lost at restore, taken anew by the next sensor read, fails the fleet's shape)."""
    seen = compare(4, shape, backlog=3600.0)
    assert seen["snapshots"] and seen["windows"] and seen["alerts_opened"]
    assert seen["closed_idle"] > 0  # windows still close by input time, though never the wall's


def test_the_check_reaches_every_shape_and_rule() -> None:
    """The workload does reach what it is meant to: every shape of the hand-off, dead letters,
    snapshots, alerts opened and resolved (by clean windows and as stale), sensors forgotten,
    late readings and a sensor that moved."""
    seen = compare(1)
    for name in ("rows", "runs", "readings", "dead", "snapshots", "windows", "anomalies"):
        assert seen[name] > 0, name
    for name in ("alerts_opened", "alerts_resolved", "forgotten", "late", "moved"):
        assert seen[name] > 0, name
