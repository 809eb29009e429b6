"""A family's message shape, built from its config: (families, sensor id, time, values) -> bytes.

Pure: no Kafka, no clock. The dataflow reads a family's messages by the paths its config declares
(``dataflow.readings.parse``); this module writes them by the same paths, so whatever the producer
sends (simulated or replayed) reads back as exactly the sensor id, event time and value it meant.

- **sensor id**: always the Kafka key (UTF-8); when the family's ``sensor_id`` is a dotted path it
  is also written there, as a string.
- **value**: a JSON number at the family's ``value`` path.
- **event time** at the ``timestamp`` path, in the family's ``timestamp_format``:
  ``iso`` an ISO 8601 string with microseconds and ``+00:00``; ``s``/``ms``/``us``/``ns`` an
  integer of that unit since the epoch (the time is floored to the unit); ``auto`` the tutorials'
  shapes: a naive ``YYYY-mm-dd HH:MM:SS.ffffff`` string for the family named ``air_quality``,
  an integer of nanoseconds for every other family. A family without a timestamp path gets no
  field: the Kafka message timestamp (milliseconds) is then set to the event time.
- The two tutorial families, in their built-in shape, come out byte for byte as the tutorials
  wrote them (``encode``, for a simulated reading: its value is already rounded as they round
  it; a replayed value is sent as it is, not rounded).

Families that read one topic are written into one message holding every family's fields
(``{"id": "m1", "temp": 71.2, "vibration": 0.4, "ts": ...}``), so each family reads its own
value from every message of the topic. That is possible when no two of them need different
content at one path (or a path inside another's): ``plan`` refuses such a set with
``ShapeConflict`` naming both families and the path. (Written as separate messages instead, each
family would dead-letter the other's messages as ``missing_field``.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dataflow.families import AIR_QUALITY, KEY, Family, builtin
from dataflow.readings import Reading
from dataflow.timestamps import NAIVE_FORMAT, NS_PER_MS, UNIT_NS, datetime_to_ns, ns_to_datetime

_TUTORIAL = {f.name: f for f in builtin()}


class ShapeConflict(ValueError):
    """Families that cannot share one message: two of them need different content at a path."""


class Message(NamedTuple):
    """One Kafka message: key, value, and the Kafka message timestamp to set (milliseconds), or
    None to let the client stamp it (a family with a timestamp field never reads it)."""

    key: bytes
    value: bytes
    timestamp_ms: int | None


def time_read_as(family: Family, event_time_ns: int) -> int:
    """The event time ``family`` reads back from a message built for ``event_time_ns``: floored
    to what its format holds (whole seconds for ``s``, microseconds for ``iso`` and the naive
    tutorial string, milliseconds in a Kafka timestamp)."""
    if family.timestamp is None:
        return event_time_ns // NS_PER_MS * NS_PER_MS
    return encoded_time(family, event_time_ns)[1]


@dataclass(frozen=True)
class Group:
    """Families written into one message on ``topic`` (one family, or several sharing it)."""

    topic: str
    families: tuple[Family, ...]

    @property
    def name(self) -> str:
        """How logs and sensor ids name the group: its first family's name."""
        return self.families[0].name

    @property
    def names(self) -> str:
        return "+".join(f.name for f in self.families)


def is_tutorial(family: Family) -> bool:
    """A built-in family in the tutorial's exact shape (topic, ranges and rules may differ)."""
    tut = _TUTORIAL.get(family.name)
    return tut is not None and (
        family.value,
        family.timestamp,
        family.sensor_id,
        family.timestamp_format,
    ) == (tut.value, tut.timestamp, tut.sensor_id, tut.timestamp_format)


def encoded_time(family: Family, event_time_ns: int) -> tuple[Any, int]:
    """The timestamp field's JSON value for ``family``, and the time it reads back as (ns)."""
    fmt = family.timestamp_format
    if fmt == "auto":
        fmt = "naive" if family.name == AIR_QUALITY else "ns"
    if fmt in UNIT_NS:
        scale = UNIT_NS[fmt]
        count = event_time_ns // scale
        return count, count * scale
    moment = ns_to_datetime(event_time_ns)
    if fmt == "naive":  # sub-µs digits are truncated
        text = moment.strftime(NAIVE_FORMAT)
    else:
        text = moment.isoformat(timespec="microseconds")  # "...+00:00"
    return text, datetime_to_ns(moment)


Value = float | tuple[float, ...]  # a machine family's: one per channel (nan: not sent)


def _fields(
    family: Family, sensor_id: str, event_time_ns: int, value: Value
) -> list[tuple[str, Any]]:
    """(dotted path, JSON value) of one family's fields: id, value, time; the tutorial air
    quality's time comes before its value, as the tutorial wrote it (same bytes as before).
    A machine family's: the machine id, each channel's value, time."""
    out: list[tuple[str, Any]] = []
    if isinstance(value, tuple):
        if family.machine is not None and family.machine != KEY:
            out.append((family.machine, sensor_id))
        out.extend((path, v) for (_, path), v in zip(family.channels, value, strict=True) if v == v)
    else:
        if family.sensor_id != KEY:
            out.append((family.sensor_id, sensor_id))
        out.append((family.value, value))
    if family.timestamp is not None:
        stamp = (family.timestamp, encoded_time(family, event_time_ns)[0])
        if family.name == AIR_QUALITY and is_tutorial(family):
            out.insert(len(out) - 1, stamp)
        else:
            out.append(stamp)
    return out


def _conflict(paths: dict[str, tuple[str, Any]], path: str, owner: str, content: Any) -> str | None:
    """Why ``path`` cannot take ``content``, given the paths already written; None if it can."""
    parts = path.split(".")
    for other, (other_owner, other_content) in paths.items():
        other_parts = other.split(".")
        n = min(len(parts), len(other_parts))
        if parts[:n] != other_parts[:n]:
            continue
        if other == path and other_content == content:
            continue
        what = "needs different content at" if other == path else "has a path inside"
        return (
            f"families {other_owner} and {owner} cannot share one message: {owner} "
            f"{what} {other_owner}'s {other!r} ({path!r})"
        )
    return None


def build_message(
    families: Sequence[Family], sensor_id: str, event_time_ns: int, values: Sequence[Value]
) -> Message:
    """The message carrying one reading of each family (``values`` in the same order; a machine
    family's is a tuple, a value per channel, nan for a channel not sent).

    Raises ``ShapeConflict`` when two families need different content at one path (or a path
    inside another's), ``ValueError`` for a blank sensor id or a value that is not finite.
    """
    if len(families) != len(values) or not families:
        raise ValueError("one value per family, at least one family")
    if not sensor_id.strip():
        raise ValueError("blank sensor id")
    for family, v in zip(families, values, strict=True):
        if family.channels:
            if not isinstance(v, tuple) or len(v) != len(family.channels):
                raise ValueError(f"family {family.name}: one value per channel, got {v!r}")
            if not any(x == x for x in v) or any(x - x != 0 and x == x for x in v):
                raise ValueError(f"values {v!r}: finite numbers, nan for a channel not sent")
        elif isinstance(v, bool) or not isinstance(v, int | float) or v - v != 0:
            raise ValueError(f"value {v!r} is not a finite number")
    key = sensor_id.encode("utf-8")
    written: dict[str, tuple[str, Any]] = {}
    doc: dict[str, Any] = {}
    for family, value in zip(families, values, strict=True):
        one: Value = tuple(map(float, value)) if isinstance(value, tuple) else float(value)
        for path, content in _fields(family, sensor_id, event_time_ns, one):
            why = _conflict(written, path, family.name, content)
            if why is not None:
                raise ShapeConflict(why)
            if path in written:
                continue
            written[path] = (family.name, content)
            node = doc
            *parents, leaf = path.split(".")
            for segment in parents:
                node = node.setdefault(segment, {})
            node[leaf] = content
    untimed = any(f.timestamp is None for f in families)
    timestamp_ms = event_time_ns // NS_PER_MS if untimed else None
    return Message(key, json.dumps(doc).encode("utf-8"), timestamp_ms)


def plan(families: Sequence[Family]) -> tuple[Group, ...]:
    """Group families by topic (first appearance order), one message per sensor and tick each.

    Raises ``ShapeConflict`` when families of one topic cannot share a message (see the module
    docstring): checked here, once, with a sample reading, before anything is sent.
    """
    by_topic: dict[str, list[Family]] = {}
    for family in families:
        by_topic.setdefault(family.topic, []).append(family)
    groups = tuple(Group(topic, tuple(fams)) for topic, fams in by_topic.items())
    for group in groups:  # a family alone too: one it cannot build failed mid-run
        build_message(group.families, "probe", 1_700_000_000 * 10**9, probe_values(group))
    return groups


def probe_values(group: Group) -> list[Value]:
    """A distinct value per value path (families reading one path are given one value)."""
    index: dict[str, float] = {}
    return [
        tuple(index.setdefault(p, float(len(index))) for _, p in f.channels)
        if f.channels
        else index.setdefault(f.value, float(len(index)))
        for f in group.families
    ]


def encode(reading: Reading) -> tuple[bytes, bytes]:
    """Key and value bytes of a simulated tutorial reading: the built-in family's message, as
    ``build_message`` makes every family's (the topic is the caller's)."""
    msg = build_message(
        (_TUTORIAL[reading.family],), reading.sensor_id, reading.ts, (reading.value,)
    )
    return msg.key, msg.value
