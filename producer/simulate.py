"""Pure, seeded sensor simulation: no Kafka, no wall clock, no global state.

It makes readings; ``producer.shapes`` turns them into messages (one encoder for the tutorials'
shapes and every configured family's).

Everything here is deterministic given a :class:`SimulationConfig`, so tests and the
integration suite can regenerate exactly what the producer sent and know the ground truth
(e.g. which machine overheats and from which event time on).

Message shapes (the classic Bytewax tutorials' shapes, JSON-encoded exactly once):

* air quality, key ``b"Sensor1"`` ... ``b"SensorN"``::

      {"timestamp": "2022-07-15 11:34:32.113400", "value": 23.4}

  ``timestamp`` is naive UTC (``dataflow.timestamps.NAIVE_FORMAT``).
* machine temperature, key ``b"0"`` ... ``b"N-1"``::

      {"Temperature_C": 65.3, "Timestamp": 1710856626905833677}

  ``Timestamp`` is an int of nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from dataflow.families import Family as FamilySpec
from dataflow.readings import Reading
from dataflow.timestamps import NS_PER_S

Family = Literal["air_quality", "temperature"]
#: A scenario's name, or several joined by commas in ``SCENARIOS`` order ("overheat,shift").
Scenario = str

AIR_QUALITY: Family = "air_quality"
TEMPERATURE: Family = "temperature"
#: Canonical family order; within a tick, families are emitted in this order.
FAMILIES: tuple[Family, ...] = (AIR_QUALITY, TEMPERATURE)
SCENARIOS: tuple[Scenario, ...] = ("normal", "overheat", "shift")


# --- Walk parameters -------------------------------------------------------------------------
# Ornstein-Uhlenbeck residual around a per-sensor baseline; the exact discretisation is used so
# that any --interval is numerically stable (no overshoot for large dt).

#: Temperature baselines are drawn per machine in this range (°C).
TEMPERATURE_BASELINE_RANGE = (60.0, 70.0)
#: Normal temperatures are clamped here, so a healthy machine can never reach 90 °C.
TEMPERATURE_NORMAL_BOUNDS = (40.0, 80.0)
TEMPERATURE_REVERSION_PER_S = 0.1
TEMPERATURE_STATIONARY_STD = 1.5

#: Air-quality baselines (pollutant level, e.g. µg/m³) are drawn per sensor in this range.
AIR_QUALITY_BASELINE_RANGE = (20.0, 40.0)
AIR_QUALITY_BOUNDS = (0.0, 150.0)
AIR_QUALITY_REVERSION_PER_S = 0.05
AIR_QUALITY_STATIONARY_STD = 4.0

#: Overheat: the machine's mean climbs at this rate (°C per event-time second) ...
OVERHEAT_RAMP_C_PER_S = 3.0
#: ... until it plateaus here. Noise is limited to ± OVERHEAT_NOISE_LIMIT while overheating, so
#: once a reading passes 100 °C (mean > 98) no later reading drops below 96 °C.
OVERHEAT_PLATEAU_C = 105.0
OVERHEAT_NOISE_LIMIT = 2.0
#: The residual is damped while overheating so the ± limit is rarely hit (no flat tops).
OVERHEAT_NOISE_SCALE = 0.6
#: Hard ceiling while overheating (keeps values physical even with huge noise draws).
OVERHEAT_MAX_C = OVERHEAT_PLATEAU_C + OVERHEAT_NOISE_LIMIT

#: Shift: one air-quality sensor's level jumps up by this much and stays there, its noise
#: unchanged. Many of its own spreads (its window means vary by about the walk's stationary
#: spread), so the model's level envelope fires at once; yet a level that other sensors of the
#: fleet reach on their own, and no rule of the family is near it: only the model can tell.
SHIFT_LEVEL = 8 * AIR_QUALITY_STATIONARY_STD


def scenario_names(text: str) -> tuple[str, ...]:
    """The scenarios of ``text`` (``"overheat,shift"``) in ``SCENARIOS`` order; ``ValueError``
    for an unknown one, none, or ``normal`` beside another."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(SCENARIOS))
    if unknown or not names:
        raise ValueError(
            f"unknown scenario {unknown[0] if unknown else text!r} (choose from "
            f"{', '.join(SCENARIOS)}, or several joined by commas)"
        )
    if "normal" in names and len(names) > 1:
        raise ValueError("normal is the scenario without events: it combines with none")
    return tuple(name for name in SCENARIOS if name in names)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. Validated on construction (``ValueError`` on bad values).

    ``count`` caps the total number of readings (all families and sensors together);
    ``duration_s`` caps event time: only ticks with ``tick * interval < duration`` are
    emitted. ``None`` means unlimited; generation stops at whichever limit comes first.

    ``history_s``: ticks before ``start_ns`` come first, as many as cover it (tick -n .. -1,
    stamped in the past), the walks running through them, so the sensors have a past to learn
    from. Scenario times (``overheat_after_s``, ``shift_after_s``) and ``duration_s`` count from
    ``start_ns``, as without history. ``history_skip`` names sensors that send none (a machine
    new to the fleet): they join at ``start_ns``.
    """

    start_ns: int
    families: tuple[Family, ...] = FAMILIES
    sensors: int = 5
    interval_s: float = 1.0
    seed: int = 42
    scenario: Scenario = "normal"
    overheat_sensor: str = "2"
    overheat_after_s: float = 10.0
    shift_sensor: str = "Sensor1"
    shift_after_s: float = 30.0
    count: int | None = None
    duration_s: float | None = None
    history_s: float = 0.0
    history_skip: tuple[str, ...] = ()
    interval_ns: int = field(init=False)
    history_ticks: int = field(init=False)

    def __post_init__(self) -> None:
        families = tuple(self.families)
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f"families must be a non-empty subset of {FAMILIES}, got {families}")
        # Normalise to canonical order without duplicates so emission order is stable.
        object.__setattr__(self, "families", tuple(f for f in FAMILIES if f in families))
        if self.sensors < 1:
            raise ValueError(f"sensors must be >= 1, got {self.sensors}")
        if not math.isfinite(self.interval_s) or self.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")
        interval_ns = round(self.interval_s * NS_PER_S)
        if interval_ns < 1:
            raise ValueError(f"interval_s is below 1 ns: {self.interval_s}")
        object.__setattr__(self, "interval_ns", interval_ns)
        object.__setattr__(self, "scenario", ",".join(scenario_names(self.scenario)))
        for name in ("overheat_after_s", "shift_after_s", "history_s"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be >= 0, got {value}")
        history_ns = round(self.history_s * NS_PER_S)
        object.__setattr__(self, "history_ticks", -(-history_ns // interval_ns))  # ceil
        if self.overheating and self.overheat_sensor not in sensor_ids(TEMPERATURE, self.sensors):
            raise ValueError(
                f"overheat_sensor {self.overheat_sensor!r} is not one of the temperature "
                f"sensors '0'..'{self.sensors - 1}'"
            )
        if self.shifting and self.shift_sensor not in sensor_ids(AIR_QUALITY, self.sensors):
            raise ValueError(
                f"shift_sensor {self.shift_sensor!r} is not one of the air-quality sensors "
                f"'Sensor1'..'Sensor{self.sensors}'"
            )
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0 or None, got {self.count}")
        if self.duration_s is not None and (self.duration_s < 0 or math.isnan(self.duration_s)):
            raise ValueError(f"duration_s must be >= 0 or None, got {self.duration_s}")

    @property
    def overheating(self) -> bool:
        """True when some temperature machine will actually overheat."""
        return "overheat" in self.scenario.split(",") and TEMPERATURE in self.families

    @property
    def shifting(self) -> bool:
        """True when some air-quality sensor's level will shift."""
        return "shift" in self.scenario.split(",") and AIR_QUALITY in self.families


def sensor_ids(family: Family, sensors: int) -> list[str]:
    """Sensor ids in emission order: ``Sensor1..SensorN`` / ``"0".."N-1"`` (tutorial ids)."""
    if family == AIR_QUALITY:
        return [f"Sensor{i}" for i in range(1, sensors + 1)]
    if family == TEMPERATURE:
        return [str(i) for i in range(sensors)]
    raise ValueError(f"unknown family {family!r}")


def stable_seed(*parts: object) -> int:
    """Derive a 64-bit seed from ``parts`` (unlike ``hash()``, not salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


class _SensorWalk:
    """Bounded mean-reverting walk for one sensor, driven by its own ``random.Random``.

    Seeded from (seed, family, sensor_id) only, so a sensor's stream does not change when
    other sensors or families are added or removed.
    """

    def __init__(self, config: SimulationConfig, family: Family, sensor_id: str) -> None:
        self._rng = random.Random(stable_seed(config.seed, family, sensor_id))
        self._family = family
        dt = config.interval_s
        if family == TEMPERATURE:
            self.baseline = self._rng.uniform(*TEMPERATURE_BASELINE_RANGE)
            theta, std = TEMPERATURE_REVERSION_PER_S, TEMPERATURE_STATIONARY_STD
            self._bounds = TEMPERATURE_NORMAL_BOUNDS
            self._decimals = 2
        else:
            self.baseline = self._rng.uniform(*AIR_QUALITY_BASELINE_RANGE)
            theta, std = AIR_QUALITY_REVERSION_PER_S, AIR_QUALITY_STATIONARY_STD
            self._bounds = AIR_QUALITY_BOUNDS
            self._decimals = 1
        # Exact OU transition over dt: r' = r*decay + std*sqrt(1 - decay^2) * N(0, 1).
        self._decay = math.exp(-theta * dt)
        self._step_std = std * math.sqrt(1.0 - self._decay**2)
        self._residual = self._rng.gauss(0.0, std)  # start in the stationary distribution
        self._interval_ns = config.interval_ns
        self._first = -config.history_ticks
        self._overheat_tick: int | None = None
        self._overheat_after_ns = 0
        if config.overheating and family == TEMPERATURE and sensor_id == config.overheat_sensor:
            self._overheat_tick = first_overheat_tick(config)
            self._overheat_after_ns = round(config.overheat_after_s * NS_PER_S)
        self._shift_tick: int | None = None
        if config.shifting and family == AIR_QUALITY and sensor_id == config.shift_sensor:
            self._shift_tick = first_shift_tick(config)

    def value_at(self, tick: int) -> float:
        """Advance one tick and return the (rounded) reading. Call with tick = -history_ticks,
        ..., -1, 0, 1, 2, ... (tick 0 at the start)."""
        if tick > self._first:
            self._residual = self._residual * self._decay + self._rng.gauss(0.0, self._step_std)
        if self._overheat_tick is not None and tick >= self._overheat_tick:
            heating_ns = tick * self._interval_ns - self._overheat_after_ns
            ramp = OVERHEAT_RAMP_C_PER_S * heating_ns / NS_PER_S
            mean = min(OVERHEAT_PLATEAU_C, self.baseline + ramp)
            noise = OVERHEAT_NOISE_SCALE * self._residual
            noise = max(-OVERHEAT_NOISE_LIMIT, min(OVERHEAT_NOISE_LIMIT, noise))
            low, high = TEMPERATURE_NORMAL_BOUNDS[0], OVERHEAT_MAX_C
            value = mean + noise
        else:
            low, high = self._bounds
            value = self.baseline + self._residual
            if self._shift_tick is not None and tick >= self._shift_tick:
                value += SHIFT_LEVEL
        return round(min(high, max(low, value)), self._decimals)


def generate(config: SimulationConfig) -> Iterator[Reading]:
    """Yield readings tick by tick, forever unless ``count``/``duration_s`` stop it.

    Within a tick every selected family (canonical order) emits one reading per sensor
    (sensor-id order), all stamped ``start_ns + tick * interval_ns`` (``ts``), from the first
    tick of the history (negative) on. They are the dataflow's ``Reading`` (``source`` None),
    so a test compares them with what it parsed. ``value`` is already rounded to what goes on
    the wire (1 decimal for air quality, 2 for temperature), so that comparison is exact.
    """
    skip = set(config.history_skip)
    walks = [
        (family, sensor_id, _SensorWalk(config, family, sensor_id), sensor_id in skip)
        for family in config.families
        for sensor_id in sensor_ids(family, config.sensors)
    ]
    duration_ns = None if config.duration_s is None else round(config.duration_s * NS_PER_S)
    emitted = 0
    tick = -config.history_ticks
    while True:
        offset_ns = tick * config.interval_ns
        if duration_ns is not None and offset_ns >= duration_ns:
            return
        ts = config.start_ns + offset_ns
        for family, sensor_id, walk, skipped in walks:
            if config.count is not None and emitted >= config.count:
                return
            value = walk.value_at(tick)
            if skipped and tick < 0:
                continue
            yield Reading(family, sensor_id, ts, value)
            emitted += 1
        tick += 1


def first_overheat_tick(config: SimulationConfig) -> int | None:
    """First tick at which the overheat machine starts climbing (None if no overheat).

    Ground truth for tests: anomalies on that machine are expected from this tick on.
    """
    if not config.overheating:
        return None
    after_ns = round(config.overheat_after_s * NS_PER_S)
    return -(-after_ns // config.interval_ns)  # ceil without float error


def first_shift_tick(config: SimulationConfig) -> int | None:
    """First tick at which the shift sensor's level has shifted (None if no shift): ground
    truth, as ``first_overheat_tick``."""
    if not config.shifting:
        return None
    after_ns = round(config.shift_after_s * NS_PER_S)
    return -(-after_ns // config.interval_ns)


# --- Reading the output ------------------------------------------------------------------------


def readings_by_sensor(readings: Sequence[Reading]) -> dict[tuple[str, str], list[Reading]]:
    """Group readings by (family, sensor_id), preserving order."""
    grouped: dict[tuple[str, str], list[Reading]] = {}
    for reading in readings:
        grouped.setdefault((reading.family, reading.sensor_id), []).append(reading)
    return grouped


# --- Configured families (``SENSORS_CONFIG``) ----------------------------------------------------
# Any family of a sensors file gets the same kind of walk as the tutorials, scaled to its range:
# around the middle of its ``limits`` (or ``valid_range``), never outside its valid range.

#: Reversion rate of a configured family's walk (per event-time second), as temperature's.
RANGE_REVERSION_PER_S = 0.1
#: Stationary spread of the walk, and the spread of sensors' baselines around the middle, as
#: fractions of the range: readings stay well inside it (a rule near an edge stays quiet).
RANGE_STATIONARY_STD = 0.03
RANGE_BASELINE_SPREAD = 0.05


def walk_range(family: FamilySpec) -> tuple[float, float]:
    """Where a configured family's values go: ``limits`` within ``valid_range`` (or the latter
    alone when ``limits`` is unset or does not overlap it)."""
    lo, hi = family.valid_range
    if family.limits is not None:
        low, high = max(lo, family.limits[0]), min(hi, family.limits[1])
        if low < high:
            return low, high
    return lo, hi


def decimals_for(span: float) -> int:
    """Decimals that give a range about four significant digits (100 -> 1, 1 -> 3), 0..6."""
    return max(0, min(6, 3 - math.floor(math.log10(span))))


class _RangeWalk:
    """The tutorials' bounded mean-reverting walk over a configured family's range."""

    def __init__(self, seed: int, family: FamilySpec, sensor_id: str, interval_s: float) -> None:
        self._rng = random.Random(stable_seed(seed, family.name, sensor_id))
        lo, hi = walk_range(family)
        span = hi - lo
        self._bounds = family.valid_range
        self._decimals = decimals_for(span)
        std = RANGE_STATIONARY_STD * span
        self.baseline = lo + span / 2 + self._rng.uniform(-1.0, 1.0) * RANGE_BASELINE_SPREAD * span
        self._decay = math.exp(-RANGE_REVERSION_PER_S * interval_s)
        self._step_std = std * math.sqrt(1.0 - self._decay**2)
        self._residual = self._rng.gauss(0.0, std)

    def value_at(self, tick: int) -> float:
        """Advance one tick (call with 0, 1, 2, ...) and return the rounded, clamped reading."""
        if tick > 0:
            self._residual = self._residual * self._decay + self._rng.gauss(0.0, self._step_std)
        low, high = self._bounds
        value = min(high, max(low, self.baseline + self._residual))
        return min(high, max(low, round(value, self._decimals)))


#: A machine family's load: every channel follows it (``MACHINE_COUPLING`` of its variance), so
#: the channels move together; the rest of each channel is its own noise, per reading.
MACHINE_LOAD_REVERSION_PER_S = 0.02
MACHINE_COUPLING = 0.9


class _MachineWalk:
    """A machine family's channels on a shared load: a reading per channel per tick.

    From ``fault_tick`` on, the second channel follows the load the other way: each channel's
    own distribution is unchanged (the load is symmetric about its level), so each stays in its
    usual range, and only their relation shows the fault.
    """

    def __init__(
        self,
        seed: int,
        family: FamilySpec,
        machine_id: str,
        interval_s: float,
        fault_tick: int | None = None,
    ) -> None:
        self._rng = random.Random(stable_seed(seed, family.name, machine_id))
        lo, hi = walk_range(family)
        span = hi - lo
        self._bounds = family.valid_range
        self._decimals = decimals_for(span)
        self._std = RANGE_STATIONARY_STD * span
        n = len(family.channels)
        self.baselines = [
            lo + span / 2 + self._rng.uniform(-1.0, 1.0) * RANGE_BASELINE_SPREAD * span
            for _ in range(n)
        ]
        self._decay = math.exp(-MACHINE_LOAD_REVERSION_PER_S * interval_s)
        self._step = math.sqrt(1.0 - self._decay**2)
        self._load = self._rng.gauss(0.0, 1.0)
        self._fault_tick = fault_tick

    def value_at(self, tick: int) -> tuple[float, ...]:
        """Advance one tick (call with 0, 1, 2, ...); each channel's rounded, clamped reading."""
        rng = self._rng
        if tick > 0:
            self._load = self._load * self._decay + rng.gauss(0.0, self._step)
        a = math.sqrt(MACHINE_COUPLING)
        b = math.sqrt(1.0 - MACHINE_COUPLING)
        low, high = self._bounds
        out = []
        for i, base in enumerate(self.baselines):
            sign = (
                -1.0
                if i == 1 and self._fault_tick is not None and tick >= self._fault_tick
                else 1.0
            )
            v = base + self._std * (sign * a * self._load + b * rng.gauss(0.0, 1.0))
            out.append(min(high, max(low, round(min(high, max(low, v)), self._decimals))))
        return tuple(out)


def relation_fault_machine(family: FamilySpec) -> str:
    """The machine of a machine family that ``relation_fault_after_s`` breaks: its first."""
    return group_sensor_ids(family.name, 1)[0]


def group_sensor_ids(name: str, sensors: int) -> list[str]:
    """Sensor ids of a configured family (or group of families sharing messages): ``name-1``..."""
    return [f"{name}-{i}" for i in range(1, sensors + 1)]


class GroupReading(NamedTuple):
    """One message's worth of readings: ``values[i]`` is the reading of the group's family i (a
    machine family's: a tuple, a value per channel)."""

    group: int
    sensor_id: str
    ts: int
    values: tuple[float | tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class FamilySimulation:
    """What to simulate for configured families; limits as in :class:`SimulationConfig`.

    ``groups`` are the families written into one message each (``producer.shapes.plan``);
    ``count`` counts messages. Families of a group that read one value path get one value (the
    first such family's walk).
    """

    start_ns: int
    groups: tuple[tuple[FamilySpec, ...], ...]
    sensors: int = 5
    interval_s: float = 1.0
    seed: int = 42
    count: int | None = None
    duration_s: float | None = None
    # Machine families: from this event time on (s after the start), their first machine's
    # channels break their relation (``_MachineWalk``); None: never.
    relation_fault_after_s: float | None = None

    def __post_init__(self) -> None:
        if not self.groups or not all(self.groups):
            raise ValueError("at least one family to simulate")
        if self.sensors < 1:
            raise ValueError(f"sensors must be >= 1, got {self.sensors}")
        if not math.isfinite(self.interval_s) or round(self.interval_s * NS_PER_S) < 1:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")


def _narrowest(family: FamilySpec, group: Sequence[FamilySpec]) -> FamilySpec:
    """``family`` with the valid range every family of ``group`` reading its value path
    shares: one value is sent for them all, and a value outside a narrower family's range was a
    dead letter for that family, message after message. Unchanged when they agree (or share
    nothing: the sensors file cannot be met then, and the dataflow says so per message)."""
    ranges = [f.valid_range for f in group if not f.channels and f.value == family.value]
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if (lo, hi) == family.valid_range or lo >= hi:
        return family
    return replace(family, valid_range=(lo, hi))


def generate_families(config: FamilySimulation) -> Iterator[GroupReading]:
    """Yield a group reading per group and sensor on every tick (groups, then sensors, in order),
    all stamped ``start_ns + tick * interval``, until ``count`` or ``duration_s``."""
    interval_ns = round(config.interval_s * NS_PER_S)
    plans = []
    fault = config.relation_fault_after_s
    fault_tick = None if fault is None else math.ceil(fault * NS_PER_S / interval_ns)
    for index, group in enumerate(config.groups):
        for sensor_id in group_sensor_ids(group[0].name, config.sensors):
            walks: dict[str, _RangeWalk | _MachineWalk] = {}
            for family in group:
                if family.channels:
                    broken = sensor_id == relation_fault_machine(family)
                    walks[f"machine:{family.name}"] = _MachineWalk(
                        config.seed,
                        family,
                        sensor_id,
                        config.interval_s,
                        fault_tick if broken else None,
                    )
                elif family.value not in walks:
                    walks[family.value] = _RangeWalk(
                        config.seed, _narrowest(family, group), sensor_id, config.interval_s
                    )
            mine = [walks[f"machine:{f.name}" if f.channels else f.value] for f in group]
            plans.append((index, sensor_id, mine, list(walks.values())))
    duration_ns = None if config.duration_s is None else round(config.duration_s * NS_PER_S)
    emitted = 0
    tick = 0
    while True:
        offset_ns = tick * interval_ns
        if duration_ns is not None and offset_ns >= duration_ns:
            return
        for index, sensor_id, walks_of, distinct in plans:
            if config.count is not None and emitted >= config.count:
                return
            now = {id(w): w.value_at(tick) for w in distinct}
            yield GroupReading(
                index, sensor_id, config.start_ns + offset_ns, tuple(now[id(w)] for w in walks_of)
            )
            emitted += 1
        tick += 1
