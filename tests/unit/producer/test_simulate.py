"""Unit tests for the pure simulation: wire shapes, determinism, bounds, scenarios, limits."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from itertools import islice, pairwise

import pytest

from dataflow.families import builtin
from dataflow.readings import Reading, iso_to_ns
from dataflow.timestamps import NAIVE_FORMAT
from producer import simulate
from producer.shapes import encode, encoded_time
from producer.simulate import (
    AIR_QUALITY,
    SHIFT_LEVEL,
    TEMPERATURE,
    SimulationConfig,
    first_overheat_tick,
    first_shift_tick,
    generate,
    readings_by_sensor,
    scenario_names,
    sensor_ids,
    stable_seed,
)
from tests.checkout import ROOT
from tests.factories import S

# 2024-03-19 13:57:06.905833677 UTC, the temperature tutorial's timestamp.
START_NS = 1_710_856_626_905_833_677


def config(**overrides: object) -> SimulationConfig:
    """Deterministic config with an explicit start; overrides win."""
    params: dict[str, object] = {"start_ns": START_NS, "sensors": 3}
    params.update(overrides)
    return SimulationConfig(**params)  # type: ignore[arg-type]


# --- Wire shapes ------------------------------------------------------------------------------


def test_air_quality_encoding_matches_tutorial_shape_byte_for_byte() -> None:
    ts = iso_to_ns("2022-07-15 11:34:32.113400")
    key, value = encode(Reading(AIR_QUALITY, "Sensor1", ts, 23.0))
    assert key == b"Sensor1"
    assert value == b'{"timestamp": "2022-07-15 11:34:32.113400", "value": 23.0}'


def test_temperature_encoding_matches_tutorial_shape_byte_for_byte() -> None:
    key, value = encode(Reading(TEMPERATURE, "0", 1710856626905833677, 65.3))
    assert key == b"0"
    assert value == b'{"Temperature_C": 65.3, "Timestamp": 1710856626905833677}'


def test_generated_air_quality_messages_parse_to_the_tutorial_shape() -> None:
    readings = [r for r in islice(generate(config()), 200) if r.family == AIR_QUALITY]
    assert readings
    for reading in readings:
        key, value = encode(reading)
        assert key.decode("utf-8") in {"Sensor1", "Sensor2", "Sensor3"}
        obj = json.loads(value)
        assert isinstance(obj, dict), "value must be a JSON object, not a JSON string"
        assert list(obj) == ["timestamp", "value"]
        assert isinstance(obj["timestamp"], str)
        parsed = datetime.strptime(obj["timestamp"], NAIVE_FORMAT)
        assert parsed.tzinfo is None
        assert 0 <= reading.ts - iso_to_ns(obj["timestamp"]) < 1000  # µs, truncated
        assert isinstance(obj["value"], int | float) and not isinstance(obj["value"], bool)
        assert obj["value"] == reading.value == round(reading.value, 1)


def test_generated_temperature_messages_parse_to_the_tutorial_shape() -> None:
    readings = [r for r in islice(generate(config()), 200) if r.family == TEMPERATURE]
    assert readings
    for reading in readings:
        key, value = encode(reading)
        assert key.decode("utf-8") in {"0", "1", "2"}
        obj = json.loads(value)
        assert isinstance(obj, dict), "value must be a JSON object, not a JSON string"
        assert list(obj) == ["Temperature_C", "Timestamp"]
        assert type(obj["Timestamp"]) is int
        assert obj["Timestamp"] == reading.ts
        # nanoseconds: a 2024 timestamp has 19 digits (seconds would have 10, ms 13)
        assert len(str(obj["Timestamp"])) == 19
        assert isinstance(obj["Temperature_C"], float)
        assert obj["Temperature_C"] == reading.value == round(reading.value, 2)


@pytest.mark.parametrize("family", [AIR_QUALITY, TEMPERATURE])
def test_values_are_json_encoded_exactly_once(family: str) -> None:
    reading = next(r for r in generate(config()) if r.family == family)
    _, value = encode(reading)
    assert value.startswith(b"{") and value.endswith(b"}")
    assert not isinstance(json.loads(value), str)
    # keys are raw ids, not JSON strings
    key, _ = encode(reading)
    assert not key.startswith(b'"')


def test_air_quality_time_format_round_trip_and_truncation() -> None:
    fam = builtin()[0]
    assert encoded_time(fam, 0) == ("1970-01-01 00:00:00.000000", 0)
    assert encoded_time(fam, START_NS) == ("2024-03-19 13:57:06.905833", START_NS - 677)
    assert iso_to_ns("2024-03-19 13:57:06.905833") == START_NS - 677


def test_sensor_ids_match_tutorial_keys() -> None:
    assert sensor_ids(AIR_QUALITY, 3) == ["Sensor1", "Sensor2", "Sensor3"]
    assert sensor_ids(TEMPERATURE, 3) == ["0", "1", "2"]


# --- Determinism ------------------------------------------------------------------------------


# The wire bytes of 2000 readings of ``config(seed=7)``, hashed; run in a fresh interpreter.
_DIGEST = """
import hashlib, sys
from itertools import islice
from producer.shapes import encode
from producer.simulate import SimulationConfig, generate
cfg = SimulationConfig(start_ns=int(sys.argv[1]), sensors=3, seed=7)
print(hashlib.sha256(repr([encode(r) for r in islice(generate(cfg), 2000)]).encode()).hexdigest())
"""


def test_same_seed_gives_byte_identical_output_in_every_process() -> None:
    """Another process, with another str-hash salt, sends the same bytes: nothing in the
    simulation depends on hash(), the clock or an unseeded generator."""
    wire = [encode(r) for r in islice(generate(config(seed=7)), 2000)]
    here = hashlib.sha256(repr(wire).encode()).hexdigest()
    for hash_seed in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-c", _DIGEST, str(START_NS)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert run.stdout.strip() == here


def test_different_seed_gives_different_values() -> None:
    a = [r.value for r in islice(generate(config(seed=1)), 600)]
    b = [r.value for r in islice(generate(config(seed=2)), 600)]
    assert a != b
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 500


def test_stable_seed_is_not_salted_hash() -> None:
    # Pinned value: Python's hash() of a str changes between processes, this must not.
    assert stable_seed(42, "temperature", "2") == 0x558BE2BE2F090B0D
    assert stable_seed(42, "temperature", "2") != stable_seed(42, "temperature", "3")


def test_sensor_stream_does_not_depend_on_fleet_size_or_families() -> None:
    small = readings_by_sensor(list(generate(config(sensors=3, duration_s=50))))
    big = readings_by_sensor(
        list(generate(config(sensors=8, families=(TEMPERATURE,), duration_s=50)))
    )
    assert [r.value for r in small[(TEMPERATURE, "1")]] == [
        r.value for r in big[(TEMPERATURE, "1")]
    ]


def test_emission_order_is_stable_within_a_tick() -> None:
    first_tick = list(islice(generate(config(sensors=2)), 4))
    assert [(r.family, r.sensor_id) for r in first_tick] == [
        (AIR_QUALITY, "Sensor1"),
        (AIR_QUALITY, "Sensor2"),
        (TEMPERATURE, "0"),
        (TEMPERATURE, "1"),
    ]
    assert {r.ts for r in first_tick} == {START_NS}


def test_families_are_normalised_to_canonical_order() -> None:
    cfg = config(families=(TEMPERATURE, AIR_QUALITY, TEMPERATURE))
    assert cfg.families == (AIR_QUALITY, TEMPERATURE)


# --- Bounds and realism -----------------------------------------------------------------------


def test_readings_stay_in_bounds_over_a_long_run() -> None:
    cfg = config(sensors=2, duration_s=100_000)  # 100k ticks, 400k readings
    lows: dict[str, float] = {AIR_QUALITY: float("inf"), TEMPERATURE: float("inf")}
    highs: dict[str, float] = {AIR_QUALITY: float("-inf"), TEMPERATURE: float("-inf")}
    for reading in generate(cfg):
        lows[reading.family] = min(lows[reading.family], reading.value)
        highs[reading.family] = max(highs[reading.family], reading.value)
    assert lows[AIR_QUALITY] >= 0.0 and highs[AIR_QUALITY] <= 150.0
    assert lows[TEMPERATURE] >= 40.0 and highs[TEMPERATURE] <= 80.0
    assert highs[TEMPERATURE] < 90.0


@pytest.mark.parametrize("seed", range(5))
def test_normal_temperature_never_reaches_90(seed: int) -> None:
    cfg = config(seed=seed, sensors=10, families=(TEMPERATURE,), duration_s=5000)
    assert max(r.value for r in generate(cfg)) < 90.0


def test_clamps_hold_even_with_wild_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The <90 °C guarantee comes from clamping, not from lucky noise: force huge noise."""
    monkeypatch.setattr(simulate, "TEMPERATURE_STATIONARY_STD", 40.0)
    monkeypatch.setattr(simulate, "AIR_QUALITY_STATIONARY_STD", 200.0)
    values: dict[str, list[float]] = {AIR_QUALITY: [], TEMPERATURE: []}
    for reading in generate(config(sensors=4, duration_s=2000)):
        values[reading.family].append(reading.value)
    assert max(values[TEMPERATURE]) == 80.0 and min(values[TEMPERATURE]) == 40.0
    assert min(values[AIR_QUALITY]) == 0.0 and max(values[AIR_QUALITY]) == 150.0


def test_walk_is_mean_reverting_not_uniform_noise() -> None:
    """Consecutive readings of a sensor are close (autocorrelated), unlike uniform noise."""
    cfg = config(families=(TEMPERATURE,), sensors=1, duration_s=2000)
    values = [r.value for r in generate(cfg)]
    steps = [abs(b - a) for a, b in pairwise(values)]
    spread = max(values) - min(values)
    assert sum(steps) / len(steps) < 1.0
    assert spread > 3.0  # it does move
    mean = sum(values) / len(values)
    assert 55.0 < mean < 75.0


def test_interval_spacing_gives_k_readings_per_sensor_per_window() -> None:
    cfg = config(interval_s=1.0, duration_s=60)
    readings = list(generate(cfg))
    windows = Counter((r.family, r.sensor_id, (r.ts - START_NS) // (5 * S)) for r in readings)
    assert set(windows.values()) == {5}
    cfg_half = config(interval_s=0.5, duration_s=60)
    windows_half = Counter(
        (r.family, r.sensor_id, (r.ts - START_NS) // (5 * S)) for r in generate(cfg_half)
    )
    assert set(windows_half.values()) == {10}


def test_event_time_is_start_plus_tick_times_interval() -> None:
    cfg = config(interval_s=2.5, sensors=2, duration_s=20)
    by_sensor = readings_by_sensor(list(generate(cfg)))
    for readings in by_sensor.values():
        times = [r.ts for r in readings]
        assert times == [START_NS + i * 2_500_000_000 for i in range(8)]


# --- Overheat scenario ------------------------------------------------------------------------


def test_overheat_machine_exceeds_100_soon_and_others_stay_normal() -> None:
    cfg = config(scenario="overheat", sensors=5, overheat_after_s=10, duration_s=200)
    by_sensor = readings_by_sensor(list(generate(cfg)))
    hot = by_sensor[(TEMPERATURE, "2")]
    onset_ns = START_NS + 10 * S
    assert all(r.value <= 80.0 for r in hot if r.ts < onset_ns)
    first_over_100 = next(r for r in hot if r.value > 100.0)
    assert first_over_100.ts - onset_ns <= 60 * S
    after = [r.value for r in hot if r.ts >= first_over_100.ts]
    assert min(after) >= 95.0
    assert 100.0 < sum(after[-50:]) / 50 < 110.0
    for sensor in ("0", "1", "3", "4"):
        assert max(r.value for r in by_sensor[(TEMPERATURE, sensor)]) < 90.0
    normal = readings_by_sensor(list(generate(config(sensors=5, duration_s=200))))
    for sensor in sensor_ids(AIR_QUALITY, 5):
        assert by_sensor[(AIR_QUALITY, sensor)] == normal[(AIR_QUALITY, sensor)]


@pytest.mark.parametrize("interval_s", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 42, 1234])
def test_overheat_is_robust_to_seed_and_interval(seed: int, interval_s: float) -> None:
    cfg = config(
        seed=seed,
        scenario="overheat",
        overheat_sensor="0",
        overheat_after_s=5,
        interval_s=interval_s,
        families=(TEMPERATURE,),
        duration_s=120,
    )
    hot = readings_by_sensor(list(generate(cfg)))[(TEMPERATURE, "0")]
    first_tick = first_overheat_tick(cfg)
    assert first_tick is not None
    over = [i for i, r in enumerate(hot) if r.value > 100.0]
    assert over and (over[0] - first_tick) * interval_s <= 60
    assert min(r.value for r in hot[over[0] :]) >= 95.0
    assert max(r.value for r in hot[:first_tick]) <= 80.0


def test_first_overheat_tick() -> None:
    assert first_overheat_tick(config(scenario="overheat", overheat_after_s=10)) == 10
    assert first_overheat_tick(config(scenario="overheat", overheat_after_s=1, interval_s=0.3)) == 4
    assert first_overheat_tick(config()) is None
    assert first_overheat_tick(config(scenario="overheat", families=(AIR_QUALITY,))) is None


# --- Limits and validation --------------------------------------------------------------------


def test_count_limit_counts_messages_across_families() -> None:
    assert len(list(generate(config(count=7)))) == 7
    assert len(list(generate(config(count=0)))) == 0


def test_duration_limit_is_event_time() -> None:
    cfg = config(interval_s=1.0, duration_s=30)
    readings = list(generate(cfg))
    assert len(readings) == 30 * 6  # 30 ticks x (3 air-quality + 3 temperature sensors)
    assert max(r.ts for r in readings) == START_NS + 29 * S


def test_whichever_limit_comes_first() -> None:
    assert len(list(generate(config(count=10, duration_s=30)))) == 10
    assert len(list(generate(config(count=10_000, duration_s=2)))) == 12


def test_unlimited_generation_keeps_going() -> None:
    assert len(list(islice(generate(config()), 50_000))) == 50_000


@pytest.mark.parametrize(
    "overrides",
    [
        {"families": ("air",)},
        {"families": ()},
        {"sensors": 0},
        {"interval_s": 0},
        {"interval_s": -1.0},
        {"scenario": "boom"},
        {"scenario": "overheat", "overheat_sensor": "3"},
        {"count": -1},
        {"duration_s": -5.0},
    ],
)
def test_invalid_configs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        config(**overrides)


def test_overheat_sensor_only_checked_when_temperature_selected() -> None:
    cfg = config(scenario="overheat", overheat_sensor="99", families=(AIR_QUALITY,))
    assert not cfg.overheating


# --- History, and the shift scenario --------------------------------------------------------


def test_history_comes_first_in_the_past_and_the_walk_runs_on_through_the_start() -> None:
    cfg = config(history_s=10, duration_s=5)
    readings = list(generate(cfg))
    by_sensor = readings_by_sensor(readings)
    for series in by_sensor.values():
        assert [r.ts for r in series] == [START_NS + i * S for i in range(-10, 5)]
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)  # tick by tick
    # The same walks as without history, only longer: from the start on they are what a run
    # without history would have sent ten ticks in.
    longer = readings_by_sensor(list(generate(config(start_ns=START_NS - 10 * S, duration_s=15))))
    assert by_sensor == longer


def test_history_covers_whole_ticks() -> None:
    cfg = config(history_s=2.5, interval_s=1.0, duration_s=1, sensors=1)
    assert cfg.history_ticks == 3
    times = sorted({r.ts for r in generate(cfg)})
    assert times == [START_NS - 3 * S, START_NS - 2 * S, START_NS - S, START_NS]


def test_history_skip_sensors_join_at_the_start() -> None:
    cfg = config(history_s=20, duration_s=5, history_skip=("1", "Sensor2"))
    by_sensor = readings_by_sensor(list(generate(cfg)))
    for key, series in by_sensor.items():
        first = series[0].ts
        assert first == (START_NS if key[1] in ("1", "Sensor2") else START_NS - 20 * S)
        assert series[-1].ts == START_NS + 4 * S


def test_scenario_times_count_from_the_start_not_from_the_history() -> None:
    plain = config(scenario="overheat,shift", sensors=5, duration_s=60)
    with_history = config(scenario="overheat,shift", sensors=5, duration_s=60, history_s=600)
    assert first_overheat_tick(with_history) == first_overheat_tick(plain) == 10
    assert first_shift_tick(with_history) == first_shift_tick(plain) == 30
    hot = readings_by_sensor(list(generate(with_history)))[(TEMPERATURE, "2")]
    assert max(r.value for r in hot if r.ts < START_NS + 10 * S) <= 80.0
    assert max(r.value for r in hot if r.ts >= START_NS + 40 * S) > 95.0


def test_shift_moves_one_sensors_level_and_nothing_else() -> None:
    shifted = config(scenario="shift", sensors=5, duration_s=400, shift_sensor="Sensor3")
    normal = config(sensors=5, duration_s=400)
    got = readings_by_sensor(list(generate(shifted)))
    want = readings_by_sensor(list(generate(normal)))
    after = START_NS + 30 * S
    for key in want:
        if key != (AIR_QUALITY, "Sensor3"):
            assert got[key] == want[key]
    for a, b in zip(got[(AIR_QUALITY, "Sensor3")], want[(AIR_QUALITY, "Sensor3")], strict=True):
        assert a.ts == b.ts
        if a.ts < after:
            assert a.value == b.value
        else:  # the same noise on a higher level (rounding aside), inside the family's bounds
            assert a.value == pytest.approx(min(150.0, b.value + SHIFT_LEVEL), abs=0.11)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("overheat", ("overheat",)),
        ("shift, Overheat", ("overheat", "shift")),
        ("normal", ("normal",)),
    ],
)
def test_scenario_names(text: str, names: tuple[str, ...]) -> None:
    assert scenario_names(text) == names


@pytest.mark.parametrize("text", ["", "meltdown", "normal,overheat", "overheat,melt"])
def test_scenario_names_refuse(text: str) -> None:
    with pytest.raises(ValueError, match=r"scenario|normal"):
        scenario_names(text)


def test_shift_sensor_must_exist() -> None:
    with pytest.raises(ValueError, match="shift_sensor"):
        config(scenario="shift", sensors=2, shift_sensor="Sensor3")
    config(scenario="shift", sensors=2, shift_sensor="Sensor3", families=(TEMPERATURE,))


def test_families_that_read_one_value_get_values_every_one_of_them_takes(tmp_path) -> None:
    """One value is sent for families that read the same field: it walked the first family's
    range, and a narrower family's dataflow dead-lettered most of them as out_of_range."""
    from dataflow.readings import format_of, parse
    from producer.sending import outgoing
    from producer.settings import parse_settings

    path = tmp_path / "sensors.yaml"
    path.write_text(
        "families:\n"
        "  wide: {topic: t, value: v, timestamp: ts, valid_range: [0, 100]}\n"
        "  narrow: {topic: t, value: v, timestamp: ts, valid_range: [0, 10]}\n"
    )
    settings = parse_settings(["--sensors-config", str(path), "--count", "300"], {})
    families = [f for g in settings.groups for f in g.families]
    sent = list(outgoing(settings, 1_700_000_000 * S))
    assert len(sent) == 300
    for family in families:
        fmt = format_of(family)
        for _, key, value, *_ in sent:
            reading = parse(fmt, key, value)
            assert 0.0 <= reading.value <= 10.0, (family.name, reading.value)
