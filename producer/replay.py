"""Read a user's history (CSV) for ``python -m producer --replay``: rows -> (sensor, time, value).

Pure apart from reading the file. The header names the columns: ``timestamp`` and ``value``, and
optionally ``sensor_id`` (without it every row is ``default_sensor_id``); other columns are
ignored, and ``Layout`` can name different ones (the UCI air-quality file has ``Date`` and
``Time`` and a column per pollutant). A timestamp is read by the dataflow's own ``auto`` rule
(``dataflow.readings.timestamp_to_ns``: ISO 8601, naive = UTC, or an epoch number whose unit its
size tells), or by an explicit ``strptime`` format.

A bad row is an error naming the file and its line, raised while reading: the producer reads the
whole file once before it sends anything (``scan``), so a file is replayed entirely or not at
all. Rows whose value is one of ``skip_values`` (UCI's ``-200``, "missing") are skipped and
counted, never sent.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from dataflow.readings import MAX_KEY_BYTES, BadMessage, timestamp_to_ns
from dataflow.timestamps import RANGE_TEXT, datetime_to_ns, in_range


class ReplayError(ValueError):
    """A file that cannot be replayed: ``FILE: line N: what``."""


@dataclass(frozen=True)
class Layout:
    """Which columns hold what. Several ``timestamp`` columns are joined with a space
    (``Date,Time`` -> ``"10/03/2004 18:00:00"``); ``time_format`` is a ``strptime`` format for
    them (naive = UTC), None for the dataflow's ``auto`` rule."""

    timestamp: tuple[str, ...] = ("timestamp",)
    value: str = "value"
    sensor_id: str = "sensor_id"
    default_sensor_id: str = "replay"
    time_format: str | None = None
    skip_values: tuple[float, ...] = ()
    valid_range: tuple[float, float] | None = None  # the family's: a value outside is an error
    # A machine family's channels: a column each, named as the channel, instead of ``value``;
    # an empty or skipped cell is a channel not sent in that row.
    channels: tuple[str, ...] = ()


class Row(NamedTuple):
    """One row of the file as a reading: its line number, sensor id, event time (``ts``, ns since
    the epoch, as the dataflow's ``Reading``) and value."""

    line: int
    sensor_id: str
    ts: int
    value: float
    values: tuple[float, ...] = ()  # a machine family's row: a value per channel (nan: none)


@dataclass
class Summary:
    """What ``scan`` found: rows to send, rows skipped, time span, rows older than the one
    before them (of the same sensor: the dataflow may count those as late)."""

    rows: int = 0
    skipped: int = 0
    start_ns: int | None = None  # the first row's time: replay pacing counts from it
    out_of_order: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    sensors: set[str] = field(default_factory=set)


def _epoch_or_text(text: str) -> Any:
    """A CSV cell as the JSON value it stands for: an int or float literal, else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_time(text: str, time_format: str | None) -> int:
    """A timestamp cell -> ns since the epoch; ``ValueError`` saying why not."""
    if time_format is None:
        try:
            return timestamp_to_ns(_epoch_or_text(text.strip()))
        except BadMessage as exc:
            raise ValueError(exc.detail) from None
    try:
        moment = datetime.strptime(text.strip(), time_format)
    except ValueError:
        raise ValueError(f"{text!r} does not match --time-format {time_format!r}") from None
    ns = datetime_to_ns(moment)
    if not in_range(ns):  # the dataflow's range
        raise ValueError(f"{text!r} is outside {RANGE_TEXT}")
    return ns


def _undecodable_line(path: str | Path) -> int:
    """The line of a file's first byte that is not UTF-8: the text is decoded a chunk ahead of
    the CSV reader, whose line count named a line hundreds before it."""
    with open(path, "rb") as raw:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        lines = 1
        for block in iter(lambda: raw.read(1 << 16), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return lines + block.count(b"\n", 0, max(exc.start, 0))
            lines += block.count(b"\n")
        return lines


def read_rows(path: str | Path, layout: Layout, summary: Summary | None = None) -> Iterator[Row]:
    """Yield the rows to send, in file order; raise ``ReplayError`` at the first bad one."""
    name = str(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ReplayError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ReplayError(f"{name}: empty file (expected a header: timestamp,value)") from None
        except UnicodeDecodeError as exc:
            raise ReplayError(f"{name}: line {_undecodable_line(path)}: {exc}") from None
        except csv.Error as exc:
            raise ReplayError(f"{name}: line 1: {exc}") from None
        columns = [c.strip() for c in header]
        wanted = [*layout.timestamp, *(layout.channels or (layout.value,))]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ReplayError(
                f"{name}: line 1: no column {missing[0]!r} in the header {','.join(columns)!r}"
            )
        ts_at = [columns.index(c) for c in layout.timestamp]
        value_at = [columns.index(c) for c in layout.channels or (layout.value,)]
        id_at = columns.index(layout.sensor_id) if layout.sensor_id in columns else None
        last: dict[str, int] = {}
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise ReplayError(f"{name}: line {_undecodable_line(path)}: {exc}") from None
            except csv.Error as exc:
                raise ReplayError(f"{name}: line {reader.line_num}: {exc}") from None
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # blank line
            if len(cells) != len(columns):
                raise ReplayError(
                    f"{name}: line {line}: {len(cells)} fields, the header has {len(columns)}"
                )
            try:
                row = _row(cells, line, ts_at, value_at, id_at, layout)
            except ValueError as exc:
                raise ReplayError(f"{name}: line {line}: {exc}") from None
            if row is None:
                if summary is not None:
                    summary.skipped += 1
                continue
            if summary is not None:
                _count(summary, row, last)
            yield row


def _value(text: str, layout: Layout) -> float | None:
    """A value cell: None when it is a ``--skip-value`` marker; ``ValueError`` if bad."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"value {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {text!r} is not finite")
    if value in layout.skip_values:
        return None
    if layout.valid_range is not None:
        lo, hi = layout.valid_range
        if not lo <= value <= hi:
            raise ValueError(
                f"value {text} is outside the family's valid range {lo:g}..{hi:g} "
                "(the dataflow would dead-letter it; --skip-value skips a marker)"
            )
    return value


def _row(
    cells: list[str],
    line: int,
    ts_at: list[int],
    value_at: list[int],
    id_at: int | None,
    layout: Layout,
) -> Row | None:
    values: tuple[float, ...] = ()
    if layout.channels:
        got = [None if not cells[i].strip() else _value(cells[i].strip(), layout) for i in value_at]
        if all(v is None for v in got):
            return None
        values = tuple(math.nan if v is None else v for v in got)
        value = next(v for v in values if v == v)
    else:
        one = _value(cells[value_at[0]].strip(), layout)
        if one is None:
            return None
        value = one
    stamp = " ".join(cells[i].strip() for i in ts_at)
    try:
        ts = parse_time(stamp, layout.time_format)
    except ValueError as exc:
        raise ValueError(f"timestamp: {exc}") from None
    sensor_id = layout.default_sensor_id
    if id_at is not None:
        sensor_id = cells[id_at].strip()
        if not sensor_id:
            raise ValueError("empty sensor_id")
    if len(sensor_id.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"sensor_id is over {MAX_KEY_BYTES} bytes")
    return Row(line, sensor_id, ts, value, values)


def _count(summary: Summary, row: Row, last: dict[str, int]) -> None:
    summary.rows += 1
    summary.sensors.add(row.sensor_id)
    if summary.start_ns is None:
        summary.start_ns = row.ts
    if summary.first_ns is None or row.ts < summary.first_ns:
        summary.first_ns = row.ts
    if summary.last_ns is None or row.ts > summary.last_ns:
        summary.last_ns = row.ts
    before = last.get(row.sensor_id)
    if before is not None and row.ts < before:
        summary.out_of_order += 1
    last[row.sensor_id] = row.ts


def scan(path: str | Path, layout: Layout) -> Summary:
    """Read the whole file once, checking every row: raises ``ReplayError`` at the first bad
    one, before anything is sent."""
    summary = Summary()
    for _ in read_rows(path, layout, summary):
        pass
    return summary
