"""Sensor families: which topic, which fields, what range, which rules. From a file or built in.

Pure: no Kafka, no Bytewax. A family is a kind of sensor (humidity, vibration, machine
temperature) read from one topic in one JSON shape. Without a file the two tutorials' families are
built in, from the environment as they always were; with ``SENSORS_CONFIG`` a YAML file declares
them (docs/sensor-families.md). Every mistake in a file is reported as one line naming the
file, the path inside it and what is wrong, before the flow touches Kafka.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from dataflow.rules import SEVERITIES, Rule, RuleSet

AIR_QUALITY = "air_quality"
TEMPERATURE = "temperature"
TIMESTAMP_FORMATS = ("auto", "iso", "s", "ms", "us", "ns")
KEY = "key"  # sensor_id read from the Kafka key
ML = "ml"  # the model's reason; no rule may take its name
# No valid range may reach past this, so a window's running sum of accepted values cannot
# overflow: it would take more than 1e8 readings in one window of one sensor.
MAX_MAGNITUDE = 1e300
ValueRange = tuple[float, float]  # (lowest, highest), both inclusive

_NAME = re.compile(r"[a-z0-9_]+\Z")
_CHANNEL = re.compile(r"[^/]+\Z")  # a channel name: no "/" (ids join with it)
_SEGMENT = re.compile(r"[^.\s]+\Z")


class FamilyConfigError(ValueError):
    """A bad sensors file: the message names the file, the path inside it and the problem."""


@dataclass(frozen=True)
class Override:
    """Rules for the sensors whose id matches ``pattern`` (exact, or a shell-style glob)."""

    pattern: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Family:
    """One family, every default resolved."""

    name: str
    topic: str
    value: str  # dotted path to the number in the JSON value
    valid_range: ValueRange
    window_seconds: float
    sensor_id: str = KEY  # "key", or a dotted path into the JSON value
    timestamp: str | None = None  # dotted path; None: the Kafka message timestamp
    timestamp_format: str = "auto"
    unit: str | None = None
    limits: ValueRange | None = None  # HalfSpaceTrees' feature range; None: valid_range
    rules: tuple[Rule, ...] = ()
    sensors: tuple[Override, ...] = ()
    ml_severity: str = "warning"
    # A machine family (docs/machines.md): where the machine id is ("key" or a dotted path), and
    # each channel's name and dotted path. A sensor is then "<machine>/<channel>".
    machine: str | None = None
    channels: tuple[tuple[str, str], ...] = ()
    # Per-channel messages: the dotted path of the field naming the channel (``value`` is then
    # the channel's number, and ``channels`` name the machine's channels, their paths "").
    channel: str | None = None
    _rulesets: dict[tuple[Rule, ...], RuleSet] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.channels)

    @property
    def model_limits(self) -> ValueRange:
        return self.valid_range if self.limits is None else self.limits

    def rules_for(self, sensor_id: str) -> RuleSet:
        """The sensor's rules: the family's, with the first matching override applied.

        An override's rule replaces the family's rule of the same name and adds the others, so
        ``lab-*`` can tighten ``too_humid`` and keep every other rule. One ``RuleSet`` per
        distinct list, shared by the sensors that have it.
        """
        rules = self.rules
        for ov in self.sensors:
            if ov.pattern == sensor_id or fnmatchcase(sensor_id, ov.pattern):
                named = {r.name: r for r in ov.rules}
                rules = (*(named.pop(r.name, r) for r in rules), *named.values())
                break
        found = self._rulesets.get(rules)
        if found is None:
            found = self._rulesets[rules] = RuleSet(rules, self.ml_severity)
        return found


def topics_of(families: tuple[Family, ...]) -> dict[str, tuple[Family, ...]]:
    """topic -> the families read from it, in declaration order."""
    out: dict[str, tuple[Family, ...]] = {}
    for fam in families:
        out[fam.topic] = (*out.get(fam.topic, ()), fam)
    return out


def builtin(
    air_quality_topic: str = "air-quality",
    temperature_topic: str = "temperature_readings",
    window_seconds: float = 5.0,
    temperature_threshold: float | None = 90.0,
    air_quality_threshold: float | None = None,
    temperature_limits: ValueRange = (0.0, 120.0),
    air_quality_limits: ValueRange = (0.0, 500.0),
    temperature_valid: ValueRange = (-273.15, 10_000.0),
    air_quality_valid: ValueRange = (-100.0, 100_000.0),
) -> tuple[Family, ...]:
    """The tutorials' two families, as the environment variables set them.

    The rule of each keeps the name ``threshold`` that consumers of the tutorials read. Valid
    ranges: temperature from absolute zero to well past any furnace; air quality as a
    concentration or an index, with room for a small negative zero offset of real instruments
    (the UCI data's -200 "missing" marker falls outside).
    """

    def threshold(level: float | None, severity: str) -> tuple[Rule, ...]:
        return () if level is None else (Rule("threshold", "above", level, 1, severity),)

    return (
        Family(
            AIR_QUALITY,
            air_quality_topic,
            value="value",
            timestamp="timestamp",
            valid_range=air_quality_valid,
            window_seconds=window_seconds,
            limits=air_quality_limits,
            rules=threshold(air_quality_threshold, "warning"),
        ),
        Family(
            TEMPERATURE,
            temperature_topic,
            value="Temperature_C",
            timestamp="Timestamp",
            unit="°C",
            valid_range=temperature_valid,
            window_seconds=window_seconds,
            limits=temperature_limits,
            rules=threshold(temperature_threshold, "critical"),
        ),
    )


# ---- the file ---------------------------------------------------------------------------------

FAMILY_KEYS = {
    "topic": "Kafka topic the family is read from (several families may share one).",
    "sensor_id": "`key` (the Kafka key, UTF-8) or a dotted path into the JSON value.",
    "value": "Dotted path to the number.",
    "timestamp": "Dotted path to the event time; omitted: the Kafka message timestamp.",
    "timestamp_format": "`auto` (epoch unit from its size, or ISO 8601), `iso`, `s`, `ms`, "
    "`us`, `ns`.",
    "unit": "Carried into every output record (`unit`).",
    "valid_range": "`[lo, hi]`, inclusive; a value outside is a dead letter (`out_of_range`).",
    "window_seconds": "Tumbling window length of this family (default `WINDOW_SECONDS`).",
    "limits": "`[lo, hi]` feature range of HalfSpaceTrees (default `valid_range`).",
    "ml_severity": "Severity of the model's reason `ml` (default `warning`).",
    "rules": "List of rules (below); none: the model alone.",
    "sensors": "Per-sensor overrides: `{pattern: {rules: [...]}}`, exact id or glob, first "
    "match wins; a rule replaces the family's rule of the same name.",
    "machine": "`key` or a dotted path: the machine id of each message; with `channels`, a "
    "machine family ([docs/machines.md](machines.md)): sensor ids are `<machine>/<channel>`.",
    "channels": "With `machine`, instead of `value`: `{name: dotted path, ...}`, the channels one "
    "message carries; or, with `channel`, the list of the machine's channel names.",
    "channel": "With `machine` and a list of `channels`: the dotted path of the field naming "
    "each message's channel (a message per channel, its number at `value`).",
}
RULE_KEYS = {
    "name": "`[a-z0-9_]+`, unique in its list; it names the reason in the output.",
    "above": "Fires when the window mean is at or above this number.",
    "below": "Fires when the window mean is at or below this number (give one of the two).",
    "for_windows": "Consecutive windows the condition must hold before it fires (default 1).",
    "severity": "`info`, `warning` (default) or `critical`.",
}


class _Where:
    """The file and the path inside it, for one-line error messages."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def at(self, part: str | int) -> _Where:
        if isinstance(part, int):
            return _Where(self.source, f"{self.path}[{part}]")
        if not _NAME.match(part) and not part.isidentifier():
            return _Where(self.source, f"{self.path}[{part!r}]")
        return _Where(self.source, f"{self.path}.{part}" if self.path else part)

    def fail(self, what: str) -> FamilyConfigError:
        return FamilyConfigError(f"{self.source}: {self.path or '(top level)'}: {what}")


def _mapping(raw: Any, where: _Where, allowed: Mapping[str, str] | None = None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise where.fail(f"expected a mapping, got {_kind(raw)}")
    for key in raw:
        if not isinstance(key, str):
            raise where.fail(f"keys must be strings, got {key!r}")
        if allowed is not None and key not in allowed:
            raise where.at(key).fail(f"unknown key (known: {', '.join(allowed)})")
    return raw


def _kind(raw: Any) -> str:
    return "nothing" if raw is None else f"a {type(raw).__name__}"


def _number(raw: Any, where: _Where) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise where.fail(f"expected a number, got {_kind(raw)}")
    if not math.isfinite(raw) or abs(raw) > MAX_MAGNITUDE:
        raise where.fail(f"must be finite, within +-{MAX_MAGNITUDE:g}")
    return float(raw)


def _text(raw: Any, where: _Where) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise where.fail(f"expected a non-empty string, got {_kind(raw)}")
    return raw


def _path(raw: Any, where: _Where) -> str:
    text = _text(raw, where)
    if not all(_SEGMENT.match(seg) for seg in text.split(".")):
        raise where.fail(f"{text!r} is not a dotted path (fields separated by '.', no blanks)")
    return text


def _pair(raw: Any, where: _Where) -> ValueRange:
    if not isinstance(raw, list) or len(raw) != 2:
        raise where.fail(f"expected [lo, hi], got {raw!r}")
    lo, hi = _number(raw[0], where.at(0)), _number(raw[1], where.at(1))
    if not lo < hi:
        raise where.fail(f"lo must be below hi, got {raw!r}")
    return lo, hi


def _choice(raw: Any, where: _Where, options: tuple[str, ...]) -> str:
    if raw not in options:
        raise where.fail(f"expected one of {', '.join(options)}, got {raw!r}")
    return str(raw)


def _rules(raw: Any, where: _Where) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.fail(f"expected a list of rules, got {_kind(raw)}")
    out: list[Rule] = []
    for i, item in enumerate(raw):
        at = where.at(i)
        spec = _mapping(item, at, RULE_KEYS)
        if "name" not in spec:
            raise at.fail("missing key 'name'")
        name = _text(spec["name"], at.at("name"))
        if not _NAME.match(name) or name == ML:
            raise at.at("name").fail(
                f"{name!r} must match [a-z0-9_]+ and not be {ML!r} (the model's reason)"
            )
        if any(r.name == name for r in out):
            raise at.at("name").fail(f"{name!r} is already a rule of this list")
        sides = [k for k in ("above", "below") if k in spec]
        if len(sides) != 1:
            raise at.fail("give exactly one of 'above' or 'below'")
        level = _number(spec[sides[0]], at.at(sides[0]))
        count = spec.get("for_windows", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise at.at("for_windows").fail(f"expected a whole number >= 1, got {count!r}")
        severity = _choice(spec.get("severity", "warning"), at.at("severity"), SEVERITIES)
        out.append(Rule(name, "above" if sides[0] == "above" else "below", level, count, severity))
    return tuple(out)


def _no_overlap(where: _Where, **paths: str | None) -> None:
    """Two fields cannot be one, nor one inside the other (``a`` and ``a.b``)."""
    given = [(key, tuple(p.split("."))) for key, p in paths.items() if p is not None]
    for i, (key, path) in enumerate(given):
        for other, other_path in given[i + 1 :]:
            n = min(len(path), len(other_path))
            if path[:n] == other_path[:n]:
                head, dot, channel = other.partition(".")  # "channels.<name>": a channel's
                at = where.at(head).at(channel) if dot else where.at(other)
                raise at.fail(f"{paths[other]!r} overlaps {key} {paths[key]!r}")


def _channels(
    spec: dict[str, Any], where: _Where
) -> tuple[str | None, tuple[tuple[str, str], ...], str | None]:
    """A machine family's ``machine``, ``channels`` and ``channel`` (None, (), None for any
    other). ``channels`` is a mapping of paths (every channel in one message), or a list of
    names with ``channel`` naming each message's (a message per channel)."""
    if "machine" not in spec:
        for key in ("channels", "channel"):
            if key in spec:
                raise where.at(key).fail("set without 'machine' (whose channels are they?)")
        return None, (), None
    machine = spec["machine"]
    machine = KEY if machine == KEY else _path(machine, where.at("machine"))
    if "channels" not in spec:
        raise where.fail("missing key 'channels' (a machine family names its channels)")
    at = where.at("channels")
    raw = spec["channels"]
    channel = None
    if isinstance(raw, list):
        if "channel" not in spec:
            raise at.fail("a list of names needs 'channel': the field naming each message's")
        if machine == KEY:
            raise where.at("machine").fail("must be a dotted path with 'channel' (not the key)")
        channel = _path(spec["channel"], where.at("channel"))
        if "value" not in spec:
            raise where.fail("missing key 'value' (each message's number)")
        names = [_text(n, at.at(i)) for i, n in enumerate(raw)]
        raw = dict.fromkeys(names, "")
        if len(raw) != len(names):
            raise at.fail("names a channel twice")
    else:
        if "channel" in spec:
            raise where.at("channel").fail("set beside a mapping of 'channels' (give a list)")
        if "value" in spec:
            raise where.at("value").fail("set beside 'channels' (each channel names its own value)")
        raw = _mapping(raw, at)
    if not raw:
        raise at.fail("declares no channel")
    out = []
    for name, path in raw.items():
        if not _CHANNEL.match(name) or name.strip() != name:
            raise at.at(name).fail(
                f"channel name {name!r} must have no '/' and no blank at either end"
            )
        out.append((name, path if channel is not None else _path(path, at.at(name))))
    return machine, tuple(out), channel


def _family(name: str, raw: Any, where: _Where, window_seconds: float) -> Family:
    spec = _mapping(raw, where, FAMILY_KEYS)
    machine, channels, channel = _channels(spec, where)
    whole = channels and channel is None  # every channel in one message
    for key in ("topic", "valid_range") if whole else ("topic", "value", "valid_range"):
        if key not in spec:
            raise where.fail(f"missing key {key!r}")
    sensor_id = spec.get("sensor_id", KEY)
    sensor_id = KEY if sensor_id == KEY else _path(sensor_id, where.at("sensor_id"))
    timestamp = spec.get("timestamp")
    if timestamp is not None:
        timestamp = _path(timestamp, where.at("timestamp"))
    fmt = _choice(
        spec.get("timestamp_format", "auto"), where.at("timestamp_format"), TIMESTAMP_FORMATS
    )
    if "timestamp_format" in spec and timestamp is None:
        raise where.at("timestamp_format").fail(
            "set without 'timestamp' (the Kafka message timestamp has no format)"
        )
    if channels and "sensor_id" in spec:
        raise where.at("sensor_id").fail("set beside 'machine' (a sensor is machine/channel)")
    if channel is not None:
        value = _path(spec["value"], where.at("value"))
        _no_overlap(where, value=value, timestamp=timestamp, machine=machine, channel=channel)
    elif channels:
        value = channels[0][1]
        _no_overlap(
            where,
            timestamp=timestamp,
            machine=None if machine == KEY else machine,
            **{f"channels.{c}": p for c, p in channels},
        )
    else:
        value = _path(spec["value"], where.at("value"))
        _no_overlap(
            where,
            value=value,
            timestamp=timestamp,
            sensor_id=None if sensor_id == KEY else sensor_id,
        )
    unit = spec.get("unit")
    if unit is not None:
        unit = _text(unit, where.at("unit"))
    window = spec.get("window_seconds", window_seconds)
    window = _number(window, where.at("window_seconds"))
    if not whole_ms(window):
        raise where.at("window_seconds").fail(
            f"must be > 0 and a whole number of milliseconds (as the output's window times "
            f"are), got {window!r}"
        )
    limits = spec.get("limits")
    overrides: list[Override] = []
    sensors = spec.get("sensors")
    if sensors is not None:
        at = where.at("sensors")
        for pattern, body in _mapping(sensors, at).items():
            body_at = at.at(pattern)
            if not pattern.strip():
                raise body_at.fail("a sensor pattern must not be blank")
            body = _mapping(body, body_at, {"rules": "the sensor's rules"})
            overrides.append(Override(pattern, _rules(body.get("rules"), body_at.at("rules"))))
    valid = _pair(spec["valid_range"], where.at("valid_range"))
    return Family(
        name=name,
        topic=_text(spec["topic"], where.at("topic")),
        value=value,
        valid_range=valid,
        window_seconds=window,
        sensor_id=sensor_id,
        timestamp=timestamp,
        timestamp_format=fmt,
        unit=unit,
        limits=valid if limits is None else _pair(limits, where.at("limits")),
        rules=_rules(spec.get("rules"), where.at("rules")),
        sensors=tuple(overrides),
        ml_severity=_choice(
            spec.get("ml_severity", "warning"), where.at("ml_severity"), SEVERITIES
        ),
        machine=machine,
        channels=channels,
        channel=channel,
    )


def parse_families(raw: Any, source: str, window_seconds: float = 5.0) -> tuple[Family, ...]:
    """Validate a decoded sensors file; ``source`` names it in errors."""
    top = _Where(source)
    doc = _mapping(raw, top, {"families": "the families"})
    if "families" not in doc:
        raise top.fail("missing key 'families'")
    at = top.at("families")
    fams = _mapping(doc["families"], at)
    if not fams:
        raise at.fail("declares no family")
    out = []
    for name, body in fams.items():
        if not _NAME.match(name):
            raise at.at(name).fail(f"family name {name!r} must match [a-z0-9_]+")
        out.append(_family(name, body, at.at(name), window_seconds))
    return tuple(out)


def whole_ms(seconds: float) -> bool:
    """A window length the output can say: positive, in whole milliseconds (``window_start``
    and ``window_end`` are written to the millisecond: shorter windows shared their times).
    Read as decimal, so 1.005 s is whole (its binary float is not)."""
    ms = seconds * 1000
    return seconds > 0 and abs(ms - round(ms)) <= 1e-9 * max(1.0, ms)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), but with a number in exponent form (``2e5``, ``1E-3``)
    a number, as JSON and YAML 1.2 read it: YAML 1.1 wants a dot (``2.0e+5``), and a JSON
    file's ``2e5`` was refused as "expected a number, got a str"."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_families(path: str | Path, window_seconds: float = 5.0) -> tuple[Family, ...]:
    """Read and validate a sensors file (YAML, so JSON too)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FamilyConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A binary file, or text saved in another encoding (UTF-16, Latin-1): say where.
        line = data.count(b"\n", 0, exc.start) + 1
        raise FamilyConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); a sensors file is YAML saved as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader, with JSON's numbers
    except yaml.reader.ReaderError as exc:
        # Valid UTF-8 but a control character YAML refuses (a NUL of a binary file): PyYAML's
        # own message spans two lines and counts characters from the start.
        lines = text[: exc.position].split("\n")
        where = f"line {len(lines)}, column {len(lines[-1]) + 1}"
        raise FamilyConfigError(
            f"{path}: {where}: not text: character #x{exc.character:04x} ({exc.reason})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise FamilyConfigError(f"{path}: {where}: not valid YAML: {problem}") from None
    return parse_families(raw, str(path), window_seconds)


def describe(families: tuple[Family, ...]) -> dict[str, Any]:
    """The resolved families as plain data, every default filled in (``--check-config``); read
    back by ``parse_families``, it gives the same families."""

    def rule(r: Rule) -> dict[str, Any]:
        return {
            "name": r.name,
            r.direction: r.level,
            "for_windows": r.for_windows,
            "severity": r.severity,
        }

    def stamp(f: Family) -> dict[str, Any]:
        if f.timestamp is None:
            return {"timestamp": None}  # the Kafka timestamp, which has no format
        return {"timestamp": f.timestamp, "timestamp_format": f.timestamp_format}

    def shape(f: Family) -> dict[str, Any]:
        if f.machine is None:
            return {"sensor_id": f.sensor_id, "value": f.value}
        if f.channel is not None:
            return {
                "machine": f.machine,
                "channel": f.channel,
                "value": f.value,
                "channels": list(f.channel_names),
            }
        return {"machine": f.machine, "channels": dict(f.channels)}

    return {
        "families": {
            f.name: {
                "topic": f.topic,
                **shape(f),
                **stamp(f),
                "unit": f.unit,
                "valid_range": list(f.valid_range),
                "window_seconds": f.window_seconds,
                "limits": list(f.model_limits),
                "ml_severity": f.ml_severity,
                "rules": [rule(r) for r in f.rules],
                "sensors": {o.pattern: {"rules": [rule(r) for r in o.rules]} for o in f.sensors},
            }
            for f in families
        }
    }


def with_window(families: tuple[Family, ...], window_seconds: float) -> tuple[Family, ...]:
    """The same families with one window length (tests, benchmarks)."""
    return tuple(replace(f, window_seconds=window_seconds) for f in families)
