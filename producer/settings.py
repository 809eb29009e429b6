"""The producer's settings: every option declared once, and the validated ``Settings``.

Each setting is a :class:`dataflow.options.Option` (its variable, flag, default, parser and
help line), read through :mod:`dataflow.options` as the dataflow and the notifier read theirs:
a flag overrides its environment variable, which overrides the default. ``parse_settings``
resolves them into a frozen :class:`Settings` (with ``Replay`` for ``--replay``), exiting with
status 2 naming the setting on a bad value, before anything connects. With ``SENSORS_CONFIG``
the families come from the dataflow's sensors file, grouped into messages by topic
(``producer.shapes.plan``). The SASL/TLS settings are the variables of
:mod:`dataflow.security`, shared with the dataflow.

Pure: no Kafka, no logging set-up; ``python -m producer`` (:mod:`producer.__main__`) uses it.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dataflow.config import ConfigError, families_from_env
from dataflow.families import Family as FamilySpec
from dataflow.families import FamilyConfigError, load_families
from dataflow.options import (
    DEFAULT,
    Option,
    OptionError,
    Reader,
    add_options,
    boolean,
    broker,
    comma_list,
    env_section,
    integer,
    items,
    non_empty,
    number,
    numbers,
    optional,
    optional_text,
    text,
    unlimited,
)
from dataflow.security import SECURITY_OPTIONS, KafkaSecurity, SecurityConfigError
from dataflow.timestamps import MAX_NS, MIN_NS, datetime_to_ns
from producer.replay import Layout
from producer.shapes import Group, ShapeConflict, plan
from producer.simulate import (
    AIR_QUALITY,
    FAMILIES,
    TEMPERATURE,
    Family,
    FamilySimulation,
    Scenario,
    SimulationConfig,
    scenario_names,
    sensor_ids,
)

#: The end of ``--help``: message shapes, timing, how settings are read, security, exit status.
EPILOG = """\
message shapes (values are JSON encoded once; keys are plain UTF-8 sensor ids):
  air quality      topic AIR_QUALITY_TOPIC, key b"Sensor1" .. b"SensorN"
                   {"timestamp": "2022-07-15 11:34:32.113400", "value": 23.4}
                   timestamp: naive UTC, %Y-%m-%d %H:%M:%S.%f; value: number, 1 decimal
  temperature      topic TEMPERATURE_TOPIC, key b"0" .. b"N-1"
                   {"Temperature_C": 65.3, "Timestamp": 1710856626905833677}
                   Temperature_C: number, 2 decimals; Timestamp: int, ns since the epoch

configured families (SENSORS_CONFIG, the dataflow's sensors file): each family is sent
  in its own shape, by its paths: the sensor id is the key (and, when sensor_id is a
  path, also at that path); the value at its value path; the event time at its
  timestamp path as timestamp_format says: iso "2024-03-19T13:57:06.905833+00:00",
  s/ms/us/ns an integer of that unit (floored), auto an integer of ns. A family without
  a timestamp gets none: the Kafka message timestamp is set to the event time.
  Sensors are <family>-1 .. <family>-N, values a bounded walk around the middle of
  limits (or valid_range). Families reading one topic share one message per sensor and
  tick, {"id": "m1", "temp": 71.2, "vibration": 0.4, "ts": ...}; if two need different
  content at one path, the producer refuses them (exit 2).

replay: --replay FILE.csv --family NAME sends each row as one reading, in file order:
  timestamps ISO 8601 (naive = UTC) or epoch numbers (unit from their size), or
  --time-format. A bad row stops the run before anything is sent (exit 2), naming the
  file and line; so does a value outside the family's valid_range (unless skipped by
  --skip-value). Example, the UCI air-quality file's CO column, an hour a second:
    python -m producer --replay AirQualityUCI_reexport.csv --family air_quality \
      --timestamp-column Date,Time --time-format '%d/%m/%Y %H:%M:%S' \
      --value-column CO_GT --skip-value -200 --speed 3600

timing: on every tick each sensor of each family emits one reading stamped
  start + tick * interval, so a 5 s window with --interval 1 holds 5 readings per sensor.
  --history H first sends the ticks of the H seconds before the start, at full speed
  (event times in the past, so the dataflow's windows close and its models learn), then
  goes on from the start, paced from then (--realtime). --overheat-after, --shift-after
  and --duration count from the start; --count counts history too. The live demo:
    python -m producer --realtime --history 7200 --history-skip 2 --scenario overheat,shift

settings: every flag mirrors the environment variable shown; a flag overrides its
  variable, which overrides the default. Bad values exit with status 2 before any
  connection is made.

exit status: 0 when every message was delivered (also after Ctrl-C/SIGTERM, which stop
  cleanly after flushing), 1 if any delivery failed or Kafka was unreachable, 2 for bad
  settings. A summary "sent N messages (M failed)" is printed to stderr at the end.
"""

# Security is read from the environment only: no flags, so a password never shows in a process
# list. The rows are the dataflow's own declarations.
SECURITY_TITLE = "security, environment only (the password is never logged)"


@dataclass(frozen=True)
class Settings:
    """Validated producer settings (start-up values; nothing here touches Kafka)."""

    brokers: tuple[str, ...]
    families: tuple[Family, ...]
    sensors: int
    rate: float
    realtime: bool
    interval_s: float
    start_ns: int | None  # None = "now", resolved when sending starts
    count: int | None
    duration_s: float | None
    partitions: int
    seed: int
    scenario: Scenario
    overheat_sensor: str
    overheat_after_s: float
    air_quality_topic: str
    temperature_topic: str
    log_sent: str | None
    log_level: int
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    shift_sensor: str = "Sensor1"
    shift_after_s: float = 30.0
    history_s: float = 0.0
    history_skip: tuple[str, ...] = ()
    sensors_config: str | None = None
    #: Families of the sensors file to simulate, as message groups (empty: the tutorials').
    groups: tuple[Group, ...] = ()
    replay: Replay | None = None
    #: Warnings found while parsing, logged once logging is set up.
    notes: tuple[str, ...] = ()
    relation_fault_after_s: float | None = None

    def topic_for(self, family: str) -> str:
        """Topic a family's readings go to."""
        return self.air_quality_topic if family == AIR_QUALITY else self.temperature_topic

    def topics(self) -> list[str]:
        """Topics of the selected families, in emission order."""
        if self.replay is not None:
            return [self.replay.family.topic]
        if self.groups:
            return [group.topic for group in self.groups]
        return [self.topic_for(family) for family in self.families]

    def simulation(self, start_ns: int) -> SimulationConfig:
        """The pure simulation config for these settings, starting at ``start_ns``."""
        return SimulationConfig(
            start_ns=start_ns,
            families=self.families,
            sensors=self.sensors,
            interval_s=self.interval_s,
            seed=self.seed,
            scenario=self.scenario,
            overheat_sensor=self.overheat_sensor,
            overheat_after_s=self.overheat_after_s,
            shift_sensor=self.shift_sensor,
            shift_after_s=self.shift_after_s,
            count=self.count,
            duration_s=self.duration_s,
            history_s=self.history_s,
            history_skip=self.history_skip,
        )

    def family_simulation(self, start_ns: int) -> FamilySimulation:
        """The pure simulation of the configured families, starting at ``start_ns``."""
        return FamilySimulation(
            start_ns=start_ns,
            groups=tuple(group.families for group in self.groups),
            sensors=self.sensors,
            interval_s=self.interval_s,
            seed=self.seed,
            count=self.count,
            duration_s=self.duration_s,
            relation_fault_after_s=self.relation_fault_after_s,
        )


@dataclass(frozen=True)
class Replay:
    """``--replay``: which file, as which family, read how, how fast (0: unpaced)."""

    path: str
    family: FamilySpec
    layout: Layout
    speed: float


# --- Settings: declared once (dataflow.options), flag > environment > default. ------------------


def _realtime(text: str) -> bool:
    """``--realtime``: empty means false, as it always has here."""
    return boolean(text or "false")


def _family_name(text: str) -> str | None:
    return text.replace("-", "_") or None


def _families(text: str) -> tuple[Family, ...]:
    names = [part.replace("-", "_") for part in items(text)]
    if not names:
        raise ValueError(f"no family given (choose from {', '.join(FAMILIES)})")
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {unknown[0]!r} (choose from {', '.join(FAMILIES)})")
    return tuple(family for family in FAMILIES if family in names)


def _scenario(text: str) -> Scenario:
    return ",".join(scenario_names(text))


def parse_start(text: str) -> int | None:
    """``now`` -> None; ISO-8601 -> ns since the epoch (naive = UTC)."""
    value = text.strip()
    if value.lower() == "now":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 time (e.g. 2024-03-19T13:57:06Z) or 'now'") from None
    return datetime_to_ns(moment)


def _log_level(text: str) -> int:
    value = text.strip().upper()
    if value.isdigit():
        return int(value)
    level = logging.getLevelName(value)
    if not isinstance(level, int):
        raise ValueError("unknown level (use DEBUG, INFO, WARNING or ERROR)")
    return level


DAY_S = 86_400.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CENTURY_S = 100 * 365.25 * DAY_S  # a bound on spans of event time: past it, floats overflowed


#: Every setting: its variable, default, parser, help, flag and metavar.
OPTIONS: tuple[Option[Any], ...] = (
    Option(
        "KAFKA_BROKERS",
        "127.0.0.1:9092",
        comma_list("no broker given", broker),
        "Kafka bootstrap servers, comma separated.",
        flag="--brokers",
        metavar="HOST:PORT[,...]",
    ),
    Option(
        "PRODUCER_FAMILIES",
        "air_quality,temperature",
        text,
        "Sensor families to simulate, comma separated: air_quality, temperature; with "
        "SENSORS_CONFIG, families of that file (default: all of them).",
        flag="--families",
        metavar="LIST",
    ),
    Option(
        "SENSORS_CONFIG",
        "",
        optional_text,
        "The dataflow's sensors file: simulate (or replay into) its families, each in its own "
        "message shape. Unset: the two tutorial families.",
        flag="--sensors-config",
        metavar="FILE.yaml",
    ),
    Option(
        "PRODUCER_SENSORS",
        "5",
        integer(1),
        "Sensors per family (>= 1): keys Sensor1..SensorN and 0..N-1.",
        flag="--sensors",
        metavar="N",
    ),
    Option(
        "PRODUCER_RATE",
        "0",
        number(0),
        "Wall-clock cap on messages per second (all topics together); 0 = unlimited.",
        flag="--rate",
        metavar="MSG_PER_S",
    ),
    Option(
        "PRODUCER_REALTIME",
        "false",
        _realtime,
        "Pace ticks to the wall clock: tick t is sent t*interval seconds after sending starts "
        "(with --start now, event time tracks wall time). Used by the live demo. A bare "
        "--realtime means true.",
        flag="--realtime",
        metavar="BOOL",
        bare="true",
    ),
    Option(
        "PRODUCER_INTERVAL_SECONDS",
        "1.0",
        number(0, DAY_S, strict=True),
        "Event-time seconds between two readings of one sensor (> 0, at most a day).",
        flag="--interval",
        metavar="SECONDS",
    ),
    Option(
        "PRODUCER_START",
        "now",
        parse_start,
        "Event time of the first tick: ISO-8601 (naive means UTC, offsets are converted) or "
        "'now'. An explicit start makes the output byte-identical between runs.",
        flag="--start",
        metavar="ISO8601|now",
    ),
    Option(
        "PRODUCER_COUNT",
        "",
        unlimited(integer(0)),
        "Stop after N messages in total (0 or unset = unlimited).",
        flag="--count",
        metavar="N",
    ),
    Option(
        "PRODUCER_DURATION_SECONDS",
        "",
        unlimited(number(0, CENTURY_S)),
        "Stop after this many seconds of event time, i.e. duration/interval ticks (0 or unset ="
        " unlimited). With --count, whichever comes first.",
        flag="--duration",
        metavar="SECONDS",
    ),
    Option(
        "PRODUCER_PARTITIONS",
        "3",
        integer(1),
        "Partitions for topics this producer creates (replication factor 1); existing topics "
        "are left alone.",
        flag="--partitions",
        metavar="N",
    ),
    Option(
        "PRODUCER_SEED",
        "42",
        integer(-(2**63)),
        "Random seed; each sensor's walk is seeded from (seed, family, sensor id).",
        flag="--seed",
        metavar="INT",
    ),
    Option(
        "PRODUCER_SCENARIO",
        "normal",
        _scenario,
        "normal: bounded mean-reverting walks (temperatures stay <= 80 C). overheat: "
        "additionally one machine climbs ~3 C/s past 100 C and stays around 105 C. shift: one "
        "air-quality sensor's level jumps by many of its spreads and stays there, below any rule "
        "(a change only its model catches). Several: overheat,shift.",
        flag="--scenario",
        metavar="normal|overheat|shift[,...]",
    ),
    Option(
        "OVERHEAT_SENSOR",
        "2",
        non_empty(),
        "Temperature machine id that overheats in the overheat scenario (0..N-1).",
        flag="--overheat-sensor",
        metavar="ID",
    ),
    Option(
        "OVERHEAT_AFTER_SECONDS",
        "10",
        number(0),
        "Event-time seconds after the start at which the machine starts overheating.",
        flag="--overheat-after",
        metavar="SECONDS",
    ),
    Option(
        "SHIFT_SENSOR",
        "Sensor1",
        non_empty(),
        "Air-quality sensor whose level shifts in the shift scenario (Sensor1..SensorN).",
        flag="--shift-sensor",
        metavar="ID",
    ),
    Option(
        "SHIFT_AFTER_SECONDS",
        "30",
        number(0),
        "Event-time seconds after the start at which its level shifts.",
        flag="--shift-after",
        metavar="SECONDS",
    ),
    Option(
        "PRODUCER_HISTORY_SECONDS",
        "0",
        number(0, CENTURY_S),
        "First send the readings of this many seconds before the start at full speed (event "
        "times in the past, so the dataflow's models learn from them), then go on from the "
        "start, paced from then on (--realtime: event time runs behind the wall clock by the "
        "time the history took). The built-in families only.",
        flag="--history",
        metavar="SECONDS",
    ),
    Option(
        "PRODUCER_HISTORY_SKIP",
        "",
        items,
        "Sensors that send no history (new to the fleet: they join at the start, their model "
        "not yet warmed up), comma separated.",
        flag="--history-skip",
        metavar="ID[,...]",
    ),
    Option(
        "RELATION_FAULT_AFTER_SECONDS",
        "",
        optional(number(0)),
        "Machine families (SENSORS_CONFIG): event-time seconds after the start from which the "
        "first machine's second channel follows its load the other way: each channel stays in "
        "its range, only their relation breaks. Unset: no fault.",
        flag="--relation-fault-after",
        metavar="SECONDS",
    ),
    Option(
        "AIR_QUALITY_TOPIC",
        "air-quality",
        non_empty(),
        "Topic for air-quality readings.",
        flag="--air-quality-topic",
        metavar="TOPIC",
    ),
    Option(
        "TEMPERATURE_TOPIC",
        "temperature_readings",
        non_empty(),
        "Topic for machine-temperature readings.",
        flag="--temperature-topic",
        metavar="TOPIC",
    ),
    Option(
        "PRODUCER_REPLAY",
        "",
        optional_text,
        "Instead of simulating, send the rows of this CSV (header: timestamp,value and "
        "optionally sensor_id; for a machine family a column per channel instead of value) as "
        "readings of --family, in that family's message shape. The file is checked whole "
        "before anything is sent.",
        flag="--replay",
        metavar="FILE.csv",
    ),
    Option(
        "PRODUCER_REPLAY_FAMILY",
        "",
        _family_name,
        "The family --replay sends as (its topic and message shape).",
        flag="--family",
        metavar="NAME",
    ),
    Option(
        "PRODUCER_REPLAY_SPEED",
        "0",
        number(0),
        "Replay paced by the rows' timestamps, N times real time (60: an hour of history per "
        "minute); 0 = as fast as possible.",
        flag="--speed",
        metavar="N",
    ),
    Option(
        "PRODUCER_REPLAY_SENSOR_ID",
        "replay",
        non_empty(),
        "Sensor id of every replayed row when the file has no sensor id column.",
        flag="--sensor-id",
        metavar="ID",
    ),
    Option(
        "PRODUCER_REPLAY_TIMESTAMP_COLUMN",
        "timestamp",
        comma_list("no column named"),
        "Replay: the timestamp column; several are joined with a space (Date,Time).",
        flag="--timestamp-column",
        metavar="NAME[,NAME]",
    ),
    Option(
        "PRODUCER_REPLAY_VALUE_COLUMN",
        "value",
        non_empty(),
        "Replay: the value column.",
        flag="--value-column",
        metavar="NAME",
    ),
    Option(
        "PRODUCER_REPLAY_SENSOR_ID_COLUMN",
        "sensor_id",
        non_empty(),
        "Replay: the sensor id column, used when the header has it.",
        flag="--sensor-id-column",
        metavar="NAME",
    ),
    Option(
        "PRODUCER_REPLAY_TIME_FORMAT",
        "",
        optional_text,
        "Replay: a strptime format for the timestamps (naive = UTC), e.g. '%%d/%%m/%%Y "
        "%%H:%%M:%%S'. Unset: the dataflow's auto rule (ISO 8601, or an epoch number whose unit"
        " its size tells).",
        flag="--time-format",
        metavar="STRPTIME",
    ),
    Option(
        "PRODUCER_REPLAY_SKIP_VALUES",
        "",
        numbers,
        "Replay: skip (and count) rows with this value, a 'missing' marker such as UCI's -200. "
        "Several: --skip-value=-200,-999.",
        flag="--skip-value",
        metavar="NUMBER[,...]",
    ),
    Option(
        "PRODUCER_LOG_SENT",
        "",
        optional_text,
        "Append one JSON line per delivered message: {topic, key, value (the JSON object), "
        "partition, offset}. For tests that need to know what was produced.",
        flag="--log-sent",
        metavar="FILE",
    ),
    Option(
        "LOG_LEVEL",
        "INFO",
        _log_level,
        "Logging level (DEBUG, INFO, WARNING, ERROR); logs go to stderr.",
        flag="--log-level",
        metavar="LEVEL",
    ),
)

FAMILIES_OPTION = next(o for o in OPTIONS if o.env == "PRODUCER_FAMILIES")
_BY_DEST = {option.dest: option for option in OPTIONS}


def build_parser() -> argparse.ArgumentParser:
    """Argument parser; values are resolved by ``dataflow.options.Reader`` so errors can name
    the variable."""
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Send simulated sensor-fleet readings (air quality and machine\n"
        "temperature) to Kafka as seeded, bounded random walks, optionally with an\n"
        "overheating machine. Topics that do not exist yet are created.",
        epilog=EPILOG + "\n" + env_section(SECURITY_OPTIONS, SECURITY_TITLE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, OPTIONS)
    return parser


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags > environment > defaults. Exits with status 2 naming the setting on bad input."""
    parser = build_parser()
    read = Reader(os.environ if environ is None else environ, parser.parse_args(argv))
    try:
        return _settings(parser, read)
    except OptionError as exc:
        parser.error(str(exc))


def _settings(parser: argparse.ArgumentParser, read: Reader) -> Settings:
    # PRODUCER_FAMILIES is parsed below: the names depend on SENSORS_CONFIG.
    values: dict[str, Any] = {o.dest: read(o) for o in OPTIONS if o is not FAMILIES_OPTION}
    groups: tuple[Group, ...] = ()
    replay: Replay | None = None
    config_path = values["sensors_config"]
    if config_path is None:
        try:
            values["families"] = _families(read.text(FAMILIES_OPTION))
        except ValueError as exc:
            raise read.fail(FAMILIES_OPTION, str(exc)) from None
        try:  # the dataflow's own reading of the *family* variables (valid ranges, ...)
            available = families_from_env(
                {
                    **os.environ,
                    "AIR_QUALITY_TOPIC": values["air_quality_topic"],
                    "TEMPERATURE_TOPIC": values["temperature_topic"],
                }
            )
        except ConfigError as exc:
            parser.error(str(exc))
    else:
        available = _file_families(parser, config_path, values, read)
        if values["replay"] is None:
            groups = _groups(parser, available, read)
        values["families"] = ()

    if values["replay"] is not None:
        replay = _replay(parser, values, available)
    elif values["family"] is not None:
        parser.error(
            "--family (env PRODUCER_REPLAY_FAMILY) names the family of --replay; to "
            "simulate families use --families"
        )
    elif (
        config_path is None
        and values["scenario"] == "overheat"
        and TEMPERATURE in values["families"]
        and values["overheat_sensor"] not in sensor_ids(TEMPERATURE, values["sensors"])
    ):
        parser.error(
            f"invalid --overheat-sensor (env OVERHEAT_SENSOR) value "
            f"{values['overheat_sensor']!r}: not a temperature machine id; with --sensors "
            f"(env PRODUCER_SENSORS) {values['sensors']} the ids are 0..{values['sensors'] - 1}"
        )
    elif (
        config_path is None
        and "shift" in values["scenario"].split(",")
        and AIR_QUALITY in values["families"]
        and values["shift_sensor"] not in sensor_ids(AIR_QUALITY, values["sensors"])
    ):
        parser.error(
            f"invalid --shift-sensor (env SHIFT_SENSOR) value {values['shift_sensor']!r}: not "
            f"an air-quality sensor id; with --sensors (env PRODUCER_SENSORS) "
            f"{values['sensors']} the ids are Sensor1..Sensor{values['sensors']}"
        )
    _check_history(parser, values, config_path)
    _check_span(parser, values)
    if (
        config_path is None
        and len(set(values[t] for t in ("air_quality_topic", "temperature_topic"))) < 2
    ):
        parser.error(
            "--air-quality-topic (env AIR_QUALITY_TOPIC) and --temperature-topic "
            "(env TEMPERATURE_TOPIC) must differ"
        )
    try:
        security = KafkaSecurity.from_env(read.env)
    except SecurityConfigError as exc:  # names the variable, never holds the password
        parser.error(str(exc))

    settings = Settings(
        brokers=values["brokers"],
        families=values["families"],
        sensors=values["sensors"],
        rate=values["rate"],
        realtime=values["realtime"],
        interval_s=values["interval"],
        start_ns=values["start"],
        count=values["count"],
        duration_s=values["duration"],
        partitions=values["partitions"],
        seed=values["seed"],
        scenario=values["scenario"],
        overheat_sensor=values["overheat_sensor"],
        overheat_after_s=values["overheat_after"],
        shift_sensor=values["shift_sensor"],
        shift_after_s=values["shift_after"],
        history_s=values["history"],
        history_skip=values["history_skip"],
        air_quality_topic=values["air_quality_topic"],
        temperature_topic=values["temperature_topic"],
        log_sent=values["log_sent"],
        log_level=values["log_level"],
        security=security,
        sensors_config=config_path,
        groups=groups,
        replay=replay,
        relation_fault_after_s=values["relation_fault_after"],
    )
    if config_path is not None:
        settings = replace(settings, notes=tuple(unsent_readers(settings, available)))
    try:  # last line of defence: the simulation validates its own config too
        if replay is None and groups:
            settings.family_simulation(settings.start_ns or 0)
        elif replay is None:
            settings.simulation(settings.start_ns or 0)
    except ValueError as exc:
        parser.error(str(exc))
    return settings


#: Settings of the tutorial families that a sensors file replaces (the dataflow refuses them
#: beside SENSORS_CONFIG too).
_TUTORIAL_ONLY = ("air_quality_topic", "temperature_topic")


def _file_families(
    parser: argparse.ArgumentParser, path: str, values: Mapping[str, Any], read: Reader
) -> tuple[FamilySpec, ...]:
    """The families of the sensors file; exits 2 on a bad file or a setting it replaces."""
    for dest in _TUTORIAL_ONLY:
        option = _BY_DEST[dest]
        if read.origin(option) != DEFAULT and values[dest] != option.default:
            parser.error(
                f"{option.flag} (env {option.env}) has no effect with SENSORS_CONFIG="
                f"{path}: the file declares the topics (unset it)"
            )
    if values["scenario"] != "normal" and values["replay"] is None:
        needs = {"overheat": "temperature", "shift": "air-quality"}
        families = " and ".join(needs[name] for name in values["scenario"].split(","))
        parser.error(
            f"--scenario (env PRODUCER_SCENARIO) {values['scenario']} needs the built-in "
            f"{families} family: unset SENSORS_CONFIG, or use --scenario normal"
        )
    try:
        return load_families(path)
    except FamilyConfigError as exc:
        parser.error(f"invalid --sensors-config (env SENSORS_CONFIG): {exc}")


def _check_span(parser: argparse.ArgumentParser, values: Mapping[str, Any]) -> None:
    """The simulated readings' event times lie in 1970..2100, which the dataflow reads: any
    other start (with its history before it, its duration after) sent every message to the
    dead-letter topic (a replay's rows are checked as it reads them)."""
    if values["replay"] is not None:
        return
    start = values["start"] if values["start"] is not None else time.time_ns()
    first = start - round(values["history"] * 1e9)
    last = start + round((values["duration"] or 0) * 1e9)
    if first < MIN_NS or last >= MAX_NS:
        shown = " to ".join(map(_iso, (first, last)))
        parser.error(
            "--start (env PRODUCER_START), --history (env PRODUCER_HISTORY_SECONDS) and "
            "--duration (env PRODUCER_DURATION_SECONDS) put the readings' event times at "
            f"{shown}: they must lie in 1970..2100, which the dataflow reads (it refuses any "
            "other as a dead letter)"
        )


def _iso(ns: int) -> str:
    try:
        return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat()
    except OverflowError:
        return "beyond year 9999" if ns > 0 else "before year 1"


def _check_history(
    parser: argparse.ArgumentParser, values: Mapping[str, Any], config_path: str | None
) -> None:
    """``--history`` simulates the built-in families' past; ``--history-skip`` names sensors
    of theirs. Exits 2 where either would do nothing."""
    if values["history"] and (values["replay"] is not None or config_path is not None):
        parser.error(
            "--history (env PRODUCER_HISTORY_SECONDS) simulates the built-in families' past: "
            "a replay sends its file's own history, and SENSORS_CONFIG families have none; "
            "unset it"
        )
    skip = values["history_skip"]
    if not skip:
        return
    if not values["history"]:
        parser.error(
            "--history-skip (env PRODUCER_HISTORY_SKIP) names sensors without history, but "
            "--history (env PRODUCER_HISTORY_SECONDS) sends none: set it, or unset the skip"
        )
    known = [sid for family in values["families"] for sid in sensor_ids(family, values["sensors"])]
    unknown = [sid for sid in skip if sid not in known]
    if unknown:
        parser.error(
            f"invalid --history-skip (env PRODUCER_HISTORY_SKIP) value {unknown[0]!r}: not a "
            f"sensor of {', '.join(values['families'])} with --sensors {values['sensors']}"
        )


def _named(available: Sequence[FamilySpec], name: str) -> FamilySpec | None:
    return next((f for f in available if f.name == name), None)


def _groups(
    parser: argparse.ArgumentParser, available: tuple[FamilySpec, ...], read: Reader
) -> tuple[Group, ...]:
    """The selected families of the file (default: all), grouped into messages by topic."""
    known = ", ".join(f.name for f in available)
    # A machine family that sends a message per channel is read by the flow, never made here
    # (docs/machines.md): one named failed mid-run, after the families before it were sent.
    per_channel = [f.name for f in available if f.channel is not None]
    if read.origin(FAMILIES_OPTION) == DEFAULT:
        selected = tuple(f for f in available if f.channel is None)  # the rest: a note
        if not selected:
            raise read.fail(
                FAMILIES_OPTION,
                f"the sensors file's families ({known}) each send a message per channel, "
                "which the producer does not make",
            )
    else:
        names = [part.replace("-", "_") for part in items(read.text(FAMILIES_OPTION))]
        if not names:
            raise read.fail(FAMILIES_OPTION, f"no family given (choose from {known})")
        unknown = [name for name in names if _named(available, name) is None]
        if unknown:
            raise read.fail(
                FAMILIES_OPTION,
                f"unknown family {unknown[0]!r} (the sensors file declares {known})",
            )
        made = [name for name in names if name in per_channel]
        if made:
            raise read.fail(
                FAMILIES_OPTION,
                f"family {made[0]!r} sends a message per channel, which the producer does not "
                "make (only machines with every channel in one message)",
            )
        selected = tuple(f for f in available if f.name in names)
    try:
        groups = plan(selected)
    except ShapeConflict as exc:
        parser.error(
            f"{exc}: simulate them in separate runs (--families); each family then "
            "dead-letters the other's messages as missing_field"
        )
    return groups


def unsent_readers(settings: Settings, available: Sequence[FamilySpec]) -> list[str]:
    """Warnings for families that read a topic we send to without their fields in our messages:
    the dataflow dead-letters every such message for them (``missing_field``)."""
    sent = (
        {settings.replay.family.name}
        if settings.replay is not None
        else {f.name for g in settings.groups for f in g.families}
    )
    out = []
    per_channel = [f.name for f in available if f.channel is not None and f.name not in sent]
    if per_channel and settings.replay is None:
        out.append(
            f"not simulated: {', '.join(per_channel)} (a message per channel; the producer "
            "makes a machine's messages with every channel in one)"
        )
    for topic in settings.topics():
        left = [f.name for f in available if f.topic == topic and f.name not in sent]
        if left:
            out.append(
                f"topic {topic} is also read by {', '.join(left)}, not sent here: the "
                "dataflow will dead-letter these messages for it (missing_field)"
            )
    return out


def _replay(
    parser: argparse.ArgumentParser, values: Mapping[str, Any], available: tuple[FamilySpec, ...]
) -> Replay:
    """``--replay``'s settings: the family (built in or from the file) and the CSV layout."""
    known = ", ".join(f.name for f in available)
    name = values["family"]
    if name is None:
        parser.error(f"--replay needs --family (env PRODUCER_REPLAY_FAMILY): one of {known}")
    family = _named(available, name)
    if family is None:
        parser.error(
            f"invalid --family (env PRODUCER_REPLAY_FAMILY) value {name!r}: unknown "
            f"family (choose from {known})"
        )
    if values["realtime"]:
        parser.error("--realtime paces the simulation; pace --replay with --speed (1 = real time)")
    layout = Layout(
        timestamp=values["timestamp_column"],
        value=values["value_column"],
        sensor_id=values["sensor_id_column"],
        default_sensor_id=values["sensor_id"],
        time_format=values["time_format"],
        skip_values=values["skip_value"] or (),
        valid_range=family.valid_range,
        channels=family.channel_names,
    )
    return Replay(values["replay"], family, layout, values["speed"])
