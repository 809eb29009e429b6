"""A seeded differential fuzz of ``ShardState``'s alert lifecycle: the alert events (event,
alert_id, resolution) per sensor must not depend on how the readings were read (live with the
timers, from a backlog in batches, routed polls of ``Run``s, or a restart in the middle)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import orjson

from dataflow.families import TEMPERATURE, parse_families
from dataflow.flow import ShardLogic, restore
from dataflow.progress import Beat
from dataflow.readings import Reading, formats_by_topic
from dataflow.routing import route
from dataflow.shard import SensorEvent, ShardConfig, ShardState, WindowResult
from dataflow.status import Status
from tests.factories import (
    PUMPS,
    PUMPS_CHANNELS,
    T0,
    S,
    families,
    pump_config,
    shard_config,
    topics,
)
from tests.fakes import FakeMessage

W0 = T0 / S
P = "temperature_readings/0"
PP = "pumps/0"


@dataclass
class Scenario:
    window: int  # s
    stale: float = 300.0
    lateness: float = 2.0
    # (sensor, seconds after T0, value), in time order
    readings: list[tuple[str, float, float]] = field(default_factory=list)
    machine: bool = False  # pump channels "<machine>/current", "<machine>/flow"

    def config(self) -> ShardConfig:
        if self.machine:
            return pump_config(lateness_ns=round(self.lateness * S), stale_s=self.stale)
        return shard_config(
            fams=families(float(self.window)),
            window_ns=self.window * S,
            lateness_ns=round(self.lateness * S),
            stale_s=self.stale,
        )

    def code(self) -> str:
        return repr(self)


def to_readings(sc: Scenario) -> list[Reading]:
    fam = "pump" if sc.machine else TEMPERATURE
    return [Reading(fam, s, T0 + round(t * S), v) for s, t, v in sc.readings]


def alert_events(out: list) -> dict[str, list[tuple[str, str, str | None]]]:
    by: dict[str, list] = {}
    for o in out:
        if isinstance(o, WindowResult | SensorEvent) and o.alert is not None:
            by.setdefault(o.sensor_id, []).append(
                (o.alert.event, o.alert.alert_id, o.alert.resolution)
            )
    return by


def arrival(t: float) -> int:
    """The second (after W0) at which a reading made at ``t`` is read live (0.3 s later)."""
    return math.ceil(t + 0.3)


def _next_due(state: ShardState, part: str) -> float | None:
    """Input time of the next timer of ``part`` (closes or stale), or None."""
    p = state.parts.get(part)
    if p is None:
        return None
    dues = []
    d = p.closes.first()
    if d is not None:
        dues.append(d)
    if state.config.stale_s > 0:
        d = p.stale.next_due(state.config.stale_s)
        if d is not None:
            dues.append(d)
    return min(dues) if dues else None


def live(
    state: ShardState,
    readings: list[Reading],
    until: int,
    part: str = P,
    skip: bool = True,
    start: int = 0,
    since: float = W0,
    base: float = W0,
) -> list:
    """Each reading read 0.3 s after it was made, the partition caught up, a batch a second
    (seconds in which nothing can happen are skipped: the next beat vouches for them)."""
    out: list = []
    by_sec: dict[int, list[Reading]] = {}
    for r in readings:
        by_sec.setdefault(arrival((r.ts - T0) / S), []).append(r)
    arrivals = sorted(s for s in by_sec if s >= start)
    ai = 0
    sec = start
    while sec < until:
        wall = base + sec + 0.5
        out += state.ingest([Beat(part, wall, since), *by_sec.get(sec, ())], wall)
        out += state.expire(wall)
        if not skip or state.machines:
            sec += 1
            continue
        while ai < len(arrivals) and arrivals[ai] <= sec:
            ai += 1
        nxt = arrivals[ai] if ai < len(arrivals) else until
        due = _next_due(state, part)
        if due is not None:
            p = state.parts[part]
            ahead = due - p.clock.at(wall, state.config.grace_s)
            nxt = min(nxt, sec + max(1, math.floor(ahead)))
        if state.next_sweep != float("inf"):
            nxt = min(nxt, max(sec + 1, math.floor(state.next_sweep - base - 0.5)))
        sec = max(sec + 1, min(nxt, until))
    return out


def backlog(
    state: ShardState, readings: list[Reading], per: int, wall: float, part: str = P
) -> list:
    """``per`` readings a poll, read long after, the partition not caught up; the wall clock
    moves 1 ms a poll (the shard reads a sensor's gap and silence-queue place once per call,
    told apart by its wall time)."""
    out: list = []
    for i in range(0, len(readings), per):
        now = wall + i / per / 1000
        out += state.ingest([Beat(part, now, None), *readings[i : i + per]], now)
        out += state.expire(now)
    return out


def message(r: Reading, offset: int) -> FakeMessage:
    body = orjson.dumps({"Temperature_C": r.value, "Timestamp": r.ts})
    return FakeMessage(r.sensor_id.encode(), body, "temperature_readings", 0, offset)


def pump_messages(readings: list[Reading]) -> list[FakeMessage]:
    """A message per pump per time, with the channels read then (one alone: the other's format
    finds no field, a dead letter, as a pump sending one channel would give)."""
    bodies: dict[tuple[str, int], dict] = {}
    for r in readings:
        machine, _, channel = r.sensor_id.partition("/")
        body = bodies.setdefault((machine, r.ts), {"asset": machine, "ts": r.ts})
        body[PUMPS_CHANNELS[channel]] = r.value
    return [
        FakeMessage(m.encode(), orjson.dumps(body), "pumps", 0, i)
        for i, ((m, _), body) in enumerate(bodies.items())
    ]


def routed(
    state: ShardState, readings: list[Reading], per: int, wall: float, machine: bool = False
) -> list:
    if machine:
        msgs = pump_messages(readings)
        tops, part = formats_by_topic(parse_families(PUMPS, "pumps.yaml")), PP
    else:
        msgs, tops, part = [message(r, i) for i, r in enumerate(readings)], topics(), P
    out: list = []
    for i in range(0, len(msgs), per):
        now = wall + i / per / 1000
        by_shard = route([Beat(part, now, None), msgs[i : i + per]], tops, 1)[0]
        for batch in by_shard.values():
            out += state.ingest(batch, now)
        out += state.expire(now)
    return out


def until_of(sc: Scenario) -> int:
    return arrival(sc.readings[-1][1]) + 1


def tail_of(sc: Scenario) -> int:
    """Seconds the partition stays caught up after the last reading, the wall clock running
    on, before the input ends: long enough for every silence to go stale (a backlog's
    sensors go stale once the flow has caught up, not while no reading moves input time)."""
    last: dict[str, float] = {}
    gap = 0.0
    for s, t, _ in sc.readings:
        if s in last:
            gap = max(gap, t - last[s])
        last[s] = t
    # (plus the whole span: a backlog's input time may be far behind its last readings, when
    # one sensor read alone and slower than the idle timeout, ``Lead``)
    span = sc.readings[-1][1] - sc.readings[0][1]
    return int(3 * max(sc.stale, 3 * gap) + 2 * sc.window + sc.lateness + 100 + span)


def caught_up(state: ShardState, wall: float, seconds: int, part: str) -> list:
    """The flow caught up at ``wall`` and running on for ``seconds``, nothing more to read."""
    return live(state, [], seconds, part, start=0, since=wall, base=wall)


def run_mode(sc: Scenario, mode: str, cut: int | None = None) -> dict:
    cfg = sc.config()
    readings = to_readings(sc)
    part = PP if sc.machine else P
    wall = W0 + sc.readings[-1][1] + 1000
    tail_wall = wall + len(readings) / 1000 + 1
    state = ShardState(cfg)
    tail = tail_of(sc)
    end = until_of(sc) + tail
    if mode == "live":
        return alert_events(live(state, readings, end, part) + state.flush())
    if mode == "live-full":
        return alert_events(live(state, readings, end, part, skip=False) + state.flush())
    kind, _, n = mode.partition("-")
    if kind == "backlog":
        out = backlog(state, readings, int(n), wall, part)
        return alert_events(out + caught_up(state, tail_wall, tail, part) + state.flush())
    if kind == "routed":
        out = routed(state, readings, int(n), wall, sc.machine)
        return alert_events(out + caught_up(state, tail_wall, tail, part) + state.flush())
    if kind in ("restart", "restartr"):
        assert cut is not None
        before = live(
            state, [r for r in readings if arrival((r.ts - T0) / S) <= cut], cut + 1, part
        )
        blob = ShardLogic(state, lambda: 0.0, Status(0), snapshots=True).snapshot()
        assert blob is not None
        again = restore(blob, cfg)
        again.reconfigure(cfg, wall)
        rest = [r for r in readings if arrival((r.ts - T0) / S) > cut]
        if kind == "restart":
            after = backlog(again, rest, int(n), wall, part)
        else:
            after = routed(again, rest, int(n), wall, sc.machine)
        after += caught_up(again, tail_wall, tail, part)
        return alert_events(before + after + again.flush())
    raise ValueError(mode)


# -- scenarios -------------------------------------------------------------------------------


def _cadence(rng: random.Random) -> float:
    return round(math.exp(rng.uniform(0, math.log(700))), 1)


def _silence(rng: random.Random, cad: float, stale: float) -> float:
    kind = rng.random()
    if kind < 0.25:
        return rng.uniform(cad, max(cad + 1, stale * 0.9))  # shorter than the stale time
    if kind < 0.5:
        return rng.uniform(stale * 1.05, stale * 4)  # longer than the stale time
    if kind < 0.75:
        return rng.uniform(3.2 * cad, 5 * cad)  # longer than 3x the cadence
    return rng.uniform(stale * 1.02, max(stale * 1.1, 3.5 * cad))  # past both, barely


def _values(rng: random.Random, n: int) -> list[float]:
    style = rng.random()
    if style < 0.3:
        v = rng.choice([60.0, 95.0])
        return [v] * n
    if style < 0.6:
        p = rng.uniform(0.1, 0.9)
        return [95.0 if rng.random() < p else 60.0 for _ in range(n)]
    cut = rng.randint(0, n)
    hot = rng.random() < 0.5
    return [(95.0 if hot else 60.0) if i < cut else (60.0 if hot else 95.0) for i in range(n)]


def temp_scenario(seed: int, max_readings: int = 160, max_span: float = 30_000) -> Scenario:
    rng = random.Random(seed)
    window = rng.choice([5, 10, 15, 30, 60, 60, 120, 300, 600, rng.randint(5, 600)])
    stale = 300.0 if rng.random() < 0.8 else rng.choice([60.0, 120.0, 600.0])
    lateness = 2.0 if rng.random() < 0.8 else rng.choice([0.0, 10.0, 30.0])
    n_sensors = rng.randint(1, 3)
    readings: list[tuple[str, float, float]] = []
    per_sensor = max_readings // n_sensors
    for k in range(n_sensors):
        name = f"s{k}"
        t = rng.uniform(0, 30)
        count = 0
        for _ in range(rng.randint(1, 4)):
            cad = _cadence(rng)
            n = rng.randint(2, 25)
            n = min(n, per_sensor - count, max(2, int(max_span / 4 / cad)))
            if n <= 0:
                break
            vals = _values(rng, n)
            jitter = rng.random() < 0.5
            for i in range(n):
                readings.append((name, round(t, 3), vals[i]))
                t += cad * (rng.uniform(0.8, 1.2) if jitter else 1.0)
            count += n
            t += _silence(rng, cad, stale) - cad
            if t > max_span:
                break
    readings.sort(key=lambda r: (r[1], r[0]))
    # distinct times per sensor
    seen = set()
    uniq = []
    for r in readings:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            uniq.append(r)
    return Scenario(window, stale, lateness, uniq)


def pump_scenario(seed: int) -> Scenario:
    """One or two pumps, a reading per channel per 5 s, the current/flow relation breaking
    and mending, silences (both channels, or one)."""
    rng = random.Random(seed)
    stale = rng.choice([60.0, 60.0, 120.0, 300.0])
    n_machines = rng.randint(1, 2)
    readings: list[tuple[str, float, float]] = []
    for m in range(n_machines):
        mid = f"m{m}"
        t = 1.0 + m * 0.5
        broken = False
        segs = rng.randint(2, 4)
        for seg in range(segs):
            n = rng.randint(80, 200) if seg == 0 else rng.randint(10, 120)
            if seg > 0 and rng.random() < 0.6:
                broken = not broken
            cad = rng.choice([5.0, 5.0, 10.0, 2.5])
            only = rng.random() < 0.2  # one channel silent in this segment
            for _ in range(n):
                load = rng.gauss(0, 1)
                cur = 20 + 2 * load + rng.gauss(0, 0.2)
                flow = 50 + 5 * load + rng.gauss(0, 0.5) - (4.0 if broken else 0.0)
                readings.append((f"{mid}/current", round(t, 3), cur))
                if not only:
                    readings.append((f"{mid}/flow", round(t, 3), flow))
                t += cad
            gap = rng.choice([rng.uniform(5, stale * 0.8), rng.uniform(stale * 1.1, stale * 3)])
            t += gap
    readings.sort(key=lambda r: (r[1], r[0]))
    return Scenario(5, stale, 0.0, readings, machine=True)


TEMP_MODES = [
    "backlog-1",
    "backlog-10",
    "backlog-500",
    "routed-1",
    "routed-10",
    "routed-500",
]
PUMP_MODES = TEMP_MODES


def check(sc: Scenario, seed: int, modes: list[str] | None = None) -> dict[str, dict]:
    """Mode -> its events, for every mode that differs from live."""
    rng = random.Random(seed * 7919 + 1)
    ref = run_mode(sc, "live")
    modes = list(modes or (PUMP_MODES if sc.machine else TEMP_MODES))
    last = arrival(sc.readings[-1][1])
    cut = rng.randint(1, max(1, last))
    restart_modes = [f"restart-{rng.choice([1, 10, 500])}"]
    restart_modes.append(f"restartr-{rng.choice([1, 10, 500])}")
    bad = {}
    for mode in modes:
        got = run_mode(sc, mode)
        if got != ref:
            bad[mode] = got
    for mode in restart_modes:
        got = run_mode(sc, mode, cut)
        if got != ref:
            bad[f"{mode}@{cut}"] = got
    if bad:
        bad["live"] = ref
    return bad
