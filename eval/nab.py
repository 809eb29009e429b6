"""The Numenta Anomaly Benchmark (NAB) scoring rules, for binary detections. Pure.

Written from NAB's published description (whitepaper, README, ``PROVENANCE.txt`` beside the data)
so an evaluation needs no pandas and no NAB checkout. The rules, per data file:

- **Probation.** The first ``min(floor(0.15 * rows), 0.15 * 5000)`` rows (so at most 750) are
  not scored: detectors may learn there. Detections in them count for nothing; a window with no
  row after probation is neither found nor missed.
- **Windows.** Each labelled window ``[start, end]`` (both inclusive) holds the rows whose
  timestamps fall in it. Only the *earliest* scored detection in a window counts; it earns
  ``tp_weight * S(p) / S(-1)``, where ``p = -(last - i + 1) / width`` is the detection's position
  (``-1`` at the window's first row, close to 0 at its last) and ``S(x) = 2 / (1 + e^{5x}) - 1``
  is NAB's scaled sigmoid. A detection on a window's first row earns exactly ``tp_weight``.
  Later detections in the same window neither earn nor cost anything.
- **Missed windows** cost ``fn_weight`` each.
- **False positives**, detections outside every window, cost ``fp_weight * S(d)`` (``S`` is
  negative here), ``d = (i - last) / (width - 1)`` measured from the closest *preceding* window:
  a detection just after a window costs little (the anomaly may still be unfolding), one that is
  three window-widths or more after it, or that has no preceding window, costs the full
  ``fp_weight``.
- **Normalisation.** ``100 * (raw - null) / (perfect - null)``: ``null`` is the raw score of a
  detector that never fires (``-fn_weight`` per window with a row after probation) and
  ``perfect`` is ``tp_weight`` times the number of labelled windows, *all* of them, as NAB's
  ``runner.normalize`` counts them (``tpCount``): a window wholly inside probation, which can be
  neither found nor missed, still counts towards ``perfect``, and one partly inside it is worth
  a full ``tp_weight`` although no scored row can earn that much. NAB itself normalises the sum
  over the corpus (``corpus_score``); ``FileScore.normalized`` does it per file.
- **Thresholds.** NAB scores anomaly scores in ``[0, 1]``, a row being a detection when its score
  is at or above the detector's threshold, and its optimiser (``nab/sweeper.py``) picks, per
  profile, the threshold that maximises the raw score summed over the corpus
  (``optimise_threshold``). Our own detector's detections are binary, so they need none; NAB's
  random detector does.

Beside the NAB score, and defined here because NAB does not define them:

- ``recall``: found windows / scored windows;
- ``precision``: scored detections inside a window / all scored detections (so a detector that
  fires on every row of a window is not rewarded for it, and one alert per episode is fair);
- ``false_alarms_per_day``: scored detections outside every window, per day of scored data
  (from the first row after probation to the last row).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dataflow.readings import iso_to_ns

PROBATION_PERCENT = 0.15
NS_PER_DAY = 86_400 * 1_000_000_000

Window = tuple[int, int]  # (start, end), ns since the epoch, both inclusive


@dataclass(frozen=True)
class Profile:
    """A NAB application profile: how much a hit, a miss and a false alarm weigh."""

    tp_weight: float = 1.0
    fn_weight: float = 1.0
    fp_weight: float = 0.11


@dataclass(frozen=True)
class Series:
    """One ``timestamp,value`` data file: timestamps in ns since the epoch, in file order."""

    timestamps: list[int]
    values: list[float]


@dataclass(frozen=True)
class FileScore:
    """The NAB score of one detector on one file, and the counts behind it."""

    raw: float
    null: float
    perfect: float
    windows: int  # scored windows
    windows_found: int
    detections: int  # scored detections (after probation)
    detections_in_windows: int
    false_positives: int
    scored_days: float

    @property
    def normalized(self) -> float | None:
        """100 * (raw - null) / (perfect - null); None for a file without scored windows."""
        if self.perfect <= self.null:
            return None
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)

    @property
    def recall(self) -> float | None:
        return self.windows_found / self.windows if self.windows else None

    @property
    def precision(self) -> float | None:
        return self.detections_in_windows / self.detections if self.detections else None

    @property
    def false_alarms_per_day(self) -> float | None:
        return self.false_positives / self.scored_days if self.scored_days > 0 else None


def parse_time(text: str) -> int:
    """NAB timestamp (``YYYY-MM-DD HH:MM:SS[.ffffff]``, no zone: taken as UTC) -> ns, by the
    dataflow's own ISO rule, so a file reads as the flow would read its rows."""
    return iso_to_ns(text.strip())


def load_series(path: Path) -> Series:
    """Read a NAB data file (header ``timestamp,value``)."""
    timestamps: list[int] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a 'timestamp,value' header")
        for row in reader:
            timestamps.append(parse_time(row["timestamp"]))
            values.append(float(row["value"]))
    return Series(timestamps, values)


def seen_until(timestamps: Sequence[int]) -> list[int]:
    """The newest timestamp seen at each row: the timestamps themselves when they are in order.

    Real feeds repeat timestamps and sometimes step back; a streaming detector's clock is the
    newest time it has seen, so rows are looked up by this running maximum.
    """
    return list(itertools.accumulate(timestamps, max))


def in_order(timestamps: Sequence[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(timestamps))


def load_windows(path: Path) -> dict[str, list[Window]]:
    """NAB's ``combined_windows.json``: relative csv path -> sorted ``[start, end]`` windows."""
    raw = json.loads(path.read_text())
    out: dict[str, list[Window]] = {}
    for name, pairs in raw.items():
        wins = [(parse_time(a), parse_time(b)) for a, b in pairs]
        if any(a > b for a, b in wins):
            raise ValueError(f"{path}: {name} has a window that ends before it starts")
        out[name] = sorted(wins)
    return out


def load_profiles(path: Path) -> dict[str, Profile]:
    """NAB's ``profiles.json``: name -> weights (its ``tnWeight`` is unused by the score)."""
    raw = json.loads(path.read_text())
    return {
        name: Profile(
            tp_weight=float(p["CostMatrix"]["tpWeight"]),
            fn_weight=float(p["CostMatrix"]["fnWeight"]),
            fp_weight=float(p["CostMatrix"]["fpWeight"]),
        )
        for name, p in raw.items()
    }


def probation_rows(rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are not scored: 15 %, at most 750 (NAB's rule)."""
    return int(min(math.floor(percent * rows), percent * 5000))


def scaled_sigmoid(x: float) -> float:
    """NAB's weight of a relative position: ~+0.987 at -1, 0 at 0, -1 from +3 on."""
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def window_rows(timestamps: Sequence[int], windows: Iterable[Window]) -> list[tuple[int, int]]:
    """Each window as ``(first, last)`` row indices; windows holding no row are dropped.

    As NAB's labeller marks them: the rows whose timestamps fall inside, so with timestamps out
    of order a window spans from its first such row to its last.
    """
    ordered = in_order(timestamps)
    out = []
    for start, end in windows:
        if ordered:
            first = bisect.bisect_left(timestamps, start)
            last = bisect.bisect_right(timestamps, end) - 1
        else:
            inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
            first, last = (inside[0], inside[-1]) if inside else (1, 0)
        if first <= last:
            out.append((first, last))
    return sorted(out)


def labels(timestamps: Sequence[int], windows: Iterable[Window]) -> list[int]:
    """NAB's row labels: 1 inside a window (both ends inclusive), else 0."""
    spans = list(windows)
    return [int(any(a <= t <= b for a, b in spans)) for t in timestamps]


def _raw(
    detected_rows: Sequence[int],
    spans: Sequence[tuple[int, int]],
    probation: int,
    profile: Profile,
) -> tuple[float, int, int]:
    """Raw score, windows found and false positives of detections at rows >= probation."""
    rows = sorted(r for r in detected_rows if r >= probation)
    score = 0.0
    found = fps = 0
    for first, last in spans:
        if last < probation:
            continue  # wholly in probation: not scored at all
        k = bisect.bisect_left(rows, first)  # rows are all past probation
        if k < len(rows) and rows[k] <= last:
            position = -(last - rows[k] + 1) / (last - first + 1)
            score += profile.tp_weight * scaled_sigmoid(position) / _MAX_TP
            found += 1
        else:
            score -= profile.fn_weight
    for row in rows:
        if any(first <= row <= last for first, last in spans):
            continue
        before = [(first, last) for first, last in spans if last < row]
        fps += 1
        if not before:
            score -= profile.fp_weight
            continue
        first, last = max(before, key=lambda span: span[1])  # the closest preceding window
        width = last - first + 1
        distance = math.inf if width <= 1 else (row - last) / (width - 1)
        score += profile.fp_weight * scaled_sigmoid(distance)
    return score, found, fps


def score_file(
    timestamps: Sequence[int],
    detections: Sequence[bool],
    windows: Iterable[Window],
    profile: Profile,
    probation_percent: float = PROBATION_PERCENT,
) -> FileScore:
    """NAB score of one file: ``detections[i]`` says whether the detector fired at row ``i``."""
    if len(timestamps) != len(detections):
        raise ValueError(f"{len(timestamps)} timestamps but {len(detections)} detections")
    n = len(timestamps)
    labelled = list(windows)
    probation = probation_rows(n, probation_percent)
    spans = window_rows(timestamps, labelled)
    detected = [i for i, d in enumerate(detections) if d]
    raw, found, fps = _raw(detected, spans, probation, profile)
    scored_detections = len([r for r in detected if r >= probation])
    scored = [(f, last) for f, last in spans if last >= probation]
    null = _raw([], spans, probation, profile)[0]
    perfect = profile.tp_weight * len(labelled)  # NAB: every labelled window, scored or not
    days = (timestamps[-1] - timestamps[probation]) / NS_PER_DAY if probation < n else 0.0
    return FileScore(
        raw=raw,
        null=null,
        perfect=perfect,
        windows=len(scored),
        windows_found=found,
        detections=scored_detections,
        detections_in_windows=scored_detections - fps,
        false_positives=fps,
        scored_days=days,
    )


@dataclass(frozen=True)
class Scored:
    """One file as NAB's threshold optimiser takes it: rows, anomaly scores, labelled windows."""

    timestamps: Sequence[int]
    scores: Sequence[float]
    windows: Sequence[Window]


NO_DETECTION = 1.1  # NAB's first threshold, above every score in [0, 1]: nothing detected


def _row_values(
    timestamps: Sequence[int], windows: Iterable[Window], profile: Profile, probation: int
) -> list[tuple[float, int]]:
    """What a detection at each scored row (from ``probation`` on) is worth on its own, and the
    index of the window it lies in (-1 outside every window): the scoring rules above, row by
    row. Windows are taken in time order, not overlapping, as NAB's sweep takes them."""
    spans = window_rows(timestamps, windows)
    out: list[tuple[float, int]] = []
    k = 0  # the first window not yet wholly behind the row
    before: tuple[int, int] | None = None  # the closest window wholly behind it
    for row in range(probation, len(timestamps)):
        while k < len(spans) and spans[k][1] < row:
            before = spans[k]
            k += 1
        if k < len(spans) and spans[k][0] <= row:
            first, last = spans[k]
            position = -(last - row + 1) / (last - first + 1)
            out.append((profile.tp_weight * scaled_sigmoid(position) / _MAX_TP, k))
        elif before is None:
            out.append((-profile.fp_weight, -1))
        else:
            first, last = before
            width = last - first + 1
            distance = math.inf if width <= 1 else (row - last) / (width - 1)
            out.append((profile.fp_weight * scaled_sigmoid(distance), -1))
    return out


def threshold_scores(
    files: Iterable[Scored], profile: Profile, probation_percent: float = PROBATION_PERCENT
) -> list[tuple[float, float]]:
    """NAB's sweep (``nab/sweeper.py``): ``(threshold, raw score summed over all files)`` for
    ``NO_DETECTION`` and each distinct score, highest threshold first.

    Every scored row of every file, highest score first: lowering the threshold past a score
    turns its rows into detections, a false positive adding its cost, a row in a window raising
    the window's worth from ``-fn_weight`` to the best detection in it so far.
    """
    rows: list[tuple[float, float, tuple[int, int] | None]] = []
    total = 0.0
    for f, item in enumerate(files):
        if len(item.scores) != len(item.timestamps):
            raise ValueError(f"{len(item.timestamps)} timestamps but {len(item.scores)} scores")
        probation = probation_rows(len(item.timestamps), probation_percent)
        values = _row_values(item.timestamps, item.windows, profile, probation)
        total -= profile.fn_weight * len({k for _, k in values if k >= 0})  # all missed
        for (value, k), level in zip(values, item.scores[probation:], strict=True):
            rows.append((level, value, (f, k) if k >= 0 else None))
    rows.sort(key=lambda r: r[0], reverse=True)
    out = [(NO_DETECTION, total)]
    worth: dict[tuple[int, int], float] = {}  # window -> its best detection so far
    i = 0
    while i < len(rows):
        level = rows[i][0]
        while i < len(rows) and rows[i][0] == level:
            _, value, window = rows[i]
            if window is None:
                total += value
            else:
                old = worth.get(window, -profile.fn_weight)
                if value > old:
                    total += value - old
                    worth[window] = value
            i += 1
        out.append((level, total))
    return out


def optimise_threshold(
    files: Iterable[Scored], profile: Profile, probation_percent: float = PROBATION_PERCENT
) -> tuple[float, float]:
    """NAB's optimiser: the threshold whose detections (score >= threshold) give the highest raw
    score summed over all ``files``, and that score; of equal scores the highest threshold, as
    NAB's stable sort of its sweep leaves it first."""
    sweep = threshold_scores(files, profile, probation_percent)
    best = max(sweep, key=lambda item: item[1])  # max keeps the first of equals
    return best


def detections_at(scores: Sequence[float], threshold: float) -> list[bool]:
    """NAB's rule: a row is a detection when its anomaly score is at or above the threshold."""
    return [s >= threshold for s in scores]


def corpus_score(scores: Iterable[FileScore]) -> float | None:
    """NAB's own aggregate: the normalisation applied to the sums over all files."""
    items = list(scores)
    raw = sum(s.raw for s in items)
    null = sum(s.null for s in items)
    perfect = sum(s.perfect for s in items)
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else None


def rows_at(timestamps: Sequence[int], times: Iterable[int]) -> list[bool]:
    """Detections from event times: each time marks the last row at or before it.

    A streaming detector reports after the data it used; the row it is charged to is the last
    one it had seen (by the newest timestamp so far, if they step back). Times before the first
    row are dropped.
    """
    out = [False] * len(timestamps)
    clock = seen_until(timestamps)  # the timestamps themselves when they are in order
    for t in times:
        i = bisect.bisect_right(clock, t) - 1
        if i >= 0:
            out[i] = True
    return out
