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
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

AIR_QUALITY = "air_quality"
TEMPERATURE = "temperature"
FAMILIES = (AIR_QUALITY, TEMPERATURE)

# family -> (value field, timestamp field), as the tutorials name them.
FIELDS: dict[str, tuple[str, str]] = {
    AIR_QUALITY: ("value", "timestamp"),
    TEMPERATURE: ("Temperature_C", "Timestamp"),
}

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


class BadMessage(ValueError):
    """Why a message cannot be used. ``reason`` is a stable code for counting and routing."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


_MINUTES: dict[str, int] = {}  # "2022-07-15 11:34" -> ns at the start of that minute (UTC)
_MINUTES_MAX = 4096


def iso_to_ns(text: str) -> int:
    """ISO 8601 -> ns since the epoch; naive times are UTC.

    The tutorial's naive ``YYYY-mm-dd HH:MM:SS.ffffff`` takes a fast path: the minute is looked
    up in a small cache and the seconds are sliced, because ``datetime.fromisoformat`` on every
    air-quality message was a sixth of the flow's time. Anything else takes the full parser.
    """
    if len(text) == 26 and text[10] in " T" and text[16] == ":" and text[19] == ".":
        sec, frac = text[17:19], text[20:]
        if sec.isdigit() and frac.isdigit() and sec < "60":
            minute = _MINUTES.get(text[:16])
            if minute is None:
                minute = _iso_to_ns(text[:16])
                if len(_MINUTES) >= _MINUTES_MAX:
                    _MINUTES.clear()
                _MINUTES[text[:16]] = minute
            return minute + int(sec) * 1_000_000_000 + int(frac) * 1_000
    return _iso_to_ns(text)


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
        ts = epoch_to_ns(int(text)) if text.isdigit() else iso_to_ns(text)
    else:
        raise BadMessage("bad_timestamp", f"timestamp is a {type(raw).__name__}")
    if not _MIN_NS <= ts < _MAX_NS:
        raise BadMessage("timestamp_out_of_range", f"{raw!r} is outside 1970..2100")
    return ts


def parse(
    family: str,
    key: bytes | None,
    value: bytes | None,
    kafka_ts_ms: int | None = None,
    source: Any = None,
) -> Reading:
    """Decode one message of ``family``; raise ``BadMessage`` when it cannot be used."""
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
    if value is None:
        raise BadMessage("invalid_json", "message has no value")
    if len(value) > MAX_VALUE_BYTES:
        raise BadMessage("oversized", f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("invalid_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise BadMessage("not_an_object", f"value is a JSON {type(obj).__name__}")
    value_field, ts_field = FIELDS[family]
    try:
        num = obj[value_field]
    except KeyError:
        raise BadMessage("missing_field", f"no {value_field!r} field") from None
    if isinstance(num, bool) or not isinstance(num, int | float):
        raise BadMessage("bad_value_type", f"{value_field!r} is a {type(num).__name__}")
    if not math.isfinite(num):
        raise BadMessage("non_finite_value", f"{value_field!r} is {num}")
    raw_ts = obj.get(ts_field)
    if raw_ts is not None:
        ts = timestamp_to_ns(raw_ts)
    elif ts_field in obj:
        raise BadMessage("bad_timestamp", f"{ts_field!r} is null")
    elif kafka_ts_ms is not None and kafka_ts_ms > 0:
        ts = kafka_ts_ms * 1_000_000
    else:
        raise BadMessage("missing_field", f"no {ts_field!r} field and no Kafka timestamp")
    return Reading(family, sensor_id, ts, float(num), source)
