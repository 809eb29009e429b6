"""Message formats of both sensor families -> ``Reading``.

Pure: bytes in, a ``Reading`` or a ``BadMessage`` with a machine-readable reason out. No Kafka
import, so every edge case is unit-tested without a broker.

Formats accepted (the classic tutorials' shapes):

- air quality:  key ``Sensor3``, value ``{"timestamp": "2022-07-15 11:34:32.113400", "value": 23}``
- temperature:  key ``2``, value ``{"Temperature_C": 65, "Timestamp": 1710856626905833677}``

Event-time rule, the same for both families:

- a string is ISO 8601 (``T`` or space separator, optional fraction); with a zone or offset it is
  converted to UTC, without one it *is* UTC;
- a number (or a string of digits) is time since the Unix epoch, its unit read from its size:
  below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, otherwise nanoseconds;
- no timestamp field at all: the Kafka message timestamp (milliseconds) is used;
- anything else, or a time outside 1970..2100, is rejected rather than guessed.

Each family has a valid range of values (``VALID_RANGES``, configurable): a reading outside it is
not a reading of that kind of sensor but a fault (``1.7e308`` once from a broken device), and is
rejected as ``out_of_range`` before it can reach a window or a model.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import orjson

AIR_QUALITY = "air_quality"
TEMPERATURE = "temperature"
FAMILIES = (AIR_QUALITY, TEMPERATURE)

# family -> (value field, timestamp field), as the tutorials name them.
FIELDS: dict[str, tuple[str, str]] = {
    AIR_QUALITY: ("value", "timestamp"),
    TEMPERATURE: ("Temperature_C", "Timestamp"),
}

ValueRange = tuple[float, float]  # (lowest, highest) plausible value, both inclusive

# Wide enough for any real sensor of the kind: temperature from absolute zero to well past any
# furnace; air quality as a concentration or an index, with room for a small negative zero
# offset of real instruments (the UCI data's -200 "missing" marker falls outside).
VALID_RANGES: dict[str, ValueRange] = {
    AIR_QUALITY: (-100.0, 100_000.0),
    TEMPERATURE: (-273.15, 10_000.0),
}
# No configured range may reach past this, so a window's running sum of accepted values cannot
# overflow: it would take more than 1e8 readings in one window of one sensor.
MAX_MAGNITUDE = 1e300

MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 256
_MIN_NS = 0
_MAX_NS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


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
        return [_new(Reading, (fam, sid, t, v, s))
                for t, v, s in zip(self.ts, self.values, self.sources, strict=True)]


class SourceRef(tuple):
    """Where a reading came from, without the Kafka client's message object.

    ``(key, value, topic, partition, offset)`` with the methods of the message that late-reading
    routing reads. A reading sent to a shard in another Bytewax process is pickled; a librdkafka
    ``Message`` pickles about 3x slower than this plain tuple, and that made two processes slower
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
        scale = 1_000_000_000
    elif mag < 1e14:
        scale = 1_000_000
    elif mag < 1e17:
        scale = 1_000
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
            return second + int(frac) * 1_000
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
    if not _MIN_NS <= second < _MAX_NS - 1_000_000_000:
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
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Integer maths keeps microseconds exact (float seconds would round them).
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def timestamp_to_ns(raw: Any) -> int:
    """Apply the event-time rule to a payload's timestamp field."""
    if isinstance(raw, bool):
        raise BadMessage("bad_timestamp", "timestamp is a boolean")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise BadMessage("bad_timestamp", "timestamp is not finite")
        ts = epoch_to_ns(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        ts = epoch_to_ns(int(text)) if text.isascii() and text.isdigit() else iso_to_ns(text)
    else:
        raise BadMessage("bad_timestamp", f"timestamp is a {type(raw).__name__}")
    if not _MIN_NS <= ts < _MAX_NS:
        raise BadMessage("timestamp_out_of_range", f"{raw!r} is outside 1970..2100")
    return ts


_KEYS: dict[bytes, str] = {}  # key bytes already checked -> sensor id
_KEYS_MAX = 1 << 18  # more than a fleet's sensors; cleared (not grown) past it
_NS_FLOOR = 10**17  # an integer epoch at or above this is already in ns (see epoch_to_ns)
_MISSING = object()
_new = tuple.__new__  # a NamedTuple without its Python-level __new__: one Reading per message


# The tutorials' exact shapes, decoded and type-checked in C by msgspec: a value that is a JSON
# number (not a bool) and the timestamp shape each tutorial sends. Anything else (a missing or
# differently typed timestamp, a string value, bad JSON) takes the general rules below, which
# also name the reason of a rejection. Both paths give the same reading for a message they both
# accept; a message is never parsed differently because of the poll it came in.
@cache
def _decoder(family: str, valid: ValueRange) -> Any:
    """The C decoder of ``family``'s exact shape, its value held to ``valid`` as it decodes."""
    lo, hi = valid
    number = Annotated[float, msgspec.Meta(ge=lo, le=hi)]
    if family == AIR_QUALITY:
        fields: list[tuple[str, Any]] = [("value", number), ("timestamp", str)]
    else:  # integer ns, as epoch_to_ns reads them
        fields = [("Temperature_C", number),
                  ("Timestamp", Annotated[int, msgspec.Meta(ge=_NS_FLOOR, lt=_MAX_NS)])]
    # gc=False: no cycles, a quarter faster to make.
    shape = msgspec.defstruct(f"_{family}", fields, gc=False)
    return msgspec.json.Decoder(shape).decode


_PAIR = {family: attrgetter(*FIELDS[family]) for family in FAMILIES}  # -> (value, timestamp)
_FAST_ERRORS = (msgspec.DecodeError, ValueError)  # ValueError: invalid UTF-8


def sensor_id_of(key: bytes | None) -> str:
    """The sensor id a message key names; raise ``BadMessage`` when it names none."""
    sensor_id = _KEYS.get(key)  # type: ignore[arg-type]
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


def parse(
    family: str,
    key: bytes | None,
    value: bytes | None,
    kafka_ts_ms: int | None = None,
    source: Any = None,
    valid: ValueRange | None = None,
) -> Reading:
    """Decode one message of ``family``; raise ``BadMessage`` when it cannot be used.

    Polls are decoded whole by ``parse_poll``; this is for the messages of a poll that it
    leaves, so every one of them passes here. The tutorials' shapes still go first through the
    decoder ``parse_poll`` uses, so that a message reads the same whichever path it takes.
    ``valid`` is the family's valid range (``VALID_RANGES`` when None).
    """
    sensor_id = _KEYS.get(key)  # type: ignore[arg-type]
    if sensor_id is None:
        sensor_id = sensor_id_of(key)
    if value is None:
        raise BadMessage("invalid_json", "message has no value")
    if len(value) > MAX_VALUE_BYTES:
        raise BadMessage("oversized", f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
    if valid is None:
        valid = VALID_RANGES[family]
    try:
        num, raw_ts = _PAIR[family](_decoder(family, valid)(value))
    except _FAST_ERRORS:
        pass
    else:
        # temperature: integer ns, range checked by the decoder; air quality: a string
        ts = raw_ts if type(raw_ts) is int else timestamp_to_ns(raw_ts)
        return _new(Reading, (family, sensor_id, ts, num, source))
    return _parse_general(family, sensor_id, value, kafka_ts_ms, source, valid)


def _parse_general(family: str, sensor_id: str, value: bytes, kafka_ts_ms: int | None,
                   source: Any, valid: ValueRange) -> Reading:
    """Every shape the event-time rule allows, and the reason when a message has none."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("invalid_json", str(exc)) from None
    if type(obj) is not dict:
        raise BadMessage("not_an_object", f"value is a JSON {type(obj).__name__}")
    value_field, ts_field = FIELDS[family]
    num = obj.get(value_field, _MISSING)
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
    lo, hi = valid
    if not lo <= num <= hi:
        raise BadMessage("out_of_range", f"{value_field!r} is {num!r}, outside the valid range "
                                         f"{lo:g}..{hi:g} of {family}")
    raw_ts = obj.get(ts_field)
    if raw_ts is not None:
        ts = timestamp_to_ns(raw_ts)
    elif ts_field in obj:
        raise BadMessage("bad_timestamp", f"{ts_field!r} is null")
    elif kafka_ts_ms is not None and kafka_ts_ms > 0:
        ts = kafka_ts_ms * 1_000_000
    else:
        raise NoTimestamp("missing_field", f"no {ts_field!r} field and no Kafka timestamp")
    return _new(Reading, (family, sensor_id, ts, num, source))


# The tutorial's naive timestamp, "YYYY-mm-dd HH:MM:SS.ffffff": where its digits and marks go.
_NAIVE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25])
_NAIVE_MARKS = np.array([4, 7, 13, 16, 19])
_NAIVE_MARK_CODES = np.frombuffer(b"--::.", np.uint8)
_MAX_US = _MAX_NS // 1_000


def parse_poll(family: str, values: list[bytes], valid: ValueRange | None = None
               ) -> tuple[list[int], list[float]] | None:
    """Decode a whole poll of ``family`` values: (timestamps in ns, values), in order.

    None when any message is not in its tutorial's exact shape: the caller then parses the poll
    message by message (``parse``), which finds the one that needs the general rules and why;
    so is a value outside ``valid`` (``VALID_RANGES`` when None), which the decoder checks.
    Every loop here is in C (msgspec decodes and type-checks, ``map`` drives it, numpy reads the
    timestamps), where the per-message rules cost a dozen Python steps: parsing was 37 % of a
    dense fleet's time.
    """
    if not values:
        return [], []
    try:
        if max(map(len, values)) > MAX_VALUE_BYTES:
            return None
        objs = list(map(_decoder(family, VALID_RANGES[family] if valid is None else valid),
                        values))
    except (*_FAST_ERRORS, TypeError):  # TypeError: a message without a value
        return None
    value_field, ts_field = FIELDS[family]
    nums = list(map(attrgetter(value_field), objs))
    raw = list(map(attrgetter(ts_field), objs))
    if family == TEMPERATURE:
        return raw, nums  # integer ns, range checked by the decoder
    ts = _naive_column(raw)
    return None if ts is None else (ts, nums)


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
    if not (((codes[:, _NAIVE_DIGITS] - 48) < 10).all()  # unsigned: below "0" wraps round
            and (codes[:, _NAIVE_MARKS] == _NAIVE_MARK_CODES).all()):
        return None
    try:
        micros = np.array(texts, dtype="datetime64[us]").view(np.int64)
    except ValueError:  # a month 13, a February 30th, an hour 24, ...
        return None
    if micros.min() < 0 or micros.max() >= _MAX_US:
        return None
    return (micros * 1_000).tolist()
