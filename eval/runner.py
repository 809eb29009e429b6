"""Evaluate ours and the baselines on a NAB-style folder; table and JSON output.

Kept apart from ``__main__`` so tests and tuning scripts can call ``evaluate`` directly.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval import detectors
from eval.nab import (
    FileScore,
    Profile,
    Scored,
    Series,
    Window,
    corpus_score,
    detections_at,
    labels,
    load_series,
    optimise_threshold,
    probation_rows,
    score_file,
)

DETECTORS = ("ours", "random", "threshold")
BASELINES = ("random", "threshold")

# ours(series) -> row detections; swapped for the broker replay by ``--through-broker``.
OursFn = Callable[[str, Series], list[bool]]


@dataclass
class FileResult:
    """Everything known about one file after the run."""

    path: str  # relative to the data folder, as in the windows file
    series: Series
    windows: list[Window]
    scores: dict[str, FileScore]  # detector -> score
    detections: dict[str, list[bool]]
    threshold_level: float
    random_scores: list[float] = field(default_factory=list)  # NAB's random detector, per row
    random_threshold: float = 0.0  # its threshold, optimised over every file of the run
    late: int | None = None  # rows behind a closed window (None: not known, broker replay)
    stale: int | None = None  # alerts resolved as stale (silence), as the flow's rules ran
    refused: int | None = None  # rows the flow's parser refused (dead letters)
    fired_by: dict[int, str] = field(default_factory=dict)  # ours' detection rows -> what fired

    @property
    def category(self) -> str:
        return self.path.split("/", 1)[0] if "/" in self.path else ""


@dataclass(frozen=True)
class Options:
    """Knobs of a run; the defaults are what ``python -m eval`` uses."""

    profile_name: str = "standard"
    seed: int = 42  # NAB's random detector's seed
    threshold_margin: float = 0.1
    ours: detectors.OursConfig = field(default_factory=detectors.OursConfig)


def find_files(data: Path, windows: Mapping[str, list[Window]]) -> tuple[list[str], list[str]]:
    """CSV files under ``data`` that have labels (sorted), and those that have none."""
    found = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.csv"))
    return [f for f in found if f in windows], [f for f in found if f not in windows]


def evaluate_file(
    rel: str,
    series: Series,
    windows: list[Window],
    profile: Profile,
    opts: Options,
    ours_fn: OursFn | None = None,
    random_threshold: float | None = None,
) -> FileResult:
    """Run the three detectors on one file and score them.

    The random detector's threshold is NAB's, optimised over the whole run (``evaluate``); for
    one file alone it is optimised on that file.
    """
    rnd = detectors.random_scores(len(series.values), opts.seed)
    if random_threshold is None:
        random_threshold, _ = optimise_threshold([Scored(series.timestamps, rnd, windows)], profile)
    late = stale = refused = None
    fired: dict[int, str] = {}  # not known from a broker replay's detections
    if ours_fn is None:
        ours_det, run = detectors.ours(series, opts.ours)
        late, stale, refused = run.late, run.stale, run.refused
        fired = detectors.fired_by(series, run.windows, opts.ours.mode)
    else:
        ours_det = ours_fn(rel, series)
    thr_det, level = detectors.threshold(series, opts.threshold_margin, opts.ours.mode)
    dets = {
        "ours": ours_det,
        "random": detections_at(rnd, random_threshold),
        "threshold": thr_det,
    }
    scores = {name: score_file(series.timestamps, d, windows, profile) for name, d in dets.items()}
    return FileResult(
        rel,
        series,
        windows,
        scores,
        dets,
        level,
        rnd,
        random_threshold,
        late,
        stale,
        refused,
        fired,
    )


def evaluate(
    data: Path,
    windows: Mapping[str, list[Window]],
    profile: Profile,
    opts: Options,
    ours_fn: OursFn | None = None,
) -> list[FileResult]:
    """Every labelled CSV file under ``data``, in path order.

    NAB's random detector gets the threshold NAB's optimiser picks for it over all these files
    (the run's profile), as NAB's ``--optimize`` step does for every detector over its corpus.
    """
    files, _ = find_files(data, windows)
    series = {rel: load_series(data / rel) for rel in files}
    threshold, _ = optimise_threshold(
        (
            Scored(s.timestamps, detectors.random_scores(len(s.values), opts.seed), windows[rel])
            for rel, s in series.items()
        ),
        profile,
    )
    return [
        evaluate_file(rel, series[rel], windows[rel], profile, opts, ours_fn, threshold)
        for rel in files
    ]


def metrics(score: FileScore, profile_name: str) -> dict[str, float | None]:
    """The per-file record of the JSON output."""
    return {
        f"nab_{profile_name}": score.normalized,
        "precision": score.precision,
        "recall": score.recall,
        "false_alarms_per_day": score.false_alarms_per_day,
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summary(results: list[FileResult], detector: str, profile_name: str) -> dict[str, Any]:
    """Means over files (undefined per-file values are left out) and NAB's pooled score."""
    per_file = [metrics(r.scores[detector], profile_name) for r in results]
    out: dict[str, Any] = {
        key: _mean([m[key] for m in per_file])
        for key in (f"nab_{profile_name}", "precision", "recall", "false_alarms_per_day")
    }
    out[f"nab_{profile_name}_pooled"] = corpus_score(r.scores[detector] for r in results)
    out["false_alarms"] = sum(r.scores[detector].false_positives for r in results)
    out["windows_found"] = sum(r.scores[detector].windows_found for r in results)
    out["windows"] = sum(r.scores[detector].windows for r in results)
    ours = [r.scores["ours"].normalized for r in results]
    if detector != "ours":
        mine = [r.scores[detector].normalized for r in results]
        out["files_ours_beats"] = sum(
            1 for a, b in zip(ours, mine, strict=True) if a is not None and b is not None and a > b
        )
    out["files"] = len(results)
    if detector == "random" and results:
        out["threshold"] = results[0].random_threshold
    return out


def to_json(results: list[FileResult], profile_name: str) -> dict[str, Any]:
    """``{path: ours metrics, "baselines": {name: {path: metrics}}, "summary": {...}}``."""
    out: dict[str, Any] = {r.path: metrics(r.scores["ours"], profile_name) for r in results}
    out["baselines"] = {
        name: {r.path: metrics(r.scores[name], profile_name) for r in results} for name in BASELINES
    }
    out["summary"] = {name: summary(results, name, profile_name) for name in DETECTORS}
    out["categories"] = {
        cat: {name: summary(rs, name, profile_name) for name in DETECTORS}
        for cat, rs in by_category(results).items()
    }
    out["late_rows"] = {r.path: r.late for r in results if r.late}
    out["stale_resolutions"] = {r.path: r.stale for r in results if r.stale}
    out["refused_rows"] = {r.path: r.refused for r in results if r.refused}
    return out


def by_category(results: Iterable[FileResult]) -> dict[str, list[FileResult]]:
    """Results grouped by NAB category (the first folder of the path), in path order."""
    out: dict[str, list[FileResult]] = {}
    for r in results:
        out.setdefault(r.category, []).append(r)
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pooled_row(label: str, results: list[FileResult], profile_name: str) -> str:
    key = f"nab_{profile_name}_pooled"
    sums = {name: summary(results, name, profile_name) for name in DETECTORS}
    o = sums["ours"]
    return (
        f"{label:<52} {_fmt(o[key], '7.1f')} {_fmt(sums['random'][key], '7.1f')} "
        f"{_fmt(sums['threshold'][key], '7.1f')}   {o['false_alarms']:>6} "
        f"{o['windows_found']:>4}/{o['windows']:<4} {len(results):>5}"
    )


def table(results: list[FileResult], profile_name: str) -> str:
    """The printed report: NAB's pooled score first, then per category, then per file."""
    key = f"nab_{profile_name}"
    head = f"{'':<52} {'ours':>7} {'random':>7} {'thresh':>7}   {'FA':>6} {'found':>9} {'files':>5}"
    lines = [
        f"NAB score ({profile_name} profile, pooled as on NAB's scoreboard; never firing = 0, "
        "perfect = 100). FA: ours' detections outside every window.",
        head,
        "-" * len(head),
        _pooled_row("ALL FILES (pooled)", results, profile_name),
        "-" * len(head),
    ]
    for cat, rs in by_category(results).items():
        lines.append(_pooled_row(cat or "(top level)", rs, profile_name))
    lines.append("")
    head = (
        f"{'file':<52} {'ours':>7} {'random':>7} {'thresh':>7}   "
        f"{'prec':>5} {'recall':>6} {'FA':>4} {'alerts':>6} {'late':>5}"
    )
    lines += [head, "-" * len(head)]
    for r in results:
        o = r.scores["ours"]
        lines.append(
            f"{r.path:<52} {_fmt(o.normalized, '7.1f')} "
            f"{_fmt(r.scores['random'].normalized, '7.1f')} "
            f"{_fmt(r.scores['threshold'].normalized, '7.1f')}   "
            f"{_fmt(o.precision, '5.2f')} {_fmt(o.recall, '6.2f')} {o.false_positives:>4} "
            f"{o.detections:>6} {'-' if r.late is None else r.late:>5}"
        )
    lines.append("-" * len(head))
    sums = {name: summary(results, name, profile_name) for name in DETECTORS}
    mean = sums["ours"]
    lines.append(
        f"{'mean over files':<52} {_fmt(mean[key], '7.1f')} {_fmt(sums['random'][key], '7.1f')} "
        f"{_fmt(sums['threshold'][key], '7.1f')}   {_fmt(mean['precision'], '5.2f')} "
        f"{_fmt(mean['recall'], '6.2f')}"
    )
    lines.append(
        f"ours beats random on {sums['random']['files_ours_beats']}/{len(results)} files, "
        f"threshold on {sums['threshold']['files_ours_beats']}/{len(results)}; "
        f"{sum(r.late or 0 for r in results)} late row(s) counted, not scored; "
        f"{sum(r.stale or 0 for r in results)} alert(s) resolved as stale; "
        f"{sum(r.refused or 0 for r in results)} row(s) refused by the parser"
    )
    lines.append(
        f"random: NAB's random detector, its threshold {_fmt(_random_threshold(results), '.4f')} "
        "picked by NAB's optimiser over these files"
    )
    return "\n".join(lines)


def _random_threshold(results: list[FileResult]) -> float | None:
    return results[0].random_threshold if results else None


def _nab_time(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_results(results: list[FileResult], out: Path) -> list[Path]:
    """NAB's results layout, so NAB's own ``run.py --score --normalize`` can check a run:
    ``out/<detector>/<category>/<detector>_<file>.csv`` with ``timestamp,value,anomaly_score,
    label``: the score is 1.0 where the detector fired (the random detector's: its own score, so
    NAB's optimiser finds the same threshold), the label NAB's (1 inside a window)."""
    written = []
    for r in results:
        marks = labels(r.series.timestamps, r.windows)
        folder, _, name = r.path.rpartition("/")
        for detector, fired in r.detections.items():
            path = out / detector / folder / f"{detector}_{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            scores = (
                [repr(x) for x in r.random_scores]
                if detector == "random" and r.random_scores
                else ["1.0" if f else "0.0" for f in fired]
            )
            with path.open("w", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(["timestamp", "value", "anomaly_score", "label"])
                for ts, v, a, lab in zip(
                    r.series.timestamps, r.series.values, scores, marks, strict=True
                ):
                    w.writerow([_nab_time(ts), repr(v), a, lab])
            written.append(path)
    return written


def probation_of(result: FileResult) -> int:
    return probation_rows(len(result.series.values))
