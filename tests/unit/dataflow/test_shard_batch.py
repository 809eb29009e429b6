"""Closed windows scored in batches, column-wise (issue 28), write exactly what scoring each
window as it closed writes: every result, every field, in the same order.

The workload is seeded and meant to reach every path the batches change: many sensors with
several windows each per batch, rule alarms and ML anomalies opening and resolving alerts,
alerts going stale between two windows of a backlog and by silence, sensors forgotten and new
ones taking their slots, a sensor moving partition, a family whose settings the columns cannot
score (its sensors keep scorers of their own, in the same queue), and a snapshot in the middle.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest

from dataflow import shard
from dataflow.families import AIR_QUALITY, TEMPERATURE, Override
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.rules import Rule
from dataflow.shard import FamilySetup, ShardConfig, ShardState
from tests.factories import T0, S, shard_config

WALL0 = T0 / S
PARTS = ("p/0", "p/1")
STEP_S = 20  # seconds of readings per batch: four 5 s windows of each sensor
COLD = 35.0  # the level of the rule that keeps streaks (``config(rules)``)


def config(rules: str = "") -> ShardConfig:
    """``rules``: "streaks", temperature gets a rule that must hold for three windows;
    "override", that and a tighter threshold of their own for the sensors s10 to s19 (a second
    RuleSet in the family)."""
    base = shard_config(emit_all=True, stale_s=60.0, state_ttl_s=400.0, lateness_ns=S)
    fams = dict(base.families)
    for name, setup in fams.items():
        params = replace(setup.model, window_size=8, warmup=8, novelty_start=5)
        if name == AIR_QUALITY:  # the pattern detector: the columns refuse it
            params = replace(params, pattern=True)
        family = setup.family
        if rules and name == TEMPERATURE:
            family = replace(family, rules=(*family.rules, Rule("cold", "below", COLD, 3)))
        if rules == "override" and name == TEMPERATURE:
            tight = Rule(family.rules[0].name, "above", 60.0)
            family = replace(family, sensors=(Override("s1?", (tight,)),))
        fams[name] = FamilySetup(family, params, setup.machine)
    return replace(base, families=fams)


def workload(seed: int) -> list[tuple[float, list[Beat | Reading]]]:
    """(wall time, batch) pairs: sensors of both families on two partitions, each reading
    every 1 to 3 s, with spikes, level shifts, silences and a stream of new sensors."""
    rng = random.Random(seed)
    sensors: dict[tuple[str, str], dict[str, float]] = {}
    fresh = 0

    def new() -> None:
        nonlocal fresh
        fresh += 1
        family = TEMPERATURE if rng.random() < 0.75 else AIR_QUALITY
        sensors[family, f"s{fresh}"] = {
            "base": rng.uniform(20, 70),
            "noise": rng.choice([0.0, 0.1, 1.0, 3.0]),
            "every": rng.choice([1.0, 2.0, 3.0]),
            "part": float(rng.randrange(2)),
            "quiet_until": 0.0,
            "next": rng.uniform(0, 3),
        }

    for _ in range(120):
        new()
    batches = []
    for b in range(60):
        sec0, sec1 = b * STEP_S, (b + 1) * STEP_S
        by_part: dict[str, list[Beat | Reading]] = {p: [] for p in PARTS}
        for key, s in list(sensors.items()):
            if rng.random() < 0.01:  # falls silent for a while: stale, maybe forgotten
                s["quiet_until"] = sec0 + rng.choice([90, 200, 600])
            if b == 30 and rng.random() < 0.05:
                s["part"] = 1.0 - s["part"]  # moved
            t = s["next"]
            while t < sec1:
                if t >= s["quiet_until"]:
                    value = s["base"] + rng.gauss(0, s["noise"])
                    if rng.random() < 0.01:
                        value += rng.choice([40.0, -30.0, 200.0])
                    if rng.random() < 0.003:
                        s["base"] += rng.choice([15.0, -15.0])
                    by_part[PARTS[int(s["part"])]].append(
                        Reading(key[0], key[1], T0 + int(t * S), value)
                    )
                t += s["every"]
            s["next"] = t
        for _ in range(rng.randrange(4)):
            new()
        wall = WALL0 + sec1 + 1
        batch: list[Beat | Reading] = []
        for p, readings in by_part.items():
            rng.shuffle(readings)  # sensors interleaved, each one's readings mostly in order
            readings.sort(key=lambda r: r.ts // (7 * S))
            batch += [Beat(p, wall, WALL0), *readings]
        batches.append((wall, batch))
    return batches


def at_levels(
    batches: list[tuple[float, list[Beat | Reading]]], rules: str
) -> list[tuple[float, list[Beat | Reading]]]:
    """With rules, some temperature sensors read exactly a rule's level (both inclusive):
    those numbered 7 modulo 10 the cold rule's, 8 modulo 10 the threshold's."""
    if not rules:
        return batches
    at = {7: COLD, 8: config(rules).families[TEMPERATURE].family.rules[0].level}

    def level(r: Beat | Reading) -> Beat | Reading:
        if type(r) is Reading and r.family == TEMPERATURE and int(r.sensor_id[1:]) % 10 in at:
            return r._replace(value=at[int(r.sensor_id[1:]) % 10])
        return r

    return [(wall, [level(r) for r in batch]) for wall, batch in batches]


def run(batch: bool, seed: int, column_rows: int = shard.COLUMN_ROWS, rules: str = "") -> list[str]:
    """Every result of the workload, as its repr (exact floats, nan equal to nan), then each
    sensor's state besides its model at the end (what a clean window changes, and leaves for
    later windows to read)."""
    was = shard.BATCH, shard.COLUMN_ROWS
    shard.BATCH, shard.COLUMN_ROWS = batch, column_rows
    try:
        state = ShardState(config(rules))
        out: list[object] = []
        for i, (wall, readings) in enumerate(at_levels(workload(seed), rules)):
            out += state.ingest(readings, wall)
            out += state.expire(wall + 0.5)
            if i == 25:  # a snapshot and a restore in the middle
                state = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        out += state.flush()
        if batch:
            assert any(s.cols is not None for s in state.sensors.values())
            assert any(s._scorer is not None for s in state.sensors.values())
        else:
            assert all(s.cols is None for s in state.sensors.values())
    finally:
        shard.BATCH, shard.COLUMN_ROWS = was
    kept = [
        (key, s.cadence, s.last_end, s.streaks, [getattr(s.alerts, n) for n in s.alerts.__slots__])
        for key, s in sorted(state.sensors.items())
    ]
    return [repr(o) for o in out] + [repr(k) for k in kept]


@pytest.mark.parametrize(
    ("seed", "column_rows", "rules"),
    # The default; and small enough that most drains go column-wise, while slots still go out
    # and back (an expiry's few windows) between them; with a rule that keeps streaks; and
    # with rules that differ between a family's sensors.
    [(3, shard.COLUMN_ROWS, ""), (11, 8, ""), (5, 8, "streaks"), (7, 8, "override")],
)
def test_batches_write_what_scoring_each_window_as_it_closed_writes(
    seed: int, column_rows: int, rules: str
) -> None:
    one_by_one = run(False, seed, rules=rules)
    batched = run(True, seed, column_rows, rules)
    assert len(batched) == len(one_by_one)
    for i, (a, b) in enumerate(zip(one_by_one, batched, strict=True)):
        assert a == b, (i, a, b)
    # The workload reached what the comparison is for (coverage, not expected figures).
    text = "\n".join(batched)
    windows = sum(r.startswith("WindowResult(") for r in batched)
    assert windows > 5000
    for needle in ("ml_anomaly=True", "event='open'", "'stale'", "'forgotten'", "resolution="):
        assert needle in text, needle
    assert "why=Evidence(" in text


def test_scatters_of_a_batch_are_window_scatter_bit_for_bit() -> None:
    import math

    import numpy as np

    from dataflow.model.scoring import window_scatter

    rng = random.Random(5)
    odd = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324]
    rows = []
    for _ in range(5000):
        count = rng.choice([0, 1, 2, 3, 7, 50, 10**6])
        low = rng.choice(odd) if rng.random() < 0.1 else rng.uniform(-100, 100)
        high = rng.choice(odd) if rng.random() < 0.1 else low + abs(rng.gauss(0, 3))
        rows.append((count, low, high))
    got = shard._scatters(*(np.array(col, dtype=np.float64) for col in zip(*rows, strict=True)))
    for (count, low, high), g in zip(rows, got.tolist(), strict=True):
        want = window_scatter(count, low, high)
        assert repr(want) == repr(g), (count, low, high, want, g)


def test_a_sensor_whose_window_opens_an_alert_is_queued_as_silent_from_its_latest_hearing() -> None:
    """A touch queued behind windows is kept where the sensor's own window is queued before it:
    that window may open its alert, and the sensor is then silent from this hearing, not the
    one before (the window's own touch)."""
    from tests.factories import shard_config as factory

    state = ShardState(factory(emit_all=True, stale_s=300.0))
    hot, calm = ("temperature", "hot"), ("temperature", "calm")

    def batch(sec: float, readings: list[tuple[str, float, float]]) -> None:
        now = WALL0 + sec
        items = [Reading(TEMPERATURE, s, T0 + int(t * S), v) for s, t, v in readings]
        state.ingest([Beat(PARTS[0], now, WALL0), *items], now)

    batch(10, [("calm", 1, 60.0), ("hot", 1, 95.0)])
    batch(20, [("calm", 8, 60.0), ("hot", 9, 60.0)])  # both first windows close, in this order
    assert state.sensors[hot].alerts.alert_id is not None
    assert state.sensors[calm].alerts.alert_id is None
    silent = state.parts[PARTS[0]].stale.order
    assert list(silent) == [hot]
    assert silent[hot] == state.sensors[hot].heard > WALL0 + 1
