"""Evaluate ours and the baselines on a NAB-style folder; table and JSON output.

Kept apart from ``__main__`` so tests and tuning scripts can call ``evaluate`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval import detectors
from eval.nab import (
    FileScore,
    Profile,
    Series,
    Window,
    corpus_score,
    load_series,
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


@dataclass(frozen=True)
class Options:
    """Knobs of a run; the defaults are what ``python -m eval`` uses."""

    profile_name: str = "standard"
    seed: int = 42
    random_rate: float = 0.003  # maximises random's expected NAB score on the public set
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
) -> FileResult:
    """Run the three detectors on one file and score them."""
    ours_det = detectors.ours(series, opts.ours)[0] if ours_fn is None else ours_fn(rel, series)
    thr_det, level = detectors.threshold(series, opts.threshold_margin, opts.ours.mode)
    dets = {
        "ours": ours_det,
        "random": detectors.random_detector(len(series.values), opts.random_rate, opts.seed, rel),
        "threshold": thr_det,
    }
    scores = {name: score_file(series.timestamps, d, windows, profile) for name, d in dets.items()}
    return FileResult(rel, series, windows, scores, dets, level)


def evaluate(
    data: Path,
    windows: Mapping[str, list[Window]],
    profile: Profile,
    opts: Options,
    ours_fn: OursFn | None = None,
) -> list[FileResult]:
    """Every labelled CSV file under ``data``, in path order."""
    files, _ = find_files(data, windows)
    return [evaluate_file(rel, load_series(data / rel), windows[rel], profile, opts, ours_fn)
            for rel in files]


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
    out: dict[str, Any] = {key: _mean([m[key] for m in per_file]) for key in
                           (f"nab_{profile_name}", "precision", "recall", "false_alarms_per_day")}
    out[f"nab_{profile_name}_pooled"] = corpus_score(r.scores[detector] for r in results)
    ours = [r.scores["ours"].normalized for r in results]
    if detector != "ours":
        mine = [r.scores[detector].normalized for r in results]
        out["files_ours_beats"] = sum(1 for a, b in zip(ours, mine, strict=True)
                                      if a is not None and b is not None and a > b)
    out["files"] = len(results)
    return out


def to_json(results: list[FileResult], profile_name: str) -> dict[str, Any]:
    """``{path: ours metrics, "baselines": {name: {path: metrics}}, "summary": {...}}``."""
    out: dict[str, Any] = {r.path: metrics(r.scores["ours"], profile_name) for r in results}
    out["baselines"] = {
        name: {r.path: metrics(r.scores[name], profile_name) for r in results}
        for name in BASELINES
    }
    out["summary"] = {name: summary(results, name, profile_name) for name in DETECTORS}
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(results: list[FileResult], profile_name: str) -> str:
    """The printed summary: NAB score of the three detectors, and ours' P / R / FA per day."""
    key = f"nab_{profile_name}"
    head = (f"{'file':<52} {'ours':>7} {'random':>7} {'thresh':>7}   "
            f"{'prec':>5} {'recall':>6} {'FA/day':>6} {'alerts':>6}")
    lines = [f"NAB score ({profile_name} profile; null = 0, perfect = 100)", head,
             "-" * len(head)]
    for r in results:
        o = r.scores["ours"]
        lines.append(
            f"{r.path:<52} {_fmt(o.normalized, '7.1f')} "
            f"{_fmt(r.scores['random'].normalized, '7.1f')} "
            f"{_fmt(r.scores['threshold'].normalized, '7.1f')}   "
            f"{_fmt(o.precision, '5.2f')} {_fmt(o.recall, '6.2f')} "
            f"{_fmt(o.false_alarms_per_day, '6.2f')} {o.detections:>6}"
        )
    lines.append("-" * len(head))
    sums = {name: summary(results, name, profile_name) for name in DETECTORS}
    o = sums["ours"]
    lines.append(
        f"{'mean over files':<52} {_fmt(o[key], '7.1f')} {_fmt(sums['random'][key], '7.1f')} "
        f"{_fmt(sums['threshold'][key], '7.1f')}   {_fmt(o['precision'], '5.2f')} "
        f"{_fmt(o['recall'], '6.2f')} {_fmt(o['false_alarms_per_day'], '6.2f')}"
    )
    pooled = f"{key}_pooled"
    lines.append(
        f"{'NAB pooled (sums over files, as NAB reports)':<52} {_fmt(o[pooled], '7.1f')} "
        f"{_fmt(sums['random'][pooled], '7.1f')} {_fmt(sums['threshold'][pooled], '7.1f')}"
    )
    lines.append(
        f"ours beats random on {sums['random']['files_ours_beats']}/{len(results)} files, "
        f"threshold on {sums['threshold']['files_ours_beats']}/{len(results)}"
    )
    return "\n".join(lines)


def probation_of(result: FileResult) -> int:
    return probation_rows(len(result.series.values))
