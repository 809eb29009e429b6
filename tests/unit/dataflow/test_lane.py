"""The shard's fast lane (``dataflow.lane``) writes what the object path writes: every result,
every field, in the same order, and leaves every sensor in the same state, whatever hands
sensors between the two paths (late, future and behind readings, silences, clock jumps and
restarts, a third window, a partition move, alerts, forgetting, a snapshot, a look at
``sensors``). Each test runs a workload with the lane on and off (``shard.LANE``) and checks that
the lane did hold sensors and fold their windows, so a lane that quietly took nothing fails."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

from dataflow import lane as lanes
from dataflow import shard
from dataflow.families import TEMPERATURE
from dataflow.progress import Beat
from dataflow.readings import Reading, Rows, Run
from dataflow.shard import ShardState
from tests.factories import T0, S, shard_config
from tests.unit.dataflow import test_shard_batch as batch_workload

Batch = list[Beat | Reading]
PARTS = ("t/0", "t/1", "t/2")


def as_rows(batch: Batch) -> list[Beat | Rows]:
    """A batch's readings as routing hands a large fleet's polls to a shard: each partition's
    readings after its beat as ``Rows``, one per run of a family."""
    out: list[Beat | Rows] = []
    run: list[Reading] = []

    def flush() -> None:
        if run:
            out.append(
                Rows(
                    run[0].family,
                    [r.sensor_id for r in run],
                    [r.ts for r in run],
                    [r.value for r in run],
                    [None] * len(run),
                )
            )
            run.clear()

    for item in batch:
        if type(item) is Beat:
            flush()
            out.append(item)
        else:
            if run and run[0].family != item.family:
                flush()
            run.append(item)
    flush()
    return out


@contextmanager
def lane_on(on: bool, column_rows: int = shard.COLUMN_ROWS) -> Iterator[None]:
    was = shard.LANE, shard.COLUMN_ROWS
    shard.LANE, shard.COLUMN_ROWS = on, column_rows
    try:
        yield
    finally:
        shard.LANE, shard.COLUMN_ROWS = was


class Seen:
    """What the lane did in a run: the most sensors it held, and the rows its loops took."""

    def __init__(self) -> None:
        self.held = 0
        self.folded = 0

    def look(self, state: ShardState) -> None:
        self.held = max(self.held, len(state._lane))


def canon(o: object) -> object:
    """``o`` as plain nested tuples, through the state each object pickles: two shards' states
    compare equal by value, where their pickles differ by which equal key tuples are shared."""
    if o is None or isinstance(o, (int, float, str, bytes)):
        return repr(o)
    if isinstance(o, np.ndarray):
        return ("ndarray", o.dtype.str, o.shape, o.tobytes())
    if isinstance(o, np.generic):
        return repr(o)
    if isinstance(o, dict):
        return ("dict", tuple((canon(k), canon(v)) for k, v in o.items()))
    if isinstance(o, (list, tuple)):
        return (type(o).__name__, tuple(canon(x) for x in o))
    if isinstance(o, (set, frozenset)):
        return ("set", tuple(sorted(repr(canon(x)) for x in o)))
    state = o.__getstate__()
    if state is None:
        state = {n: getattr(o, n) for n in getattr(o, "__slots__", ()) if hasattr(o, n)}
    return (type(o).__name__, canon(state))


def _kept(state: ShardState) -> list[str]:
    """Each sensor's state besides its model (``sensors`` hands the lane's back first)."""
    return [
        repr((key, s.cadence, s.gap, s.heard, s.batch, s.last_end, s.closed_end))
        + repr((s.windows.open, s.windows.max_ts, s.windows.closed_until, s.windows.next_close))
        + repr([getattr(s.alerts, n) for n in s.alerts.__slots__])
        for key, s in sorted(state.sensors.items())
    ]


def _count_folds(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    fold = shard.lane_fold

    def counted(*args: object) -> tuple[int, bool, int, int, int]:
        got = fold(*args)
        seen.folded += got[0] - int(args[3])  # type: ignore[call-overload]
        return got

    monkeypatch.setattr(shard, "lane_fold", counted)


def run_batches(
    on: bool, seed: int, column_rows: int, rules: str, seen: Seen
) -> tuple[list[str], object]:
    with lane_on(on, column_rows):
        state = ShardState(batch_workload.config(rules))
        out: list[object] = []
        for i, (wall, readings) in enumerate(
            batch_workload.at_levels(batch_workload.workload(seed), rules)
        ):
            out += state.ingest(as_rows(readings), wall)
            seen.look(state)
            out += state.expire(wall + 0.5)
            if i == 25:  # a snapshot and a restore in the middle
                state = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        out += state.flush()
        return [repr(o) for o in out] + _kept(state), canon(state)


@pytest.mark.parametrize(
    ("seed", "column_rows", "rules"),
    [(3, shard.COLUMN_ROWS, ""), (11, 8, ""), (5, 8, "streaks"), (7, 8, "override")],
)
def test_the_lane_writes_what_the_object_path_writes(
    seed: int, column_rows: int, rules: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch-scoring workload (alerts opening and resolving, stale and forgotten sensors,
    a family the columns cannot score, a move, a snapshot), its polls as ``Rows``."""
    off, seen = Seen(), Seen()
    plain, plain_state = run_batches(False, seed, column_rows, rules, off)
    _count_folds(seen, monkeypatch)
    laned, laned_state = run_batches(True, seed, column_rows, rules, seen)
    assert off.held == 0
    assert seen.held > 20 and seen.folded > 1000, (seen.held, seen.folded)
    assert len(laned) == len(plain)
    for i, (a, b) in enumerate(zip(plain, laned, strict=True)):
        assert a == b, (i, a, b)
    assert laned_state == plain_state


def fleet(seed: int, sensors: int = 300, rounds: int = 40) -> list[tuple[float, Batch]]:
    """(wall time, batch) pairs of a fleet read live, one reading per sensor per 5 s window,
    on three partitions, a round per batch; and what hands sensors to the object path: a
    reading from the future, a late one, one behind its clock, a silence past the stale time,
    a clock that jumps ahead and one set back, a sensor that moves partition, spikes (alerts),
    sensors that go for good (forgotten) and new ones."""
    rng = random.Random(seed)
    parts = PARTS
    home = {f"s{i}": rng.randrange(3) for i in range(sensors)}
    base = {s: rng.uniform(20, 60) for s in home}
    skew = {s: rng.uniform(0, 4.9) for s in home}  # where in its 5 s each one reads
    gone = {s for s in home if rng.random() < 0.03}
    hot = set(rng.sample(sorted(home), 10))  # overheat, then fall silent with the alert open
    batches = []
    for r in range(rounds):
        wall = T0 / S + 5 * r + 5.5
        by_part: dict[str, list[Reading]] = {p: [] for p in parts}
        for s in list(home):
            if s in gone and r > 12:
                continue
            t = 5 * r + skew[s]
            roll = rng.random()
            if roll < 0.01 and r > 20:
                continue  # a missed reading
            if roll < 0.02 and 8 < r < 12:
                t += 400.0 * (1 if rng.random() < 0.5 else -1)  # a clock jump, or set back
            value = base[s] + rng.gauss(0, 1.0)
            if rng.random() < 0.01 or (s in hot and r in (16, 17)):
                value += rng.choice([40.0, 80.0])  # a spike: ML, maybe the 90 °C rule
            by_part[parts[home[s]]].append(Reading(TEMPERATURE, s, T0 + int(t * S), value))
            if rng.random() < 0.004:  # a late one, one behind, one from the future
                back = rng.choice([-9.0, -30.0, 3600.0])
                by_part[parts[home[s]]].append(
                    Reading(TEMPERATURE, s, T0 + int((t + back) * S), value)
                )
        if r == 15:
            for s in rng.sample(sorted(home), 5):
                home[s] = (home[s] + 1) % 3  # moves partition
        if r == 18:
            for s in hot:
                skew[s] += 700.0  # a silence past the stale time, and back
        if r % 5 == 4:
            for k in range(3):
                home[f"n{r}-{k}"] = rng.randrange(3)
                base[f"n{r}-{k}"] = rng.uniform(20, 60)
                skew[f"n{r}-{k}"] = rng.uniform(0, 4.9)
        batch: Batch = []
        for p, readings in by_part.items():
            rng.shuffle(readings)
            batch += [Beat(p, wall, T0 / S), *readings]
        batches.append((wall, batch))
    return batches


def fleet_config(lateness_s: float) -> shard.ShardConfig:
    base = shard_config(
        emit_all=True, stale_s=60.0, state_ttl_s=300.0, lateness_ns=round(lateness_s * S)
    )
    fams = {
        name: replace(setup, model=replace(setup.model, window_size=8, warmup=8))
        for name, setup in base.families.items()
    }
    return replace(base, families=fams)


def run_fleet(on: bool, seed: int, lateness_s: float, seen: Seen) -> tuple[list[str], object]:
    with lane_on(on, column_rows=16):
        state = ShardState(fleet_config(lateness_s))
        out: list[object] = []
        batches = fleet(seed)
        for i, (wall, readings) in enumerate(batches):
            out += state.ingest(as_rows(readings), wall)
            seen.look(state)
            out += state.expire(wall + 2.5)
            if i == 22:  # a snapshot and a restore
                state = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
            if i == 30:
                out += [len(state.sensors)]  # a look at every sensor hands the lane's back
        wall = batches[-1][0]
        for k in range(1, 80):  # everyone falls silent: closes, stale alerts, forgetting
            now = wall + 10 * k
            out += state.ingest([Beat(p, now, T0 / S) for p in PARTS], now)
            out += state.expire(now)
            seen.look(state)
        out += state.flush()
        return [repr(o) for o in out] + _kept(state), canon(state)


@pytest.mark.parametrize(
    ("seed", "lateness_s", "held"),
    # A lateness of more than a window keeps two or three windows open per sensor; more than
    # two windows, and four or more (past ``lane.WINDOWS``) with its close wait.
    [(1, 2.0, 100), (2, 7.0, 100), (3, 12.0, 10)],
)
def test_a_fleet_read_live_gives_the_same_with_the_lane(
    seed: int, lateness_s: float, held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, plain_state = run_fleet(False, seed, lateness_s, Seen())
    seen = Seen()
    _count_folds(seen, monkeypatch)
    laned, laned_state = run_fleet(True, seed, lateness_s, seen)
    assert seen.held > held and seen.folded > 10 * held, (seen.held, seen.folded)
    assert len(laned) == len(plain)
    for i, (a, b) in enumerate(zip(plain, laned, strict=True)):
        assert a == b, (i, a, b)
    assert laned_state == plain_state
    text = "\n".join(plain)
    for needle in ("event='open'", "'stale'", "'forgotten'", "'late'", "'future'"):
        assert needle in text, needle


def test_a_snapshot_holds_every_sensor_with_its_own_state_and_the_lane_keeps_its_own() -> None:
    """Pickled, the lane's sensors are written as the object path keeps them, and stay in the
    lane: the shard pickled and the one restored from it go on alike."""
    with lane_on(True):
        batches = fleet(4, sensors=60, rounds=24)
        state = ShardState(fleet_config(2.0))
        for wall, readings in batches[:12]:
            state.ingest(as_rows(readings), wall)
            state.expire(wall + 2.5)
        held = len(state._lane)
        assert held > 30
        restored = pickle.loads(pickle.dumps(state))
        assert len(state._lane) == held
        assert len(restored._lane) == 0
        assert all(s.lane == lanes.NOT_LANED for s in restored._sensors.values())
        outs: list[list[str]] = []
        for shard_state in (state, restored):
            out: list[object] = []
            for wall, readings in batches[12:]:
                out += shard_state.ingest(as_rows(readings), wall)
                out += shard_state.expire(wall + 2.5)
            out += shard_state.flush()
            outs.append([repr(o) for o in out] + _kept(shard_state))
        assert outs[0] == outs[1]
        assert len(outs[0]) > 500


def irregular(seed: int, sensors: int = 6, readings: int = 400) -> list[tuple[float, Batch]]:
    """A few sensors read with irregular gaps (mostly a window, some far longer or shorter),
    spikes and silences, in polls of a few readings: the lead's steps and jumps, silences
    past the stale time, stretches jumped over and alerts opened by a sensor's own reading
    are each met in the lane."""
    rng = random.Random(seed)
    clock = {f"q{i}": rng.uniform(0, 5) for i in range(sensors)}
    level = {s: rng.uniform(30, 60) for s in clock}
    events: list[tuple[float, str, float]] = []
    for _ in range(readings):
        s = rng.choice(sorted(clock))
        roll = rng.random()
        step = (
            rng.uniform(11, 55)
            if roll < 0.08
            else rng.uniform(70, 400)
            if roll < 0.1
            else rng.uniform(0.2, 2)
            if roll < 0.2
            else rng.uniform(4.5, 5.5)
        )
        clock[s] += step
        value = level[s] + rng.gauss(0, 0.5)
        if rng.random() < 0.04:
            value += rng.choice([45.0, 90.0])
        events.append((clock[s], s, value))
    events.sort()
    batches = []
    i = 0
    while i < len(events):
        n = rng.randrange(1, 8)
        chunk = events[i : i + n]
        i += n
        wall = T0 / S + chunk[-1][0] + rng.uniform(0, 3)
        part = PARTS[0]
        batch: Batch = [Beat(part, wall, T0 / S)]
        batch += [Reading(TEMPERATURE, s, T0 + int(t * S), v) for t, s, v in chunk]
        batches.append((wall, batch))
    return batches


def run_irregular(on: bool, seed: int, seen: Seen) -> tuple[list[str], list[object]]:
    """The results, and the shard's whole state after each batch (the lane's synced in, not
    handed back): what only shows later, or never in a result, differs there at once."""
    with lane_on(on, column_rows=1):
        state = ShardState(fleet_config(2.0))
        out: list[object] = []
        states: list[object] = []
        for wall, readings in irregular(seed):
            out += state.ingest(as_rows(readings), wall)
            seen.look(state)
            out += state.expire(wall + 1.0)
            states.append(canon(state))
        out += state.flush()
        return [repr(o) for o in out] + _kept(state), states


def test_irregular_sensors_give_the_same_with_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Seen()
    _count_folds(seen, monkeypatch)
    texts = []
    for seed in range(30):
        plain, plain_states = run_irregular(False, seed, Seen())
        laned, laned_states = run_irregular(True, seed, seen)
        assert len(laned) == len(plain), seed
        for i, (a, b) in enumerate(zip(plain, laned, strict=True)):
            assert a == b, (seed, i, a, b)
        for i, (a, b) in enumerate(zip(plain_states, laned_states, strict=True)):
            assert a == b, (seed, "after batch", i)
        texts.append("\n".join(plain))
    assert seen.held >= 4 and seen.folded > 1500, (seen.held, seen.folded)
    text = "\n".join(texts)
    for needle in ("event='open'", "'stale'", "event='resolved'"):
        assert needle in text, needle


def one_sensor(expire_jump: bool) -> list[tuple[str, float, Batch]]:
    """One sensor, 1 s windows and a lateness of 2.5 s: three windows open, then a reading
    (``expire_jump``: input time moving on 20 s at once) that makes every one of them due in
    one step, four closes from one row or one queued close (a review found the lane's blocks
    sized for two)."""
    steps: list[tuple[str, float, Batch]] = []
    t = 0.0
    for k in range(30):
        t = 2.0 * k
        r = Reading(TEMPERATURE, "a", T0 + int(t * S), 20.0 + k % 3)
        steps.append(("ingest", T0 / S + t + 0.1, [Beat(PARTS[0], T0 / S + t + 0.1, T0 / S), r]))
    wall = T0 / S + t + 2.1
    quick = [Reading(TEMPERATURE, "a", T0 + int((t + d) * S), 21.0) for d in (1, 2)]
    steps.append(("ingest", wall, [Beat(PARTS[0], wall, T0 / S), *quick]))
    wall = T0 / S + t + (22.0 if expire_jump else 6.1)
    last = [] if expire_jump else [Reading(TEMPERATURE, "a", T0 + int((t + 6) * S), 21.0)]
    steps.append(("ingest", wall, [Beat(PARTS[0], wall, T0 / S), *last]))
    return steps


@pytest.mark.parametrize("expire_jump", [False, True])
def test_one_step_that_closes_every_open_window_gives_the_same_with_the_lane(
    expire_jump: bool,
) -> None:
    config = replace(
        shard_config(window_ns=S, lateness_ns=round(2.5 * S), emit_all=True, stale_s=600.0),
    )
    config = replace(
        config,
        families={
            n: replace(s, model=replace(s.model, window_size=8, warmup=8))
            for n, s in config.families.items()
        },
    )
    runs = []
    for on in (False, True):
        with lane_on(on, column_rows=1):
            state = ShardState(config)
            out: list[object] = []
            held = 0
            for _, wall, batch in one_sensor(expire_jump):
                out += state.ingest(as_rows(batch), wall)
                held = max(held, len(state._lane))
                out += state.expire(wall)
            out += state.flush()
            runs.append(([repr(o) for o in out] + _kept(state), held))
    (plain, _), (laned, held) = runs
    assert held == 1
    assert laned == plain
    assert sum(r.startswith("WindowResult(") for r in plain) > 30


def as_runs(batch: Batch) -> list[Beat | Run]:
    """A batch's readings as one-reading runs (what a small fleet's polls give a shard)."""
    return [
        item
        if type(item) is Beat
        else Run(item.family, item.sensor_id, (item.ts,), (item.value,), (None,))
        for item in batch
    ]


def test_sensors_read_in_runs_stay_out_of_the_lane() -> None:
    """A sensor comes into the lane once a window of it closes after it was read from a
    ``Rows``; read in runs from then on, it stays out (each run would hand it back), and the
    results are those of the shard without the lane."""
    batches = fleet(5, sensors=60, rounds=24)
    outs: list[list[str]] = []
    for on in (True, False):
        with lane_on(on):
            state = ShardState(fleet_config(2.0))
            out: list[object] = []
            for i, (wall, readings) in enumerate(batches):
                out += state.ingest(as_rows(readings) if i < 12 else as_runs(readings), wall)
                out += state.expire(wall + 2.5)
                if on and i == 11:
                    assert len(state._lane) > 30
                if on and i >= 13:
                    assert len(state._lane) == 0, i
            out += state.flush()
            outs.append([repr(o) for o in out] + _kept(state))
    assert outs[0] == outs[1]
    assert len(outs[0]) > 500
