"""Message formats of the sensor families -> ``Reading``.

Pure: bytes in, a ``Reading`` or a ``BadMessage`` with a machine-readable reason out. No Kafka
import, so every edge case is unit-tested without a broker. A family (``dataflow.families``)
says where its sensor id, value and timestamp are; ``Format`` compiles that once into a C
decoder of its exact shape. The built-in families are the classic tutorials' shapes:

- air quality:  key ``Sensor3``, value ``{"timestamp": "2022-07-15 11:34:32.113400", "value": 23}``
- temperature:  key ``2``, value ``{"Temperature_C": 65, "Timestamp": 1710856626905833677}``

Event-time rule of ``timestamp_format: auto`` (the built-in families'):

- a string is ISO 8601 (``T`` or space separator, optional fraction); with a zone or offset it is
  converted to UTC, without one it *is* UTC;
- a number (or a string of digits) is time since the Unix epoch, its unit read from its size:
  below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, otherwise nanoseconds;
- anything else, or a time outside 1970..2100, is rejected rather than guessed.

``iso`` takes only the strings, ``s``/``ms``/``us``/``ns`` only numbers in that unit. With no
timestamp field in a message (or none configured) the Kafka message timestamp is used.

Each family has a valid range of values: a reading outside it is not a reading of that kind of
sensor but a fault (``1.7e308`` once from a broken device), and is rejected as ``out_of_range``
before it can reach a window or a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, partial
from itertools import repeat
from operator import attrgetter
from typing import Annotated, Any, NamedTuple, cast, final

import msgspec
import numpy as np
import orjson

from dataflow.families import KEY, Family, ValueRange, builtin, topics_of
from dataflow.timestamps import (
    MAX_NS,
    MIN_NS,
    NS_PER_MS,
    NS_PER_S,
    NS_PER_US,
    RANGE_TEXT,
    UNIT_NS,
    datetime_to_ns,
)

# The built-in (tutorial) families, for callers that name them: tests, benchmarks, the evaluation.
BUILTIN: dict[str, Family] = {f.name: f for f in builtin()}
FAMILIES = tuple(BUILTIN)
VALID_RANGES: dict[str, ValueRange] = {name: f.valid_range for name, f in BUILTIN.items()}

MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 256


@final  # never subclassed: the shards tell a reading from a run by ``type(x) is Run``
class Reading(NamedTuple):
    """One sensor reading; ``ts`` is event time in integer nanoseconds since the epoch (UTC).

    ``source`` is the message it came from, kept (by reference, no copy) so that a reading that
    turns out late reaches the dead-letter topic with its original bytes.
    """

    family: str
    sensor_id: str
    ts: int
    value: float
    source: Any = None


@final
class Run(NamedTuple):
    """Consecutive readings of one sensor from one poll, as columns: what most of a poll is.

    A sensor sends many readings per poll on a dense fleet; folding them as a run (``sum``,
    ``min``, ``max`` over a window's slice) replaces a Python loop step per reading. ``sources``
    are the messages, in the same order, for readings that turn out late.
    """

    family: str
    sensor_id: str
    ts: tuple[int, ...]
    values: tuple[float, ...]
    sources: tuple[Any, ...]

    def readings(self) -> list[Reading]:
        """The run as single readings, in order."""
        fam, sid = self.family, self.sensor_id
        return [
            _new(Reading, (fam, sid, t, v, s))
            for t, v, s in zip(self.ts, self.values, self.sources, strict=True)
        ]


@final
class Rows(NamedTuple):
    """Single readings of one family from one poll, in poll order, as columns: a large
    fleet's polls, where each sensor has one reading in a poll.

    Routing hands a shard one ``Rows`` per poll, not a ``Reading`` per message: no object per
    reading, and columns are what a compiled shard would fold (issue 28). The poll's message
    keys (or id fields) were distinct, which its sensors usually are but need not be: ids that
    differ only in form (a field of ``1`` and one of ``"1"``) are one sensor. So a row may
    repeat an earlier row's sensor, and a fold must take the rows in order, as the shard does:
    row by row, each a ``Reading``'s fields as a plain tuple (``rows``).
    """

    family: str
    sensor_ids: Sequence[str]
    ts: Sequence[int]
    values: Sequence[float]
    sources: Sequence[Any]

    def rows(self) -> zip[tuple[str, str, int, float, Any]]:
        """``(family, sensor_id, ts, value, source)`` per reading, in order."""
        return zip(repeat(self.family), self.sensor_ids, self.ts, self.values, self.sources)

    def readings(self) -> list[Reading]:
        """The rows as ``Reading``s, in order."""
        return [_new(Reading, row) for row in self.rows()]


class SourceRef(tuple[bytes | None, bytes | None, str | None, int | None, int | None]):
    """Where a reading came from, without the Kafka client's message object.

    ``(key, value, topic, partition, offset)`` with the methods of the message that late-reading
    routing reads. A reading sent to a shard in another Bytewax process is pickled; a librdkafka
    ``Message`` pickles much slower than this plain tuple, enough to make two processes slower
    than one on a dense fleet.
    """

    __slots__ = ()

    def key(self) -> bytes | None:
        return self[0]

    def value(self) -> bytes | None:
        return self[1]

    def topic(self) -> str | None:
        return self[2]

    def partition(self) -> int | None:
        return self[3]

    def offset(self) -> int | None:
        return self[4]


class BadMessage(ValueError):
    """Why a message cannot be used. ``reason`` is a stable code for counting and routing."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NoTimestamp(BadMessage):
    """The payload has no timestamp field and no Kafka timestamp was given: a caller that has
    one (rarely needed, so not fetched for every message) may parse again with it."""


def epoch_to_ns(num: float) -> int:
    """Epoch number -> ns, the unit inferred from magnitude (see the module docstring)."""
    mag = abs(num)
    if mag < 1e11:
        scale = NS_PER_S
    elif mag < 1e14:
        scale = NS_PER_MS
    elif mag < 1e17:
        scale = NS_PER_US
    else:
        scale = 1
    if isinstance(num, int):
        return num * scale
    whole = int(num)  # split first: a float holds ~16 digits, an epoch in ns needs 19
    return whole * scale + round((num - whole) * scale)


_SECONDS: dict[str, int] = {}  # "2022-07-15 11:34:32" -> ns at the start of that second (UTC)
_SECONDS_MAX = 4096


def iso_to_ns(text: str) -> int:
    """ISO 8601 -> ns since the epoch; naive times are UTC.

    The tutorial's naive ``YYYY-mm-dd HH:MM:SS.ffffff`` takes a fast path: the whole second is
    looked up in a small cache (a fleet's readings share their seconds) and only the fraction is
    converted, because ``datetime.fromisoformat`` on every air-quality message was a sixth of the
    flow's time. Anything else, and every second not cached yet, takes the full parser.
    """
    if len(text) == 26 and text[19] == ".":
        frac = text[20:]
        if frac.isascii() and frac.isdigit():  # isdigit alone passes "¹", which int() refuses
            second = _SECONDS.get(text[:19])
            if second is None:
                second = _cache_second(text[:19])
                if second is None:
                    return _iso_to_ns(text)
            return second + int(frac) * NS_PER_US
    return _iso_to_ns(text)


def _cache_second(head: str) -> int | None:
    """Cache ``head`` if it is a canonical naive ``YYYY-mm-dd HH:MM:SS`` (or ``T``); else None."""
    try:
        dt = datetime.fromisoformat(head)
    except ValueError:
        return None
    if dt.tzinfo is not None or dt.isoformat(sep=head[10]) != head:
        return None  # an offset, a week date, ...: leave it to the full parser
    second = _iso_to_ns(head)
    if not MIN_NS <= second < MAX_NS - NS_PER_S:
        return None  # the full rule refuses it, with its reason
    if len(_SECONDS) >= _SECONDS_MAX:
        _SECONDS.clear()
    _SECONDS[head] = second
    return second


def _iso_to_ns(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadMessage("bad_timestamp", f"not ISO 8601 or epoch: {text[:64]!r}") from None
    return datetime_to_ns(dt)


def _in_range(ts: int, raw: Any) -> int:
    if not MIN_NS <= ts < MAX_NS:
        raise BadMessage("timestamp_out_of_range", f"{raw!r} is outside {RANGE_TEXT}")
    return ts


# Digits in a timestamp string at most: an epoch in ns has 19. Python refuses to convert more
# than 4,300 with a plain ValueError, which no parser expects (one message stopped the flow).
_MAX_DIGITS = 24


def _digits(text: str) -> int:
    """A string of ASCII digits as an int, or a dead letter if no epoch is that long."""
    if len(text) > _MAX_DIGITS:
        raise BadMessage(
            "timestamp_out_of_range", f"timestamp has {len(text)} digits, an epoch at most 19"
        )
    return int(text)


def _not_huge(raw: int | float) -> None:
    """A dead letter for an integer no epoch can be: beyond a float (``isfinite`` raises
    OverflowError) or too long to print in the reason (int's digit limit)."""
    if isinstance(raw, int) and not -(10**_MAX_DIGITS) < raw < 10**_MAX_DIGITS:
        raise BadMessage(
            "timestamp_out_of_range",
            f"timestamp is an integer of about {int(raw.bit_length() * 0.30103) + 1} digits, "
            "an epoch at most 19",
        )


def timestamp_to_ns(raw: Any) -> int:
    """Apply the event-time rule to a payload's timestamp field."""
    if isinstance(raw, bool):
        raise BadMessage("bad_timestamp", "timestamp is a boolean")
    if isinstance(raw, int | float):
        _not_huge(raw)
        if not math.isfinite(raw):
            raise BadMessage("bad_timestamp", "timestamp is not finite")
        ts = epoch_to_ns(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        ts = epoch_to_ns(_digits(text)) if text.isascii() and text.isdigit() else iso_to_ns(text)
    else:
        raise BadMessage("bad_timestamp", f"timestamp is a {type(raw).__name__}")
    return _in_range(ts, raw)


# Key bytes already checked -> sensor id. Looked up with a message's key as it comes: None misses.
_KEYS: dict[bytes | None, str] = {}
_KEYS_MAX = 1 << 18  # more than a fleet's sensors; cleared (not grown) past it
_NS_FLOOR = 10**17  # an integer epoch at or above this is already in ns (see epoch_to_ns)
_MISSING: Any = object()
_new = tuple.__new__  # a NamedTuple without its Python-level __new__: one Reading per message
_FAST_ERRORS = (msgspec.DecodeError, ValueError)  # ValueError: invalid UTF-8


def iso_timestamp_to_ns(raw: Any) -> int:
    """``timestamp_format: iso``: an ISO 8601 string, nothing else."""
    if not isinstance(raw, str):
        raise BadMessage(
            "bad_timestamp", f"expected an ISO 8601 string, got a {type(raw).__name__}"
        )
    return _in_range(iso_to_ns(raw.strip()), raw)


def unit_timestamp_to_ns(raw: Any, scale: int) -> int:
    """``timestamp_format: s|ms|us|ns``: a number (or a string of digits) in that unit."""
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        raw = _digits(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise BadMessage("bad_timestamp", f"expected a number, got a {type(raw).__name__}")
    _not_huge(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise BadMessage("bad_timestamp", "timestamp is not finite")
        whole = int(raw)
        return _in_range(whole * scale + round((raw - whole) * scale), raw)
    return _in_range(raw * scale, raw)


def _timestamp_type(fmt: str) -> Any:
    """What the C decoder accepts for a timestamp of this format; the rest takes the general
    rules. ``auto``: integers and strings (a float epoch is rare: general rules)."""
    if fmt == "auto":
        return int | str
    if fmt == "iso":
        return str
    return int if fmt == "ns" else int | float


def _struct(name: str, tree: dict[str, Any]) -> tuple[Any, dict[tuple[str, ...], str]]:
    """A msgspec struct type for a tree of dotted paths (leaf: a type), and where each path's
    value is as an attribute path (``f0.f1``). Unknown fields are ignored, as in the general
    rules."""
    fields: list[tuple[str, Any, Any]] = []
    attrs: dict[tuple[str, ...], str] = {}
    for i, (segment, sub) in enumerate(tree.items()):
        attr = f"f{i}"
        if isinstance(sub, dict):
            kind, inner = _struct(f"{name}_{i}", sub)
            attrs.update({(segment, *path): f"{attr}.{at}" for path, at in inner.items()})
        else:
            kind = sub
            attrs[(segment,)] = attr
        fields.append((attr, kind, msgspec.field(name=segment)))
    # gc=False: a reading holds no cycles, so the garbage collector need not track it, and it
    # is cheaper to make.
    return msgspec.defstruct(name, fields, gc=False), attrs


@final
class Format:
    """A family's message shape compiled once: its C decoder and its rules for each field.

    The decoder is built from the family's paths: a value that is a JSON number (not a bool)
    within the valid range, a timestamp of the shape its format allows, a sensor id that is a
    string or an integer. A message it refuses takes the general rules (``parse``), which accept
    every shape the event-time rule allows and name the reason of a rejection; both give the
    same reading for a message they both accept, so a message never reads differently because
    of the poll it came in.
    """

    def __init__(self, family: Family, channel: str | None = None) -> None:
        self.family = family
        self.name = family.name
        self.valid = family.valid_range
        # A machine family has a format per channel: its value is the channel's, its id the
        # machine's, and its sensor ids "<machine>/<channel>" (``suffix``).
        self.channel = channel
        self.suffix = "" if channel is None else f"/{channel}"
        self.cache_key = family.name + self.suffix  # its ids' cache, in routing
        # Per-channel messages (``family.channel``): the id is the machine's and the channel's
        # fields together, the sensor id "<machine>/<channel>".
        self.chan_path = None if family.channel is None else tuple(family.channel.split("."))
        if self.chan_path is not None:
            value, ident = family.value, family.machine or KEY
        elif channel is None:
            if family.channels:
                raise ValueError(f"family {family.name!r} has channels: a format is per channel")
            value, ident = family.value, family.sensor_id
        else:
            value, ident = dict(family.channels)[channel], family.machine or KEY
        self.id_field = ident  # "key", or the path that names a message's id in errors
        self.from_key = ident == KEY
        self.value_path = tuple(value.split("."))
        self.ts_path = None if family.timestamp is None else tuple(family.timestamp.split("."))
        self.id_path = None if self.from_key else tuple(ident.split("."))
        fmt = family.timestamp_format
        self.auto = fmt == "auto"
        self.to_ns: Callable[[Any], int] = (
            timestamp_to_ns
            if fmt == "auto"
            else iso_timestamp_to_ns
            if fmt == "iso"
            else partial(unit_timestamp_to_ns, scale=UNIT_NS[fmt])
        )
        lo, hi = family.valid_range
        leaves: list[tuple[tuple[str, ...], Any]] = [
            (self.value_path, Annotated[float, msgspec.Meta(ge=lo, le=hi)])
        ]
        if self.ts_path is not None:
            leaves.append((self.ts_path, _timestamp_type(fmt)))
        if self.id_path is not None:
            leaves.append((self.id_path, str | int))
        if self.chan_path is not None:
            leaves.append((self.chan_path, str | int))
        tree: dict[str, Any] = {}
        for path, kind in leaves:  # families.py refuses paths that overlap
            node = tree
            for segment in path[:-1]:
                node = node.setdefault(segment, {})
            node[path[-1]] = kind
        shape, attrs = _struct(f"_{family.name}", tree)
        self.decode = msgspec.json.Decoder(shape).decode
        self.value_of = attrgetter(attrs[self.value_path])
        self.ts_of = None if self.ts_path is None else attrgetter(attrs[self.ts_path])
        self.id_of = None if self.id_path is None else attrgetter(attrs[self.id_path])
        if self.chan_path is not None and self.id_path is not None:
            # A column of (machine, channel) pairs: one id per sensor, as any family's.
            self.id_of = attrgetter(attrs[self.id_path], attrs[self.chan_path])

    def __repr__(self) -> str:
        return f"Format({self.cache_key!r})"

    def __reduce__(self) -> tuple[Any, tuple[Family, str | None]]:
        return format_of, (self.family, self.channel)

    def machine_of(self, sensor_id: str) -> str:
        """What a sensor's shard is chosen by: its machine's id, or its own."""
        if self.chan_path is not None:
            return sensor_id.rpartition("/")[0]
        return sensor_id[: -len(self.suffix)] if self.suffix else sensor_id


@cache
def format_of(family: Family, channel: str | None = None) -> Format:
    """The compiled format of a family (of one channel of a machine family), built once."""
    return Format(family, channel)


def formats_of(family: Family) -> list[Format]:
    """A family's formats: one, or one per channel of a machine family."""
    if family.channels and family.channel is None:
        return [format_of(family, name) for name in family.channel_names]
    return [format_of(family)]


def formats_by_topic(families: tuple[Family, ...]) -> dict[str, list[Format]]:
    """topic -> the formats of the families read from it, as ``routing.route`` takes them."""
    return {
        topic: [fmt for f in fams for fmt in formats_of(f)]
        for topic, fams in topics_of(families).items()
    }


def sensor_id_of(key: bytes | None) -> str:
    """The sensor id a message key names; raise ``BadMessage`` when it names none."""
    sensor_id = _KEYS.get(key)
    if sensor_id is not None:
        return sensor_id
    if not key:
        raise BadMessage("bad_key", "missing or empty key (the key is the sensor id)")
    if len(key) > MAX_KEY_BYTES:
        raise BadMessage("bad_key", f"key of {len(key)} bytes is over {MAX_KEY_BYTES}")
    try:
        sensor_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("bad_key", "key is not UTF-8") from None
    if not sensor_id.strip():
        raise BadMessage("bad_key", "key is blank")
    if len(_KEYS) >= _KEYS_MAX:
        _KEYS.clear()
    _KEYS[key] = sensor_id
    return sensor_id


def sensor_id_from_field(raw: Any, path: str) -> str:
    """The sensor id a JSON field holds (a string, or an integer taken as its digits)."""
    kind = type(raw)
    sensor_id: str
    if kind is str:
        sensor_id = raw
    elif kind is int:
        sensor_id = str(raw)
    elif raw is _MISSING:
        raise BadMessage("missing_field", f"no {path!r} field (the sensor id)")
    else:
        raise BadMessage("bad_sensor_id", f"{path!r} is a {kind.__name__}, not a string")
    if not sensor_id.strip():
        raise BadMessage("bad_sensor_id", f"{path!r} is blank")
    if len(sensor_id.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise BadMessage("bad_sensor_id", f"{path!r} is over {MAX_KEY_BYTES} bytes")
    return sensor_id


def sensor_id_of_raw(fmt: Format, raw: Any) -> str:
    """The sensor id behind a poll's id column entry: a key's bytes or a field's value (a
    (machine, channel) pair for per-channel messages)."""
    if fmt.chan_path is not None:
        return _machine_channel(fmt, raw[0], raw[1])
    ident = sensor_id_of(raw) if fmt.from_key else sensor_id_from_field(raw, fmt.id_field)
    return ident + fmt.suffix if fmt.suffix else ident


def _machine_channel(fmt: Format, machine: Any, channel: Any) -> str:
    """``<machine>/<channel>`` from a per-channel message's two fields."""
    path = fmt.family.channel or ""
    name = sensor_id_from_field(channel, path)
    if "/" in name:
        raise BadMessage("bad_sensor_id", f"{path!r} holds a '/' ({name!r})")
    return f"{sensor_id_from_field(machine, fmt.id_field)}/{name}"


def parse(
    fmt: Format,
    key: bytes | None,
    value: bytes | None,
    kafka_ts_ms: int | None = None,
    source: Any = None,
) -> Reading:
    """Decode one message of a family; raise ``BadMessage`` when it cannot be used.

    Polls are decoded whole by ``parse_poll``; this is for the messages of a poll that it
    leaves, so every one of them passes here. The family's decoder still goes first, as in
    ``parse_poll``, so that a message reads the same whichever path it takes.
    """
    sensor_id = None
    if fmt.from_key:
        sensor_id = _KEYS.get(key)
        if sensor_id is None:
            sensor_id = sensor_id_of(key)
    if value is None:
        raise BadMessage("invalid_json", "message has no value")
    if len(value) > MAX_VALUE_BYTES:
        raise BadMessage("oversized", f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
    try:
        obj = fmt.decode(value)
    except _FAST_ERRORS:
        return _parse_general(fmt, sensor_id, value, kafka_ts_ms, source)
    if fmt.chan_path is not None:
        sensor_id = sensor_id_of_raw(fmt, fmt.id_of(obj))  # type: ignore[misc]
    elif fmt.id_of is not None:  # the id is a field (else the key gave it above)
        sensor_id = sensor_id_from_field(fmt.id_of(obj), fmt.id_field)
    if fmt.suffix:
        sensor_id = f"{sensor_id}{fmt.suffix}"
    if fmt.ts_of is None:
        ts = _kafka_ns(kafka_ts_ms)
    else:
        raw = fmt.ts_of(obj)
        ts = raw if fmt.auto and type(raw) is int and _NS_FLOOR <= raw < MAX_NS else fmt.to_ns(raw)
    return _new(Reading, (fmt.name, sensor_id, ts, fmt.value_of(obj), source))


def _kafka_ns(kafka_ts_ms: int | None) -> int:
    if kafka_ts_ms is not None and kafka_ts_ms > 0:
        return kafka_ts_ms * 1_000_000
    raise NoTimestamp("missing_field", "no timestamp field configured and no Kafka timestamp")


def _lookup(obj: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if type(obj) is not dict:
            return _MISSING
        obj = obj.get(segment, _MISSING)
    return obj


def _parse_general(
    fmt: Format, sensor_id: str | None, value: bytes, kafka_ts_ms: int | None, source: Any
) -> Reading:
    """Every shape the event-time rule allows, and the reason when a message has none."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("invalid_json", str(exc)) from None
    if type(obj) is not dict:
        raise BadMessage("not_an_object", f"value is a JSON {type(obj).__name__}")
    fam = fmt.family
    if fmt.chan_path is not None:
        assert fmt.id_path is not None  # families.py: the machine is a path here
        sensor_id = _machine_channel(fmt, _lookup(obj, fmt.id_path), _lookup(obj, fmt.chan_path))
    elif fmt.id_path is not None:  # the id is a field (else the caller read the key)
        sensor_id = sensor_id_from_field(_lookup(obj, fmt.id_path), fmt.id_field)
    value_field = ".".join(fmt.value_path)
    num = _lookup(obj, fmt.value_path)
    kind = type(num)
    if kind is float:
        if num - num != 0.0:  # inf or nan; cheaper than math.isfinite (orjson refuses both)
            raise BadMessage("non_finite_value", f"{value_field!r} is {num}")
    elif kind is int:
        num = float(num)
    elif num is _MISSING:
        raise BadMessage("missing_field", f"no {value_field!r} field")
    else:  # bool included: a bool is not a reading
        raise BadMessage("bad_value_type", f"{value_field!r} is a {kind.__name__}")
    lo, hi = fmt.valid
    if not lo <= num <= hi:
        raise BadMessage(
            "out_of_range",
            f"{value_field!r} is {num!r}, outside the valid range {lo:g}..{hi:g} of {fam.name}",
        )
    if fmt.ts_path is None:
        ts = _kafka_ns(kafka_ts_ms)
    else:
        raw_ts = _lookup(obj, fmt.ts_path)
        if raw_ts is None:
            raise BadMessage("bad_timestamp", f"{fam.timestamp!r} is null")
        if raw_ts is not _MISSING:
            ts = fmt.to_ns(raw_ts)
        elif kafka_ts_ms is not None and kafka_ts_ms > 0:
            ts = kafka_ts_ms * 1_000_000
        else:
            raise NoTimestamp("missing_field", f"no {fam.timestamp!r} field and no Kafka timestamp")
    if fmt.suffix:
        sensor_id = f"{sensor_id}{fmt.suffix}"
    return _new(Reading, (fmt.name, sensor_id, ts, num, source))


# The tutorial's naive timestamp, "YYYY-mm-dd HH:MM:SS.ffffff": where its digits and marks go.
_NAIVE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25])
_NAIVE_MARKS = np.array([4, 7, 13, 16, 19])
_NAIVE_MARK_CODES = np.frombuffer(b"--::.", np.uint8)
_MAX_US = MAX_NS // NS_PER_US


class Columns(NamedTuple):
    """A poll decoded whole: sensor ids (None: the message keys are), event times in ns, values."""

    ids: list[Any] | None
    ts: list[int]
    values: list[float]


def parse_poll(
    fmt: Format,
    values: Sequence[bytes | None],
    stamps: list[tuple[int, int]] | None = None,
) -> Columns | None:
    """Decode a whole poll of a family's values, in order.

    None when any message is not in the family's exact shape: the caller then parses the poll
    message by message (``parse``), which finds the one that needs the general rules and why;
    so is a value outside the valid range, which the decoder checks. ``stamps`` are the
    messages' Kafka timestamps, needed only by a family without a timestamp field. Every loop
    here is in C where the shape allows it (msgspec decodes and type-checks, ``map`` drives it,
    numpy reads naive timestamps), where the per-message rules cost a dozen Python steps, and
    parsing is a large share of a dense fleet's time.
    """
    if not values:
        return Columns(None if fmt.from_key else [], [], [])
    # No test per message for a message without a value: its None fails len() with a TypeError,
    # caught below, and the poll goes message by message.
    present = cast("Sequence[bytes]", values)
    try:
        if max(map(len, present)) > MAX_VALUE_BYTES:
            return None
        objs = list(map(fmt.decode, present))
    except (*_FAST_ERRORS, TypeError):  # TypeError: a message without a value
        return None
    nums = list(map(fmt.value_of, objs))
    ids = None if fmt.id_of is None else list(map(fmt.id_of, objs))
    if fmt.ts_of is None:
        ts = None if stamps is None else _kafka_column(stamps)
    else:
        raw = list(map(fmt.ts_of, objs))
        ts = _auto_column(raw) if fmt.auto else _each(raw, fmt.to_ns)
    return None if ts is None else Columns(ids, ts, nums)


def _each(raw: list[Any], to_ns: Callable[[Any], int]) -> list[int] | None:
    """A timestamp column by the per-message rule; None if any is refused."""
    try:
        return list(map(to_ns, raw))
    except BadMessage:
        return None


def _auto_column(raw: list[Any]) -> list[int] | None:
    """``timestamp_format: auto`` over a column: nanosecond integers and naive ISO strings, the
    tutorials' shapes, in C; anything else by the per-message rule."""
    try:
        lo, hi = min(raw), max(raw)
    except TypeError:  # integers and strings mixed
        return _each(raw, timestamp_to_ns)
    if type(lo) is int:
        return raw if lo >= _NS_FLOOR and hi < MAX_NS else _each(raw, timestamp_to_ns)
    return _naive_column(raw) or _each(raw, timestamp_to_ns)


def _kafka_column(stamps: list[tuple[int, int]]) -> list[int] | None:
    """The Kafka timestamps (ms) in ns; None when a message has none."""
    kinds, millis = zip(*stamps, strict=True)
    if not all(kinds) or min(millis) <= 0:
        return None
    return [ms * 1_000_000 for ms in millis]


def _naive_column(texts: list[str]) -> list[int] | None:
    """``timestamp_to_ns`` over a column of ``YYYY-mm-dd HH:MM:SS.ffffff`` strings, in C loops.

    The shape is checked first, as one array of ASCII codes with a row per string: digits where
    digits go, ``-``, ``:`` and ``.`` where they go. Then numpy parses the column, taking only a
    ``T`` or a space between date and time, and refusing impossible dates and times as
    ``datetime.fromisoformat`` does. None unless every string passes and lies in 1970..2100, so
    the result is always the per-message rule's. ``datetime`` per message was a sixth of the
    flow's time.
    """
    n = len(texts)
    if len(set(map(len, texts))) != 1:
        return None
    joined = "".join(texts)
    if len(joined) != 26 * n or not joined.isascii():  # isdigit() takes other scripts' digits
        return None
    codes = np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, 26)
    if not (
        ((codes[:, _NAIVE_DIGITS] - 48) < 10).all()  # unsigned: below "0" wraps round
        and (codes[:, _NAIVE_MARKS] == _NAIVE_MARK_CODES).all()
    ):
        return None
    try:
        micros = np.array(texts, dtype="datetime64[us]").view(np.int64)
    except ValueError:  # a month 13, a February 30th, an hour 24, ...
        return None
    if micros.min() < 0 or micros.max() >= _MAX_US:
        return None
    ns: list[int] = (micros * NS_PER_US).tolist()
    return ns
