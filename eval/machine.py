"""``python -m eval machine CSV ... --out OUT.csv``: one machine's history through the flow's code.

Every column of ``CSV`` but the time column (and ``--ignore``'d ones) is one channel of a single
machine, rows in time order. Each row becomes the message a machine family (``machine`` and
``channels``, docs/machines.md) reads, decoded by the flow's own parser, and folded by a
dataflow shard (``ShardState``), each row at its own time on a virtual wall clock, caught up, as
``eval.detectors`` does for one sensor: the same windows, per-channel models, joint model and
machine alert as the running flow, told no labels. The window is the median sampling interval
(one row per window) unless ``--window-seconds`` says otherwise.

``OUT.csv`` has one line per input row: ``timestamp`` (as in the input), ``alert`` (1 on the last
row of a window whose close opened a machine alert), ``anomaly`` (1 on every row of an
anomalous machine window) and ``drivers`` (that window's drivers, ranked, joined by ``|``).
A value that is empty or not a number is a channel that sent nothing in that row.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from dataflow.config import Settings
from dataflow.families import MAX_MAGNITUDE, Family
from dataflow.flow import shard_config
from dataflow.progress import Beat
from dataflow.readings import BadMessage, Reading, formats_of, parse, timestamp_to_ns
from dataflow.shard import Result, ShardState, WindowResult
from eval.detectors import sampling_seconds

FAMILY = "machine"
MACHINE = "csv"  # the machine's id
PART = "machine/0"
EXIT_OK, EXIT_USAGE = 0, 2


@dataclass(frozen=True)
class Table:
    """A CSV read as channels: the time column's text and ns, and each channel's values."""

    times: list[str]
    stamps: list[int]
    channels: list[str]
    values: list[list[float]]  # per row, per channel; nan: nothing sent


def channel_name(column: str) -> str:
    """A column's name as a channel's: no '/' (sensor ids join with it), no blank ends."""
    return column.replace("/", "_").strip() or "_"


def read_table(
    path: Path, sep: str = ",", time_column: str | None = None, ignore: Sequence[str] = ()
) -> Table:
    """The CSV's rows; the time column is ``time_column``, or the first."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh, delimiter=sep))
    if not rows:
        raise ValueError(f"{path}: empty")
    header = [h.strip() for h in rows[0]]
    tcol = header[0] if time_column is None else time_column
    if tcol not in header:
        raise ValueError(f"{path}: no column {tcol!r} (columns: {', '.join(header)})")
    missing = [c for c in ignore if c not in header]
    if missing:
        raise ValueError(f"{path}: --ignore names no column {', '.join(map(repr, missing))}")
    t = header.index(tcol)
    cols = [i for i, h in enumerate(header) if i != t and h not in ignore]
    if not cols:
        raise ValueError(f"{path}: no channel column besides {tcol!r}")
    names = [channel_name(header[i]) for i in cols]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two columns make the same channel name")
    times, stamps, values = [], [], []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        text = row[t].strip()
        try:
            stamps.append(timestamp_to_ns(int(text) if text.isdigit() else text))
        except BadMessage as exc:
            raise ValueError(f"{path}: line {n}: time {text!r}: {exc.detail}") from None
        times.append(row[t])
        values.append([_number(row[i]) if i < len(row) else math.nan for i in cols])
    return Table(times, stamps, names, values)


def _number(cell: str) -> float:
    try:
        x = float(cell)
    except ValueError:
        return math.nan
    return x if math.isfinite(x) else math.nan


def family_of(channels: Sequence[str], window_seconds: float) -> Family:
    """The machine family the rows are messages of: ``{"machine", "ts", "c0", "c1", ...}``."""
    return Family(
        name=FAMILY,
        topic=FAMILY,
        value="c0",
        valid_range=(-MAX_MAGNITUDE, MAX_MAGNITUDE),
        window_seconds=window_seconds,
        sensor_id="machine",
        timestamp="ts",
        timestamp_format="ns",
        machine="machine",
        channels=tuple((name, f"c{i}") for i, name in enumerate(channels)),
    )


def replay(
    table: Table, window_seconds: float, env: Mapping[str, str] | None = None
) -> list[WindowResult]:
    """Every machine window of the rows, as the flow's shard scores them (in order)."""
    fam = family_of(table.channels, window_seconds)
    base = {
        "ALLOWED_LATENESS_SECONDS": "0",
        "EMIT_ALL_WINDOWS": "true",
        "SHARDS": "1",
        **(env or {}),
    }
    settings = replace(Settings.from_env(base), families=(fam,))
    state = ShardState(shard_config(settings))
    fmts = formats_of(fam)
    out: list[Result] = []
    first = table.stamps[0] / 1e9 if table.stamps else 0.0
    for ts, row in zip(table.stamps, table.values, strict=True):
        msg = {"machine": MACHINE, "ts": ts}
        msg.update({f"c{i}": v for i, v in enumerate(row) if v == v})
        value = orjson.dumps(msg)
        readings: list[Reading | Beat] = []
        for fmt in fmts:
            try:
                readings.append(parse(fmt, MACHINE.encode(), value))
            except BadMessage:
                continue  # the channel sent nothing in this row
        now = ts / 1e9
        just_before = now - 0.001
        out.extend(state.ingest([Beat(PART, just_before, first)], just_before))
        out.extend(state.expire(just_before))
        out.extend(state.ingest([Beat(PART, now, first), *readings], now))
        out.extend(state.expire(now))
    out.extend(state.flush())
    return [r for r in out if isinstance(r, WindowResult) and r.drivers is not None]


def rows_out(table: Table, windows: Sequence[WindowResult]) -> list[tuple[str, int, int, str]]:
    """One line per row: timestamp, alert, anomaly, drivers."""
    alert = [0] * len(table.times)
    anomaly = [0] * len(table.times)
    drivers = [""] * len(table.times)
    stamps = table.stamps
    for w in windows:
        lo = bisect.bisect_left(stamps, w.stats.start)
        hi = bisect.bisect_left(stamps, w.stats.end)
        if hi <= lo:
            continue
        if w.alert is not None and w.alert.event == "open":
            alert[hi - 1] = 1
        if w.anomaly:
            names = "|".join(d[0] for d in w.drivers or ())
            for i in range(lo, hi):
                anomaly[i] = 1
                drivers[i] = names
    return list(zip(table.times, alert, anomaly, drivers, strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eval machine",
        description="One machine's history (a CSV, a column per channel) through the flow's "
        "machine model; one output line per row.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("csv", type=Path, metavar="CSV")
    p.add_argument("--sep", default=",", help="field separator (default: %(default)r)")
    p.add_argument("--time-column", default=None, metavar="NAME", help="default: the first")
    p.add_argument(
        "--ignore",
        default="",
        metavar="COL,...",
        help="columns that are not channels (labels, ids)",
    )
    p.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        metavar="S",
        help="window length (default: the median sampling interval, one row per window)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="OUT.csv")
    args = p.parse_args(argv)
    if not args.csv.is_file():
        print(f"{args.csv}: no such file", file=sys.stderr)
        return EXIT_USAGE
    sep = "\t" if args.sep in ("\\t", "tab") else args.sep
    ignore = [c.strip() for c in args.ignore.split(",") if c.strip()]
    try:
        table = read_table(args.csv, sep, args.time_column, ignore)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if any(b < a for a, b in zip(table.stamps, table.stamps[1:], strict=False)):
        print(f"{args.csv}: rows are not in time order", file=sys.stderr)
        return EXIT_USAGE
    window = args.window_seconds or sampling_seconds(table.stamps)
    if window <= 0:
        print("--window-seconds must be > 0", file=sys.stderr)
        return EXIT_USAGE
    windows = replay(table, window)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "alert", "anomaly", "drivers"])
        w.writerows(rows_out(table, windows))
    alerts = sum(1 for x in windows if x.alert is not None and x.alert.event == "open")
    print(
        f"{len(table.times)} rows, {len(table.channels)} channels, {window:g} s windows: "
        f"{len(windows)} machine windows, {sum(x.anomaly for x in windows)} anomalous, "
        f"{alerts} alert(s) opened; wrote {args.out}"
    )
    return EXIT_OK
